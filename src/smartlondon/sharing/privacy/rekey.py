"""Re-pseudonymising stored rows after a key rotation, in one DuckDB transaction.

A pseudonym is a keyed HMAC of the raw identifier, so nobody (the platform included) can turn an old
epoch's pseudonym into the new epoch's one without the identifier: there is no algebra between two HMAC
keys. Keeping the raw identifiers, or an escrowed copy of them, for the rotation window would put back
in the store exactly what pseudonymisation took out. So the rewrite is done the honest way: the data
controller supplies the source identifiers again (the same file, or a current extract, it ingested from).
For every identifier we compute its pseudonym in each retired epoch whose key still exists and in the
current epoch, and rewrite ``old -> new`` in the table.

Atomic: the mapping is computed (and every identifier checked) before anything is written, then the
rewrite of every identifier column, the check that no row keeps a pseudonym the source does not account
for, and the renumbering bookkeeping happen in one transaction of the restricted store. Any failure rolls
it all back: the old pseudonyms stay in place. Only after the commit may the retired keys be destroyed.

Subject numbers keep the access log valid: the log's stored subject sets hold the store's dense subject
numbers (``_subjects``), not pseudonyms. A rewritten pseudonym keeps its number (its ``_subjects`` row is
updated in place), so uses logged before the rotation are still found by a subject access request made
with the new epoch's pseudonym, even after the old key is destroyed. When a person was ingested in both
epochs they have two numbers; their rows are moved to the new one and ``_subject_aliases`` records
``old number -> new number`` (numbers only, never a pseudonym), which ``subjects.uses_of`` follows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...core.errors import ValidationFailed
from .. import store as store_module
from ..store import RestrictedStore, check_identifier, quote
from .pseudonyms import KINDS, Pseudonymiser, normalise

ALIASES = "_subject_aliases"


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


def _mapping(pseudonymiser: Pseudonymiser, kind: str, values: Iterable[Any], old_epochs: list[str],
             current: str) -> tuple[list[tuple[str, str]], list[int]]:
    """(old, new) pseudonym pairs for every identifier, and the 1-based positions of bad identifiers."""
    pairs: dict[str, str] = {}
    news: set[str] = set()
    bad: list[int] = []
    for position, value in enumerate(values, start=1):
        if value is None or str(value).strip() == "":
            continue
        try:
            normalise(kind, str(value))
        except ValidationFailed:
            bad.append(position)
            continue
        new = pseudonymiser.pseudonym(kind, str(value), epoch=current)
        news.add(new)
        for epoch in old_epochs:
            pairs[pseudonymiser.pseudonym(kind, str(value), epoch=epoch)] = new
    return [*pairs.items(), *((n, n) for n in news)], bad


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
                   sources: Mapping[str, tuple[str, Iterable[Any]]], *, destroy_old: bool = False) -> Rewrite:
    """Rewrite ``table``'s identifier columns from every retired live epoch to the current one.

    ``sources`` maps each identifier column of the table to (kind, the raw identifiers of the source). The
    source must account for every stored pseudonym (422 otherwise, nothing changed). With ``destroy_old``
    the retired keys are destroyed once the rewrite has committed.
    """
    check_identifier(table, "table")
    subject_column, _ = store.table_info(table)
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
    current = pseudonymiser.current_epoch()
    old_epochs = [e for e in pseudonymiser.live_epochs() if e != current]
    if not old_epochs:
        raise ValidationFailed("There is no retired epoch with a key to rewrite from: rotate the key first.",
                               {"epoch": "Run `smartlondon sharing rotate-key`, then rewrite."})
    mappings: dict[str, list[tuple[str, str]]] = {}
    for column, (kind, values) in sources.items():
        pairs, bad = _mapping(pseudonymiser, kind, values, old_epochs, current)
        if bad:
            shown = ", ".join(str(b) for b in bad[:10]) + (" and more" if len(bad) > 10 else "")
            raise ValidationFailed(f"{len(bad)} values of {column} in the source are not valid {kind} identifiers "
                                   f"(source rows {shown}); nothing was changed.", {"source": "Fix them first."})
        mappings[column] = pairs
    result = Rewrite(table=table, epoch=current, from_epochs=old_epochs)
    ensure_alias_table(store)
    with store_module._write_lock, store.cursor() as cur:
        cur.execute("BEGIN TRANSACTION")
        try:
            for column, pairs in mappings.items():
                col = quote(column)
                cur.execute("CREATE OR REPLACE TEMP TABLE _rekey (old VARCHAR PRIMARY KEY, new VARCHAR NOT NULL)")
                # two lists unnested in one statement: executemany would insert row by row
                cur.execute("INSERT INTO _rekey SELECT unnest(?), unnest(?)",
                            [[old for old, _ in pairs], [new for _, new in pairs]])
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
            cur.execute("DELETE FROM _exclusions WHERE name = ?", [table])  # subject numbers may have changed
            RestrictedStore._refresh_info(cur, table, subject_column)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        finally:
            store_module._known.pop(store.path, None)
            store_module._unknown.pop(store.path, None)
            store_module._forget(store.path, table)
    if destroy_old:
        for epoch in old_epochs:
            pseudonymiser.destroy(epoch)
            result.destroyed.append(epoch)
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
    cur.execute("UPDATE _subjects SET pseudonym = t.new FROM _takeover t WHERE _subjects.subject_no = t.old_no")
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
