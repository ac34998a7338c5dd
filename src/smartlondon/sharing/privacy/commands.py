"""``smartlondon sharing`` commands of privacy by design: ingest with pseudonyms, and the key epochs.

    smartlondon sharing ingest --dataset SLUG FILE.csv --identifier nhs_number=NHS_NUMBER
    smartlondon sharing epochs                  the key epochs and their status (never the keys)
    smartlondon sharing rotate-key              start a new epoch; the previous one is retired
    smartlondon sharing rotate-key --rewrite --dataset SLUG FILE.csv --identifier nhs_number=NHS_NUMBER
                                   [--destroy-old --yes]
                                                the same, rewriting one dataset to the new epoch before it is current
    smartlondon sharing destroy-key EPOCH       crypto-shred a retired epoch: its pseudonyms become unlinkable
    smartlondon sharing repseudonymise --dataset SLUG FILE.csv --identifier nhs_number=NHS_NUMBER [--destroy-old --yes]
                                                rewrite stored rows from retired epochs to the current one
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from ...core.commands import main_module as _main
from ...core.errors import ValidationFailed
from .pseudonyms import KINDS, Pseudonymiser


def _identifiers(values: tuple[str, ...]) -> dict[str, str]:
    """``KIND=COLUMN`` options as {column: kind}, in the order given (the first is the person)."""
    out: dict[str, str] = {}
    for value in values:
        kind, sep, column = value.partition("=")
        if not sep or kind not in KINDS or not column:
            raise ValidationFailed(f"'{value}' is not KIND=COLUMN.",
                                   {"identifier": f"Use e.g. nhs_number=NHS_NUMBER; kinds: {', '.join(KINDS)}."})
        out[column] = kind
    return out


@click.command("ingest")
@click.option("--dataset", required=True, help="The restricted dataset's short name.")
@click.option("--identifier", "identifiers", multiple=True, required=True,
              help="KIND=COLUMN for each direct identifier column (first: the person), e.g. nhs_number=NHS_NUMBER.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def ingest(dataset: str, identifiers: tuple[str, ...], file: Path) -> None:
    """Load a CSV file into a restricted dataset, replacing direct identifiers with pseudonyms."""
    from .ingest import ingest_csv

    main = _main()
    env = main.Env()
    columns = _identifiers(identifiers)
    with main.progress_bar() as bar, env.db.session() as session:
        task = bar.add_task(f"Pseudonymising {file.name}", total=None)
        loaded = ingest_csv(session, env.settings, dataset=dataset, path=file, identifiers=columns,
                            total=lambda n: bar.update(task, total=n),
                            progress=lambda n: bar.advance(task, n))
    click.echo(f"Loaded {loaded} rows into {dataset}; identifiers replaced with epoch "
               f"{Pseudonymiser(env.settings).current_epoch()} pseudonyms.")


@click.command("epochs")
def epochs() -> None:
    """List the pseudonym key epochs and their status."""
    env = _main().Env()
    rows = Pseudonymiser(env.settings).epochs()
    if not rows:
        click.echo("No key epochs yet: the first is created when data is first pseudonymised.")
    for entry in rows:
        click.echo(f"{entry['name']}\t{entry['status']}\tcreated {entry.get('created', '')}")


@click.command("rotate-key")
@click.option("--rewrite", is_flag=True,
              help="Also rewrite one dataset to the new epoch, from its source file, before the epoch becomes current.")
@click.option("--dataset", help="With --rewrite: the restricted dataset's short name.")
@click.option("--identifier", "identifiers", multiple=True,
              help="With --rewrite: KIND=COLUMN for each identifier column of the source file, as at ingest.")
@click.option("--destroy-old", is_flag=True, help="With --rewrite: after it commits, destroy the older epochs' keys.")
@click.option("--yes", is_flag=True, help="Confirm --destroy-old: it cannot be undone.")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def rotate_key(rewrite: bool, dataset: str | None, identifiers: tuple[str, ...], destroy_old: bool, yes: bool,
               file: Path | None) -> None:
    """Start a new key epoch; the current one is retired (kept for subject requests until destroyed).

    With --rewrite, one dataset is re-pseudonymised to the new epoch before the epoch becomes current; if
    that fails the new epoch is dropped and nothing changes. One dataset per call: rewrite any others
    afterwards with `repseudonymise`, which moves rows from every older live epoch.
    """
    main = _main()
    if not rewrite:
        if dataset or identifiers or file or destroy_old:
            main.fail("--dataset, --identifier, --destroy-old and FILE go with --rewrite.")
        env = main.Env()
        click.echo(f"New current epoch: {Pseudonymiser(env.settings).rotate()}")
        return
    if not (dataset and identifiers and file):
        main.fail("--rewrite needs --dataset SLUG, the source FILE.csv and --identifier KIND=COLUMN.")
        return
    if destroy_old and not yes:
        main.fail("Destroying the older keys cannot be undone. Run again with --yes to confirm.")
    from .rekey import rotate_and_rewrite

    env = main.Env()
    with _source(env, dataset, identifiers, file) as (store, table, sources, progress):
        done = rotate_and_rewrite(store, Pseudonymiser(env.settings), table, sources, destroy_old=destroy_old,
                                  progress=progress)
    click.echo(f"New current epoch: {done.epoch}.")
    _report(dataset, done)


@click.command("destroy-key")
@click.argument("epoch")
@click.option("--yes", is_flag=True, help="Confirm: this cannot be undone.")
def destroy_key(epoch: str, yes: bool) -> None:
    """Overwrite and delete a retired epoch's key: nobody can recompute or link its pseudonyms again."""
    if not yes:
        _main().fail(f"Destroying the key of {epoch} cannot be undone. Run again with --yes to confirm.")
    env = _main().Env()
    Pseudonymiser(env.settings).destroy(epoch)
    click.echo(f"The key of epoch {epoch} is destroyed: its pseudonyms can no longer be linked to anyone.")


@click.command("repseudonymise")
@click.option("--dataset", required=True, help="The restricted dataset's short name.")
@click.option("--identifier", "identifiers", multiple=True, required=True,
              help="KIND=COLUMN for each identifier column of the source file, as at ingest.")
@click.option("--destroy-old", is_flag=True, help="After the rewrite commits, destroy the retired epochs' keys.")
@click.option("--yes", is_flag=True, help="Confirm --destroy-old: it cannot be undone.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def repseudonymise_command(dataset: str, identifiers: tuple[str, ...], destroy_old: bool, yes: bool, file: Path) -> None:
    """Rewrite a dataset's stored pseudonyms to the current epoch, from the source identifiers (all or nothing)."""
    from .rekey import repseudonymise

    main = _main()
    if destroy_old and not yes:
        main.fail("Destroying the retired keys cannot be undone. Run again with --yes to confirm.")
    env = main.Env()
    with _source(env, dataset, identifiers, file) as (store, table, sources, progress):
        done = repseudonymise(store, Pseudonymiser(env.settings), table, sources, destroy_old=destroy_old,
                              progress=progress)
    _report(dataset, done)


@contextmanager
def _source(env: Any, dataset: str, identifiers: tuple[str, ...],
            file: Path) -> Iterator[tuple[Any, str, dict[str, Any], Any]]:
    """The store, the dataset's table, its source identifiers as ``repseudonymise`` takes them, and a progress
    callback drawing the bar while the block runs."""
    import csv

    from ..agreements import get_restricted
    from ..store import RestrictedStore

    columns = _identifiers(identifiers)
    with env.db.session() as session:
        target = get_restricted(session, dataset)
        table, subject_column = target.table_name, target.subject_column
    first = next(iter(columns))  # stored as ingest names them: the person, then KIND_pseudonym
    stored = {c: (subject_column if c == first and subject_column else f"{kind}_pseudonym")
              for c, kind in columns.items()}
    with open(file, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ValidationFailed(f"The file has no column {missing[0]}.", {"identifier": "Name a column of the file."})
        values: dict[str, list[str]] = {c: [] for c in columns}
        for row in reader:  # only the identifier columns are read, and only into memory
            for column in columns:
                values[column].append(row[column])
    sources = {stored[c]: (kind, values[c]) for c, kind in columns.items()}
    with _main().progress_bar() as bar:
        task = bar.add_task(f"Pseudonymising {file.name}", total=sum(len(v) for v in values.values()))
        yield RestrictedStore(env.settings), table, sources, lambda n: bar.advance(task, n)


def _report(dataset: str, done: Any) -> None:
    changed = ", ".join(f"{n} {c}" for c, n in done.changed.items())
    click.echo(f"Rewrote {dataset} ({done.rows} rows; values changed: {changed}) from epoch "
               f"{', '.join(done.from_epochs)} to {done.epoch}."
               + (f" Destroyed the key of {', '.join(done.destroyed)}." if done.destroyed else ""))


COMMANDS = (ingest, epochs, rotate_key, destroy_key, repseudonymise_command)
