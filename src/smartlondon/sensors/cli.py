"""``smartlondon sensors``: the sensor hub's commands (each sensors part adds its own here).

    smartlondon sensors qc --datastream 5 [--from 2023-01-01T00:00:00Z] [--to ...]
    smartlondon sensors qc --all
    smartlondon sensors archive [--older-than 90d] [--datastream ID]
    smartlondon sensors restore [--datastream ID]
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import click

from ..core.commands import PlatformGroup
from ..core.commands import main_module as _main


@click.group(cls=PlatformGroup)
def sensors() -> None:
    """The sensor hub (SensorThings API): quality control and other tasks."""


def _time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time such as 2023-01-01T00:00:00Z.",
                                 param_hint=name) from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


@sensors.command("qc")
@click.option("--datastream", "datastream_id", type=int, help="The Datastream id to check.")
@click.option("--all", "all_streams", is_flag=True, help="Check every Datastream.")
@click.option("--from", "start", help="Only Observations from this time (ISO 8601).")
@click.option("--to", "end", help="Only Observations before this time (ISO 8601).")
def qc_command(datastream_id: int | None, all_streams: bool, start: str | None, end: str | None) -> None:
    """(Re)compute quality-control flags (range, spike, flat line, stuck, gap) into resultQuality."""
    from .qc import RULES_VERSION, run_qc, run_qc_all

    if (datastream_id is None) == (not all_streams):
        raise click.UsageError("Give either --datastream ID or --all.")
    cli = _main()
    env = cli.Env()
    begin, finish = _time(start, "--from"), _time(end, "--to")
    with env.db.session() as session:
        _refuse_archived(session, datastream_id, begin, finish)
        reports = run_qc_all(session, begin, finish) if all_streams else [run_qc(session, datastream_id, begin, finish)]
    for report in reports:
        flagged = ", ".join(f"{k} {v}" for k, v in report.flagged.items()) or "none flagged"
        click.echo(f"Datastream {report.datastream_id}: {report.checked} observations checked "
                   f"(rules version {RULES_VERSION}): {flagged}")


def _refuse_archived(session, datastream_id: int | None, begin: datetime | None, finish: datetime | None) -> None:  # type: ignore[no-untyped-def]
    """Quality control is not recomputed inside Parquet segments: refuse a range that holds archived rows."""
    from sqlalchemy import select

    from .archive import ArchiveSegment

    query = select(ArchiveSegment.datastream_id, ArchiveSegment.time_start, ArchiveSegment.time_end)
    if datastream_id is not None:
        query = query.where(ArchiveSegment.datastream_id == datastream_id)
    if begin is not None:
        query = query.where(ArchiveSegment.time_end >= begin)
    if finish is not None:
        query = query.where(ArchiveSegment.time_start < finish)
    found = session.execute(query.order_by(ArchiveSegment.datastream_id, ArchiveSegment.time_start)).all()
    if found:
        streams = sorted({row[0] for row in found})
        latest = max(row[2] for row in found).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise click.ClickException(
            f"{len(found)} archived segment(s) of Datastream(s) {', '.join(map(str, streams))} fall in this range, "
            "and quality control is not recomputed inside archived Parquet files. Run 'smartlondon sensors restore' "
            f"for them first, or check only hot rows with --from after {latest}.")


# --- load-laqn (sensors-web): the real London Air Quality Network --------------------------------

@sensors.command("load-laqn")
@click.option("--sites", "limit_sites", type=int, default=None, help="Load only the first N sites (by site code).")
@click.option("--days", type=int, default=None, help="Load only the first D days of measurements.")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="The folder holding laqn-sites.csv and laqn-hourly-2023Q1.csv.gz (default: ../shared/data/air-quality).")
def load_laqn_command(limit_sites: int | None, days: int | None, data_dir: str | None) -> None:
    """Load the London Air Quality Network (sites, species, Q1 2023 hourly values). Safe to re-run."""
    import time
    from pathlib import Path

    from ..core import migrate
    from . import laqn

    cli = _main()
    env = cli.Env()
    migrate.upgrade(env.db)
    folder = Path(data_dir) if data_dir else laqn.AIR_QUALITY_DIR
    started = time.monotonic()
    with cli.progress_bar() as bar:
        summary = laqn.load_laqn(env.db, sites_path=folder / laqn.SITES_FILE, hourly_path=folder / laqn.HOURLY_FILE,
                                 limit_sites=limit_sites, days=days, progress=bar,
                                 base_url=env.settings.base_url.rstrip("/") + "/sta/v1.1")
    cli.console.print(
        f"LAQN loaded in {time.monotonic() - started:.1f} s: {summary.sites} sites ({summary.things_created} new "
        f"Things), {summary.datastreams} Datastreams ({summary.datastreams_created} new), "
        f"{summary.observations_created} new Observations.")


# --- archive / restore (sensors-archive): old Observations to Parquet and back ---------------------

@sensors.command("archive")
@click.option("--older-than", "older_than", default=None,
              help="Archive Observations older than this (90d, 12h; default: SMARTLONDON_ARCHIVE_AFTER_DAYS, "
                   "90). A Datastream's properties.retentionDays overrides it (0: never archive that Datastream).")
@click.option("--datastream", "datastream_id", type=int, default=None, help="Only this Datastream.")
@click.option("--now", "now_text", default=None, hidden=True, help="The time to count ages from (ISO 8601).")
def archive_command(older_than: str | None, datastream_id: int | None, now_text: str | None) -> None:
    """Move old Observations to Parquet files under the archive directory (they stay readable)."""
    from . import archive

    try:
        age = archive.parse_age(older_than) if older_than else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    cli = _main()
    env = cli.Env()
    _check_datastream(env, datastream_id)
    if age is None:
        if env.settings.archive_after_days <= 0:
            cli.console.print("Nothing archived: SMARTLONDON_ARCHIVE_AFTER_DAYS is 0 (never); "
                              "give --older-than to archive.")
            return
        age = timedelta(days=env.settings.archive_after_days)
    with cli.progress_bar() as bar:
        report = archive.archive(env.db, env.settings.archive_dir, age, datastream_id, _time(now_text, "--now"),
                                 progress=bar)
    cli.console.print(f"Archived {report.rows} observations in {report.segments} segments "
                      f"({report.bytes:,} bytes of Parquet) under {env.settings.archive_dir}.")


@sensors.command("restore")
@click.option("--datastream", "datastream_id", type=int, default=None, help="Only this Datastream.")
def restore_command(datastream_id: int | None) -> None:
    """Move archived Observations back from Parquet into the database."""
    from . import archive

    cli = _main()
    env = cli.Env()
    _check_datastream(env, datastream_id)
    with cli.progress_bar() as bar:
        try:
            report = archive.restore(env.db, env.settings.archive_dir, datastream_id, progress=bar)
        except archive.ArchiveError as exc:
            raise click.ClickException(str(exc)) from None
    cli.console.print(f"Restored {report.rows} observations from {report.segments} segments.")


def _check_datastream(env: object, datastream_id: int | None) -> None:
    if datastream_id is None:
        return
    from .models import Datastream

    with env.db.session() as session:  # type: ignore[attr-defined]
        if session.get(Datastream, datastream_id) is None:
            raise click.ClickException(f"There is no Datastream with id {datastream_id}.")


# --- calibrate (sensors-calibration): low-cost sensors against co-located reference monitors -----

@sensors.command("calibrate")
@click.option("--low-cost", "low_cost", type=int, default=None, help="The low-cost sensor's Datastream id.")
@click.option("--reference", type=int, default=None, help="The co-located reference monitor's Datastream id.")
@click.option("--from", "start", default=None, help="Start of the fit window (ISO 8601).")
@click.option("--to", "end", default=None, help="End of the fit window, exclusive (ISO 8601).")
@click.option("--refit-due", "refit_due", is_flag=True,
              help="Instead: check every applied calibration due (SMARTLONDON_CALIBRATION_REFIT_DAYS) and refit "
                   "it where a refit is better on held-out recent pairs.")
@click.option("--kind", default=None, help="The model: linear-humidity-temperature (default) or "
                                          "robust-linear-humidity-temperature.")
@click.option("--max-distance", type=float, default=None, help="How far apart, in metres, still counts as co-located (default 50).")
@click.option("--no-apply", is_flag=True, help="Only fit and store the model; do not make it the active one.")
@click.option("--recompute", is_flag=True, help="Recompute every calibrated value with the new version.")
def calibrate_command(low_cost: int | None, reference: int | None, start: str | None, end: str | None,
                      kind: str | None, max_distance: float | None, no_apply: bool, recompute: bool,
                      refit_due: bool = False) -> None:
    """Fit a calibration of a low-cost sensor against a reference monitor, and apply it (or --refit-due)."""
    from .calibration import service as calibration

    cli = _main()
    env = cli.Env()
    if refit_due:
        _refit_due(env)
        return
    missing = [name for name, value in (("--low-cost", low_cost), ("--reference", reference), ("--from", start),
                                        ("--to", end)) if value is None]
    if missing:
        raise click.UsageError(f"Give {', '.join(missing)} (or --refit-due).")
    begin, finish = _time(start, "--from"), _time(end, "--to")
    assert begin is not None and finish is not None
    root = env.settings.base_url.rstrip("/") + "/sta/v1.1"
    with cli.progress_bar() as bar:
        task = bar.add_task("Fitting the calibration", total=2 if not no_apply else 1)
        with env.db.session() as session:
            made = calibration.fit_calibration(
                session, low_cost, reference, begin, finish, kind=kind or calibration.DEFAULT_KIND,
                max_distance_m=max_distance or calibration.DEFAULT_DISTANCE_M, apply=False, base_url=root)
            bar.advance(task)
            if not no_apply:
                bar.update(task, description="Writing the calibrated Datastream")
                calibration.apply_calibration(session, made.id, recompute=recompute, base_url=root)
                bar.advance(task)
            stats = made.stats
            summary = (f"Calibration {made.id} (version {made.version}, {made.kind}) of Datastream {low_cost} against "
                       f"{reference}: {stats['n']} hourly pairs; R² {stats['before']['r2']} -> {stats['after']['r2']}, "
                       f"RMSE {stats['before']['rmse']} -> {stats['after']['rmse']}, bias {stats['before']['bias']} -> "
                       f"{stats['after']['bias']}.")
            derived = made.derived_datastream_id
    cli.console.print(summary)
    if not no_apply:
        cli.console.print(f"Calibrated values are in Datastream {derived}.")


@sensors.command("load-fleet")
def load_fleet_command() -> None:
    """Create the simulated smart lamppost fleet, backfill its readings and calibrate the co-located ones."""
    from ..core import migrate
    from .fleet import load_demo_fleet

    cli = _main()
    env = cli.Env()
    migrate.upgrade(env.db)
    with cli.progress_bar() as bar:
        summary = load_demo_fleet(env.db, bar, env.settings.base_url.rstrip("/") + "/sta/v1.1")
    cli.console.print(f"Fleet: {summary.lampposts} lampposts ({summary.things_created} new), "
                      f"{summary.observations_created} new Observations, {summary.calibrations_created} new calibrations.")


def _refit_due(env: object) -> None:
    """``sensors calibrate --refit-due``: check the due calibrations once and say what each check decided."""
    from .calibration.refit import refit_due

    settings = env.settings  # type: ignore[attr-defined]
    days = float(settings.calibration_refit_days)
    if days <= 0:
        raise click.ClickException("Refits are off (SMARTLONDON_CALIBRATION_REFIT_DAYS is 0).")
    decisions = refit_due(env.db, days, base_url=settings.base_url.rstrip("/") + "/sta/v1.1")  # type: ignore[attr-defined]
    if not decisions:
        click.echo(f"No applied calibration is due (each is checked every {days:g} days).")
    for d in decisions:
        outcome = f"version {d.new_version} made and applied" if d.refit else f"version {d.version} kept"
        click.echo(f"Datastream {d.datastream_id}, calibration {d.calibration_id}: {outcome}. {d.reason}")
