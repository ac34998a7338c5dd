"""``smartlondon sensors``: the sensor hub's commands (each sensors part adds its own here).

    smartlondon sensors qc --datastream 5 [--from 2023-01-01T00:00:00Z] [--to ...]
    smartlondon sensors qc --all
"""

from __future__ import annotations

from datetime import datetime, timezone

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
        reports = run_qc_all(session, begin, finish) if all_streams else [run_qc(session, datastream_id, begin, finish)]
    for report in reports:
        flagged = ", ".join(f"{k} {v}" for k, v in report.flagged.items()) or "none flagged"
        click.echo(f"Datastream {report.datastream_id}: {report.checked} observations checked "
                   f"(rules version {RULES_VERSION}): {flagged}")


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
