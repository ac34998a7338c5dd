"""Re-pseudonymising stored rows after a key rotation, in one DuckDB transaction.

A pseudonym is a keyed HMAC of the raw identifier, so nobody (the platform included) can turn an old
epoch's pseudonym into the new epoch's one without the identifier: there is no algebra between two HMAC
keys. Keeping the raw identifiers, or an escrowed copy of them, for the rotation window would put back
in the store exactly what pseudonymisation took out. So the rewrite is done the honest way: the data
controller supplies the source identifiers again (the same file, or a current extract, it ingested from).
For every identifier we compute its pseudonym in each retired epoch whose key still exists and in the
current epoch, and rewrite ``old -> new`` in the table.

``rotate_and_rewrite`` does the rotation and the rewrite together: the new epoch is ``pending`` while the
rows are rewritten to it and becomes current only once that committed; if it fails, the new key is shredded
and the previous epoch stays current, so there is never a current epoch with half the data on it.

Atomic: the mapping is computed (and every identifier checked) before anything is written, then the
rewrite of every identifier column, the check that no row keeps a pseudonym the source does not account
for, and the renumbering bookkeeping happen in one transaction of the restricted store
(``RestrictedStore.rewrite``). Any failure rolls it all back: the old pseudonyms stay in place. Only after the commit may the retired keys be destroyed.

Subject numbers keep the access log valid: the log's stored subject sets hold the store's dense subject
numbers (``_subjects``), not pseudonyms. A rewritten pseudonym keeps its number (its ``_subjects`` row is
updated in place), so uses logged before the rotation are still found by a subject access request made
with the new epoch's pseudonym, even after the old key is destroyed. When a person was ingested in both
epochs they have two numbers; their rows are moved to the new one and ``_subject_aliases`` records
``old number -> new number`` (numbers only, never a pseudonym), which ``subjects.uses_of`` follows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...core.errors import ValidationFailed
from ..store import RestrictedStore, check_identifier, quote
from .pseudonyms import KINDS, Pseudonymiser

ALIASES = "_subject_aliases"
Progress = Callable[[int], None]  # called with the number of source values just handled


@dataclass
class Rewrite:
    """What a re-pseudonymisation did."""

    table: str
    epoch: str                       # the epoch the rows are now in
    from_epochs: list[str]           # the retired epochs whose pseudonyms were rewritten
    rows: int = 0                    # rows of the table
    changed: dict[str, int] = field(default_factory=dict)   # per identifier column: values rewritten
    merged_subjects: int = 0         # people ingested in two epochs whose numbers were joined
    destroyed: list[str] = field(default_factory=list)      # keys destroyed after the commit

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain data."""
        return {"table": self.table, "epoch": self.epoch, "from_epochs": self.from_epochs, "rows": self.rows,
                "changed": self.changed, "merged_subjects": self.merged_subjects, "destroyed": self.destroyed}


def _mapping(pseudonymiser: Pseudonymiser, kind: str, values: Iterable[Any], old_epochs: list[str], current: str,
             progress: Progress | None = None) -> tuple[tuple[list[str], list[str]], list[int]]:
    """The (old, new) pseudonym pairs of every identifier, as two lists, and the 1-based positions of bad ones.

    Each new pseudonym is also paired with itself, so that rows already in the current epoch count as covered.
    """
    table, bad = pseudonymiser.pseudonym_table(kind, values, [current, *old_epochs], progress=progress)
    olds: dict[str, str] = {}
    for new, *previous in table:
        for old in previous:
            olds[old] = new
    news = [row[0] for row in table]
    return ([*olds, *news], [*olds.values(), *news]), bad


def ensure_alias_table(store: RestrictedStore) -> None:
    """Create the table of joined subject numbers if the store has none yet."""
    with store.cursor() as cur:
        cur.execute(f"CREATE TABLE IF NOT EXISTS {ALIASES} (subject_no BIGINT PRIMARY KEY, alias_of BIGINT NOT NULL)")


def aliases_of(store: RestrictedStore, numbers: Iterable[int]) -> set[int]:
    """The older subject numbers joined to these ones by a rewrite (so earlier uses are found too)."""
    wanted = sorted({int(n) for n in numbers})
    if not wanted:
        return set()
    ensure_alias_table(store)
    found: set[int] = set()
    frontier = wanted
    with store.cursor() as cur:
        while frontier:  # follow chains: a number may have been joined more than once over many rotations
            rows = cur.execute(f"SELECT subject_no FROM {ALIASES} WHERE alias_of IN (SELECT unnest(?))",
                               [frontier]).fetchall()
            frontier = [int(r[0]) for r in rows if int(r[0]) not in found and int(r[0]) not in wanted]
            found.update(frontier)
    return found


def repseudonymise(store: RestrictedStore, pseudonymiser: Pseudonymiser, table: str,
                   sources: Mapping[str, tuple[str, Iterable[Any]]], *, destroy_old: bool = False,
                   progress: Progress | None = None) -> Rewrite:
    """Rewrite ``table``'s identifier columns from every retired live epoch to the current one.

    ``sources`` maps each identifier column of the table to (kind, the raw identifiers of the source). The
    source must account for every stored pseudonym (422 otherwise, nothing changed). With ``destroy_old``
    the retired keys are destroyed once the rewrite has committed.
    """
    _check(store, table, sources)
    current = pseudonymiser.current_epoch()
    old_epochs = [e for e in pseudonymiser.live_epochs() if e != current]
    if not old_epochs:
        raise ValidationFailed("There is no retired epoch with a key to rewrite from: rotate the key first.",
                               {"epoch": "Run `smartlondon sharing rotate-key`, then rewrite."})
    result = _rewrite(store, pseudonymiser, table, sources, old_epochs, current, progress)
    if destroy_old:
        _destroy(pseudonymiser, result)
    return result


def rotate_and_rewrite(store: RestrictedStore, pseudonymiser: Pseudonymiser, table: str,
                       sources: Mapping[str, tuple[str, Iterable[Any]]], *, destroy_old: bool = False,
                       progress: Progress | None = None) -> Rewrite:
    """Start a new key epoch and rewrite ``table`` to it; the epoch becomes current only if the rewrite commits.

    If anything fails (a bad or incomplete source included) the rows keep their pseudonyms, the epoch that
    was current stays current and the new key is shredded. With ``destroy_old`` the older epochs' keys are
    destroyed after the new epoch is current.
    """
    _check(store, table, sources)
    with pseudonymiser.rotation() as epoch:
        old_epochs = [e for e in pseudonymiser.live_epochs() if e != epoch]
        if not old_epochs:  # nothing was pseudonymised yet: there is nothing to rewrite from
            raise ValidationFailed("There is no key epoch to rewrite from: nothing has been pseudonymised yet.",
                                   {"epoch": "Ingest data first, or rotate without --rewrite."})
        result = _rewrite(store, pseudonymiser, table, sources, old_epochs, epoch, progress)
    if destroy_old:
        _destroy(pseudonymiser, result)
    return result


def _check(store: RestrictedStore, table: str, sources: Mapping[str, tuple[str, Iterable[Any]]]) -> None:
    """422 unless ``table`` exists and each source names one of its columns and a known identifier kind."""
    check_identifier(table, "table")
    columns = store.columns(table)
    if not sources:
        raise ValidationFailed("Name at least one identifier column to rewrite.",
                               {"identifier": "Give KIND=COLUMN for each identifier column."})
    for column, (kind, _) in sources.items():
        if column not in columns:
            raise ValidationFailed(f"'{column}' is not a column of {table}.",
                                   {"identifier": f"Use one of {', '.join(c for c in columns if not c.startswith('_'))}."})
        if kind not in KINDS:
            raise ValidationFailed(f"Unknown identifier kind '{kind}'.", {"identifier": f"Use one of {', '.join(KINDS)}."})


def _destroy(pseudonymiser: Pseudonymiser, result: Rewrite) -> None:
    """Destroy the keys the rows were rewritten from (only ever after the rewrite committed)."""
    for epoch in result.from_epochs:
        pseudonymiser.destroy(epoch)
        result.destroyed.append(epoch)


def _rewrite(store: RestrictedStore, pseudonymiser: Pseudonymiser, table: str,
             sources: Mapping[str, tuple[str, Iterable[Any]]], old_epochs: list[str], current: str,
             progress: Progress | None) -> Rewrite:
    """Compute every column's mapping (checking the source), then rewrite the table in one store transaction."""
    subject_column, _ = store.table_info(table)
    mappings: dict[str, tuple[list[str], list[str]]] = {}
    for column, (kind, values) in sources.items():
        pairs, bad = _mapping(pseudonymiser, kind, values, old_epochs, current, progress)
        if bad:
            shown = ", ".join(str(b) for b in bad[:10]) + (" and more" if len(bad) > 10 else "")
            raise ValidationFailed(f"{len(bad)} values of {column} in the source are not valid {kind} identifiers "
                                   f"(source rows {shown}); nothing was changed.", {"source": "Fix them first."})
        mappings[column] = pairs
    result = Rewrite(table=table, epoch=current, from_epochs=old_epochs)
    ensure_alias_table(store)

    def work(cur: Any) -> None:
        for column, (olds, news) in mappings.items():
            col = quote(column)
            # no key constraint: the olds are distinct by construction and an index costs more than the joins
            cur.execute("CREATE OR REPLACE TEMP TABLE _rekey (old VARCHAR NOT NULL, new VARCHAR NOT NULL)")
            # pseudonyms are hex, so each list travels as one comma-joined string split in SQL: several times
            # faster than binding a list of strings (and executemany, row by row, is slower still)
            cur.execute("INSERT INTO _rekey SELECT unnest(string_split(?, ',')), unnest(string_split(?, ','))",
                        [",".join(olds), ",".join(news)])
            unknown = cur.execute(f"SELECT count(*) FROM {quote(table)} t WHERE t.{col} IS NOT NULL AND NOT "
                                  f"EXISTS (SELECT 1 FROM _rekey m WHERE m.old = t.{col})").fetchone()[0]
            if unknown:
                raise ValidationFailed(
                    f"{unknown} rows of {table} hold a {column} pseudonym that no identifier in the source "
                    "gives (in any live epoch): supply the complete source. Nothing was changed.",
                    {"source": "The source must cover every stored row."})
            if column == subject_column:
                result.merged_subjects = _renumber(cur, table)
            result.changed[column] = int(cur.execute(
                f"SELECT count(*) FROM {quote(table)} t JOIN _rekey m ON m.old = t.{col} "
                "WHERE m.old <> m.new").fetchone()[0])
            cur.execute(f"UPDATE {quote(table)} SET {col} = m.new FROM _rekey m "
                        f"WHERE {quote(table)}.{col} = m.old AND m.old <> m.new")
        result.rows = int(cur.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0])

    store.rewrite([table], work)
    return result


def _renumber(cur: Any, table: str) -> int:
    """Give each new pseudonym the subject number of its old one (the temp table ``_rekey`` holds the pairs).

    A new pseudonym the store has not seen takes over the old one's number. One it has seen (the person was
    also ingested in the new epoch) keeps its own number: the table's rows move to it and the old number is
    recorded as its alias. Returns the number of people joined that way.
    """
    cur.execute("""CREATE OR REPLACE TEMP TABLE _renumber AS
        SELECT m.old, m.new, o.subject_no AS old_no, n.subject_no AS new_no
        FROM _rekey m JOIN _subjects o ON o.pseudonym = m.old LEFT JOIN _subjects n ON n.pseudonym = m.new
        WHERE m.old <> m.new""")
    # a new pseudonym reached from two old epochs: the first old number takes it over, the other is joined
    cur.execute("""CREATE OR REPLACE TEMP TABLE _takeover AS
        SELECT new, min(old_no) AS old_no FROM _renumber WHERE new_no IS NULL GROUP BY new""")
    # delete and insert rather than UPDATE: DuckDB updates an indexed column row by row through its indexes,
    # three times slower than this for 200,000 people
    cur.execute("DELETE FROM _subjects WHERE subject_no IN (SELECT old_no FROM _takeover)")
    cur.execute("INSERT INTO _subjects (pseudonym, subject_no) SELECT new, old_no FROM _takeover")
    cur.execute("""CREATE OR REPLACE TEMP TABLE _joined AS
        SELECT r.old_no, coalesce(r.new_no, t.old_no) AS new_no
        FROM _renumber r LEFT JOIN _takeover t ON t.new = r.new
        WHERE coalesce(r.new_no, t.old_no) <> r.old_no""")
    joined = int(cur.execute("SELECT count(*) FROM _joined").fetchone()[0])
    if joined:
        cur.execute(f"UPDATE {quote(table)} SET _subject_no = j.new_no FROM _joined j "
                    f"WHERE {quote(table)}._subject_no = j.old_no")
        cur.execute(f"INSERT INTO {ALIASES} SELECT old_no, new_no FROM _joined "
                    f"WHERE old_no NOT IN (SELECT subject_no FROM {ALIASES})")
    return joined
