"""``smartlondon places``: the register's commands (each part of the places capability adds its own).

    smartlondon places match INPUT.csv --column NAME [--kind station] [--area Camden] [--out OUT.csv]
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import click

from ..core.commands import PlatformGroup
from ..core.errors import PlatformError
from ..core.commands import main_module as _main


@click.group(cls=PlatformGroup)
def places() -> None:
    """The places register: import, match and look up London's places."""


# --- match (places-match) ---------------------------------------------------------------------------

@places.command("match")
@click.argument("input_csv", metavar="INPUT.csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--column", required=True, help="The column holding the names (or codes) to match.")
@click.option("--kind", default=None, help="Only match places of this kind (station, borough, lsoa, ...).")
@click.option("--area", default=None, help="Only match places in this area (a name, GSS code or ldn: identifier).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the result (default: standard output).")
def match_command(input_csv: Path, column: str, kind: str | None, area: str | None, out_path: Path | None) -> None:
    """Match a CSV column of place names to the register: adds match_uid, match_name, match_kind, score,
    matched and alternatives to every row."""
    from .matching import MATCH_COLUMNS, MatchIndex, match_rows
    from . import service

    cli = _main()
    env = cli.Env()
    handle = open(input_csv, newline="", encoding="utf-8-sig")
    try:
        reader = csv.DictReader(handle)
        header = [h for h in (reader.fieldnames or []) if h is not None]
    except UnicodeDecodeError:
        handle.close()
        cli.fail(f"{input_csv} is not UTF-8 text. Save it as 'CSV UTF-8' and try again.")
    if not header:
        cli.fail(f"{input_csv} is empty. It needs a header row and one name per row.")
    if column not in header:
        cli.fail(f"{input_csv} has no column called '{column}'. Its columns are: {', '.join(header)}.")
    clash = [c for c in MATCH_COLUMNS if c in header]
    if clash:
        cli.fail(f"{input_csv} already has the column(s) {', '.join(clash)}, which matching adds. Rename them.")
    with env.db.session() as session:
        index = MatchIndex(service.iter_match_records(session))
    if kind and kind not in index.kinds:
        cli.fail(f"There are no places of kind '{kind}'. Kinds are: {', '.join(sorted(index.kinds))}.")
    area_uid = index.resolve_area(area).uid if area else None
    with open(input_csv, "rb") as raw:
        total = sum(1 for _ in raw) - 1
    out = open(out_path, "w", newline="", encoding="utf-8") if out_path else sys.stdout
    matched = rows = 0
    try:
        writer = csv.DictWriter(out, fieldnames=header + list(MATCH_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        with cli.progress_bar() as bar:
            task = bar.add_task("Matching", total=max(total, 0))
            clean = ({k: (v if isinstance(v, str) else "") for k, v in row.items() if k is not None} for row in reader)
            for row in match_rows(index, clean, column, kind=kind, area=area_uid):
                writer.writerow(row)
                rows += 1
                matched += row["matched"] == "true"
                bar.advance(task)
    except UnicodeDecodeError:
        if out_path:
            out.close()
            out_path.unlink(missing_ok=True)
        cli.fail(f"{input_csv} is not UTF-8 text. Save it as 'CSV UTF-8' and try again.")
    finally:
        handle.close()
        if out_path and not out.closed:
            out.close()
    cli.console.print(f"Matched {matched} of {rows} rows confidently against {len(index):,} places"
                      + (f"; written to {out_path}." if out_path else "."))


# --- import, load-london, show, nearest, contains (places-core) ---------------------------------------

@places.command("load-london")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="The shared data folder holding boundaries/, transport/ and air-quality/.")
@click.option("--kind", "kinds", multiple=True, help="Only these kinds (borough, msoa, lsoa, station, aq-site).")
def load_london_command(data_dir: Path, kinds: tuple[str, ...]) -> None:
    """Load the 33 boroughs, 983 MSOAs, 4,835 LSOAs, TfL stations and LAQN sites (idempotent)."""
    from . import importer

    cli = _main()
    env = cli.Env()
    with cli.progress_bar() as bar:
        task = bar.add_task("Loading London", total=len(kinds) or 5)

        def done(kind: str, result: Any) -> None:
            bar.advance(task)
            cli.console.print(f"{kind}: {result.created} added, {result.unchanged} already present, "
                              f"{len(result.refused)} refused")
            for key, reason in result.refused[:10]:
                cli.console.print(f"  refused {key}: {reason}")

        with env.db.session() as session:
            importer.load_london(session, data_dir, kinds=kinds or None, on_source=done)


@places.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", required=True, help="The kind of every place in the file.")
@click.option("--key-field", required=True, help="The field holding each place's stable key.")
@click.option("--name-field", required=True, help="The field holding each place's name.")
@click.option("--source", required=True, help="The organisation that asserts these places.")
@click.option("--id", "ids", multiple=True, metavar="SCHEME=FIELD", help="An identifier scheme and its field.")
@click.option("--alt-name-field", "alt_fields", multiple=True, help="A field holding an alternative name.")
@click.option("--property", "prop_fields", multiple=True, help="A field to keep as a property of each place.")
@click.option("--full", is_flag=True, help="The file is the whole source: retire places of this kind first "
              "imported from this source that it no longer holds.")
@click.option("--official", is_flag=True, help="An official boundary file: keep places beyond Greater London and "
              "rebuild touching polygon rings.")
def import_command(path: Path, kind: str, key_field: str, name_field: str, source: str, ids: tuple[str, ...],
                   alt_fields: tuple[str, ...] = (), prop_fields: tuple[str, ...] = (), full: bool = False,
                   official: bool = False) -> None:
    """Import (or re-import) places from a shapefile (.shp with .prj), GeoPackage, GeoJSON or CSV
    (lon/lat or easting/northing): new places are added, changed ones updated, unchanged ones left alone.

    Wards, for example: smartlondon places import wards.shp --kind ward --key-field WD22CD
    --name-field WD22NM --id gss=WD22CD --source ONS --official, then `smartlondon places relink`."""
    from . import importer

    cli = _main()
    env = cli.Env()
    schemes = {}
    for spec in ids:
        if "=" not in spec:
            cli.fail(f"--id {spec!r} must look like SCHEME=FIELD, for example gss=GSS_CODE.")
        scheme, field = spec.split("=", 1)
        schemes[scheme.strip()] = field.strip()
    with cli.progress_bar() as bar:
        task = bar.add_task(f"Importing {path.name}", total=None)
        with env.db.session() as session:
            try:
                result = importer.import_file(session, path, kind=kind, key_field=key_field, name_field=name_field,
                                              source=source, identifiers=schemes, actor="command line",
                                              progress=lambda n: bar.update(task, completed=n),
                                              alt_name_fields=alt_fields, property_fields=prop_fields,
                                              official=official, full=full)
            except PlatformError as exc:
                session.rollback()
                cli.fail(exc.message)
    cli.console.print(f"{result.created} added, {result.updated} updated, {result.unchanged} unchanged, "
                      f"{result.retired} retired, {len(result.refused)} refused")
    for key, reason in result.refused[:20]:
        cli.console.print(f"  refused {key}: {reason}")


@places.command("show")
@click.argument("uid")
def show_command(uid: str) -> None:
    """Print one place (names, identifiers, areas, history) as JSON."""
    import json

    from . import service

    env = _main().Env()
    with env.db.session() as session:
        data = service.place_dict(session, service.get_place(session, uid))
    data.pop("geometry", None)
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@places.command("nearest", context_settings={"ignore_unknown_options": True})
@click.argument("lon", type=float)
@click.argument("lat", type=float)
@click.option("--kind", default=None, help="Only places of this kind.")
@click.option("-n", "count", default=5, show_default=True, type=click.IntRange(1, 100))
def nearest_command(lon: float, lat: float, kind: str | None, count: int) -> None:
    """The places nearest a WGS84 point, with distances in metres."""
    from . import spatial
    from .models import Place

    env = _main().Env()
    with env.db.session() as session:
        for pid, distance in spatial.nearest(session, lon, lat, count, [kind] if kind else []):
            place = session.get(Place, pid)
            click.echo(f"{distance:>9.1f} m  {place.uid}  {place.name}")  # type: ignore[union-attr]


@places.command("contains", context_settings={"ignore_unknown_options": True})
@click.argument("lon", type=float)
@click.argument("lat", type=float)
def contains_command(lon: float, lat: float) -> None:
    """The borough, ward, MSOA and LSOA containing a WGS84 point."""
    from . import spatial

    env = _main().Env()
    with env.db.session() as session:
        rows = spatial.areas_at(session, lon, lat)
    if not rows:
        click.echo("No area in the register contains that point.")
    for _id, uid, kind, name in rows:
        click.echo(f"{kind:<8} {uid}  {name}")


@places.command("relink")
@click.option("--kind", "kinds", multiple=True, help="Only places of these kinds (default: all).")
def relink_command(kinds: tuple[str, ...]) -> None:
    """Recompute every place's containing areas from the geometries (after loading areas later)."""
    from . import service

    env = _main().Env()
    with env.db.session() as session:
        links = service.relink_areas(session, list(kinds) or None)
    click.echo(f"{links} containing-area links written.")
