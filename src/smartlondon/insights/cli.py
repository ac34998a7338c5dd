"""The ``smartlondon insights`` commands: ``insights airquality evaluate`` and ``insights airquality card``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..core.commands import PlatformGroup, main_module
from ..core.errors import BadRequest

METHOD_NAMES = ("model", "idw", "kriging", "kriging-sitetype")


@click.group(cls=PlatformGroup)
def insights() -> None:
    """City analytics: air quality estimates everywhere, and how good they are."""


@insights.group(cls=PlatformGroup)
def airquality() -> None:
    """Hourly air quality at any point in London, and its leave-one-site-out evaluation."""


def _context(sites: Any, weather: Path | None, traffic: Path | None, count_points: Path | None) -> Any:
    from .airquality import data
    from .airquality.evaluation import Context

    places = {str(c): (float(e), float(n)) for c, e, n in zip(sites.codes, sites.easting, sites.northing)}
    return Context(data.read_weather(weather), places, data.read_traffic(traffic, count_points))


def _evaluate(observations_path: Path, sites_path: Path, species: str, method: str, weather: Path | None,
              traffic: Path | None, count_points: Path | None, every: int, min_capture: float,
              label: str | None = None) -> dict[str, Any]:
    from .airquality import data
    from .airquality.evaluation import evaluate, usable_sites

    sites = data.read_sites(sites_path)
    observations = data.read_observations(observations_path, species, sites)
    if every > 1:
        observations = observations.with_hours(slice(None, None, every))
    if not 0 < min_capture <= 1:
        raise BadRequest("--min-capture must be above 0 and at most 1 (a share of the hours).")
    held = usable_sites(observations, min_capture)
    if len(held) < 3:
        raise BadRequest(f"Only {len(held)} site(s) in {observations_path} have {observations.species} readings for "
                         f"{min_capture:.0%} of the hours and a position in {sites_path}: at least 3 are needed "
                         "(lower --min-capture, or give a longer period).")
    context = _context(sites, weather, traffic, count_points) if method == "model" else None
    cli = main_module()
    with cli.progress_bar() as bar:
        task = bar.add_task(label or f"{method}: leaving out each site", total=len(held))
        result = evaluate(observations, method, context, min_capture, progress=lambda n: bar.advance(task, n))
    result["hours_used"] = "every hour" if every == 1 else f"every {every}th hour"
    return result


def _fmt(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _table(result: dict[str, Any]) -> str:
    head = f"{'':<18}{'sites':>6}{'n':>9}{'RMSE':>8}{'MAE':>8}{'R²':>7}{'bias':>8}{'cover90':>9}"
    lines = [f"{result['species']} by {result['method']}, leaving out one site at a time "
             f"({result['period']['start']} to {result['period']['end']}, {result['hours_used']})", head]
    rows = [("all sites", result)] + list(result["by_site_type"].items())
    for name, r in rows:
        lines.append(f"{name:<18}{r['n_sites']:>6}{r['n_predictions']:>9}{_fmt(r['rmse']):>8}{_fmt(r['mae']):>8}"
                     f"{_fmt(r['r2']):>7}{_fmt(r['bias']):>8}{_fmt(r['coverage90']):>9}")
    lines.append(f"fit {result['fit_seconds']:.1f} s, predict {result['predict_seconds']:.1f} s "
                 "(RMSE, MAE and bias in µg/m³; cover90: share of readings inside the stated 90% interval)")
    return "\n".join(lines)


_file = click.Path(path_type=Path, dir_okay=False)
_data_options = [
    click.option("--observations", type=_file, required=True,
                 help="Hourly readings in LAQN long format: site_code,species_code,measurement_date_gmt,value "
                      "(.csv or .csv.gz)."),
    click.option("--sites", type=_file, required=True,
                 help="Site list in LAQN format (@SiteCode, @SiteType, @Latitude, @Longitude)."),
    click.option("--weather", type=_file, default=None,
                 help="ERA5 weather by site (default: the bundled Q1 2023 file; unused for hours it does not cover)."),
    click.option("--traffic", type=_file, default=None,
                 help="DfT annual average daily flows by count point (default: the bundled London file)."),
    click.option("--count-points", type=_file, default=None,
                 help="DfT count points with coordinates (default: the bundled London file)."),
    click.option("--every", type=click.IntRange(min=1), default=1, show_default=True,
                 help="Use only every Nth hour (a quicker, subsampled run; 1 = every hour)."),
    click.option("--min-capture", type=float, default=0.75, show_default=True,
                 help="Use sites with readings for at least this share of the hours."),
]


def _with_data_options(fn: Any) -> Any:
    for option in reversed(_data_options):
        fn = option(fn)
    return fn


@airquality.command("evaluate")
@_with_data_options
@click.option("--species", required=True, help="NO2, PM25 (or PM2.5) or PM10.")
@click.option("--method", type=click.Choice(METHOD_NAMES), default="model", show_default=True,
              help="Our model or a baseline: inverse distance weighting, ordinary kriging, kriging with a site-type term.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def evaluate_command(observations: Path, sites: Path, weather: Path | None, traffic: Path | None,
                     count_points: Path | None, every: int, min_capture: float, species: str, method: str,
                     as_json: bool) -> None:
    """Leave each site out in turn, predict its readings from the other sites, and score the predictions."""
    from .airquality.data import normalise_species

    normalise_species(species)
    result = _evaluate(observations, sites, species, method, weather, traffic, count_points, every, min_capture)
    click.echo(json.dumps(result) if as_json else _table(result))


@airquality.command("card")
@_with_data_options
@click.option("--species", "species_list", multiple=True, default=("NO2", "PM25", "PM10"), show_default=True,
              help="Species to evaluate (repeatable).")
@click.option("--write", is_flag=True, help="Store the card as JSON in the package, for the model card page.")
@click.option("--output", type=_file, default=None, help="Store the card in this file instead.")
def card_command(observations: Path, sites: Path, weather: Path | None, traffic: Path | None,
                 count_points: Path | None, every: int, min_capture: float, species_list: tuple[str, ...],
                 write: bool, output: Path | None) -> None:
    """Evaluate every method on every species and print (or store) the model card's evaluation table."""
    from .airquality import card
    from .airquality.data import normalise_species

    codes = [normalise_species(s) for s in species_list]
    results = [_evaluate(observations, sites, code, method, weather, traffic, count_points, every, min_capture,
                         label=f"{code} {method}") for code in codes for method in METHOD_NAMES]
    stored = card.build(results, source={"observations": observations.name, "sites": sites.name})
    target = output or (card.CARD_PATH if write else None)
    if target is not None:
        card.save(stored, target)
        main_module().console.print(f"Model card evaluation written to {target}.")
    click.echo(card.text_table(stored))


@airquality.command("nowcast")
@click.option("--species", default="all", show_default=True, help="NO2, PM2.5 (or PM25), PM10, or all.")
@click.option("--hour", default=None, help="The hour to nowcast (ISO 8601, UTC unless it says otherwise, like "
                                           "2023-03-31T23:00Z); default: the latest hour with enough readings.")
@click.option("--hours", type=click.IntRange(min=1, max=24 * 14), default=1, show_default=True,
              help="Also nowcast the N-1 hours before it (each one with enough readings).")
def nowcast_command(species: str, hour: str | None, hours: int) -> None:
    """Nowcast air quality on the 100 m grid and at every LSOA from the sensor hub, and store it."""
    from datetime import datetime, timedelta, timezone

    from .airquality import nowcast as nc

    cli = main_module()
    try:
        keys = list(nc.SPECIES) if species.lower() == "all" else [nc.species_of(species)]
    except nc.NowcastError as exc:
        raise BadRequest(f"--species: {exc} (or all)") from exc
    when = None
    if hour:
        try:
            parsed = datetime.fromisoformat(hour.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise BadRequest(f"--hour {hour!r} is not a time: give it as ISO 8601, like 2023-03-31T23:00Z.") from exc
        when = nc.hour_start(parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc))
    env = cli.Env()
    made, failed = [], []
    with cli.progress_bar() as bar:
        task = bar.add_task("Nowcasting", total=len(keys) * hours)
        for key in keys:
            newest = when
            for back in range(hours):
                try:
                    if newest is None:  # the latest hour with enough readings, then the hours before it
                        run = nc.run_nowcast(env.db, env.settings, key,
                                             progress=lambda m, k=key: bar.update(task, description=f"{k}: {m}"))
                        newest = run.hour
                    else:
                        run = nc.run_nowcast(env.db, env.settings, key, newest - timedelta(hours=back),
                                             progress=lambda m, k=key: bar.update(task, description=f"{k}: {m}"))
                    made.append(run)
                except nc.NowcastError as exc:
                    failed.append(f"{nc.DISPLAY[key]}: {exc}")
                    if newest is None:
                        bar.advance(task, hours - back)
                        break
                bar.advance(task)
    for run in made:
        cli.console.print(f"{nc.DISPLAY[run.species]} {run.hour:%Y-%m-%d %H:00} UTC: {run.method}, "
                          f"{run.n_reference_sites} reference and {run.n_sensor_sites} low-cost sites, "
                          f"{run.n_cells:,} cells, {run.seconds:.1f} s")
    for message in failed:
        cli.console.print(f"[yellow]Skipped[/] {message}")
    if not made:
        cli.fail("No nowcast was made: " + "; ".join(failed))
