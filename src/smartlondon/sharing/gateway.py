"""The LODA gateway: an analyst's query under a named agreement, checked, run, controlled and logged.

``submit`` checks every condition of the agreement (approved, in date, the analyst's organisation a
recipient, the purpose, datasets, fields and identifiability covered) and refuses with every reason that
applies. A declarative aggregate is compiled to DuckDB SQL with identifiers checked against the covered
fields and values bound as parameters; SQL runs over per-query views that expose only covered fields. Rows
of opted-out people are excluded by an anti-join. Aggregate outputs pass disclosure control (profiles or
differential privacy) before anyone sees them; every use that read data goes to the hash-chained access log
with the compact set of people whose rows were read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy.orm import Session

from ..core.accounts import Actor, require_authenticated
from ..core.db import utcnow
from ..core.errors import BadRequest, Forbidden, NotFound, ValidationFailed
from ..settings import Settings
from . import accesslog, agreements
from .disclosure.rules import Profile, profile_named
from .disclosure.types import AggregateResult, Outcome
from .models import Agreement, RestrictedDataset, SharingQuery
from .store import RestrictedStore, SubjectIndex, quote

OPS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
MEASURE_OPS = ("count", "sum", "mean")
MAX_ROWS = 50_000


@dataclass
class Plan:
    """A checked query: what it reads and how."""

    kind: str                                   # "aggregate" | "sql"
    datasets: list[RestrictedDataset]
    fields: list[str]
    dimensions: list[str] = field(default_factory=list)
    measures: list[tuple[str, str | None]] = field(default_factory=list)
    where: dict[str, Any] = field(default_factory=dict)
    sql: str = ""
    count_columns: list[str] = field(default_factory=list)


class Refused(Exception):
    """The agreement does not allow this query; ``reasons`` say why."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def _purpose(term: str) -> str:
    term = term.strip()
    return term if term.startswith("dpv:") or not term else f"dpv:{term}"


# --- checking -----------------------------------------------------------------------------------

def parse_body(body: dict[str, Any]) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    """The agreement slug, purpose, query and disclosure of a request body; 422 saying what is missing."""
    errors: dict[str, str] = {}
    slug = body.get("agreement")
    if not isinstance(slug, str) or not slug:
        errors["agreement"] = "Name the agreement you work under, by its slug."
    purpose = body.get("purpose")
    if not isinstance(purpose, str) or not purpose:
        errors["purpose"] = "Give the purpose of this query, a DPV term such as dpv:PublicBenefit."
    query = body.get("query")
    if not isinstance(query, dict) or not (("dataset" in query) ^ ("sql" in query)):
        errors["query"] = ("Give the query as {\"dataset\": slug, \"measures\": [...], \"by\": [...], \"where\": {...}} "
                           "or {\"sql\": \"SELECT ...\", \"count_columns\": [...]}.")
    disclosure = body.get("disclosure", {})
    if disclosure is None:
        disclosure = {}
    if not isinstance(disclosure, dict) or (disclosure and not ({"profile", "dp"} & set(disclosure))):
        errors["disclosure"] = "Give {\"profile\": \"nhs\"} or {\"dp\": {\"epsilon\": 0.5}}, or leave it out."
    elif "dp" in disclosure:
        dp = disclosure["dp"]
        eps = dp.get("epsilon") if isinstance(dp, dict) else None
        if not isinstance(eps, (int, float)) or isinstance(eps, bool) or eps <= 0:
            errors["disclosure.dp.epsilon"] = "Give a positive epsilon, such as 0.5."
    elif "profile" in disclosure and disclosure["profile"] not in ("nhs", "ons"):
        errors["disclosure.profile"] = "Choose the profile nhs or ons."
    if errors:
        raise ValidationFailed("The query request is not valid: " + "; ".join(errors.values()), errors)
    return slug, _purpose(purpose), query, disclosure  # type: ignore[arg-type,return-value]


def check_agreement(agreement: Agreement, actor: Actor, purpose: str, today: date | None = None) -> list[str]:
    """Every reason the agreement does not let this actor query now, for this purpose."""
    today = today or utcnow().date()
    reasons = []
    status = agreements.effective_status(agreement, today)
    if status == "expired":
        reasons.append(f"The agreement {agreement.slug} has expired on {agreement.end_date.isoformat()}.")
    elif status != "approved":
        why = f" ({agreement.status_reason})" if agreement.status_reason else ""
        reasons.append(f"The agreement {agreement.slug} is {status}{why}, not approved.")
    if agreement.start_date > today:
        reasons.append(f"The agreement {agreement.slug} only starts on {agreement.start_date.isoformat()}.")
    recipients = {p.organisation_id for p in agreement.parties if p.role == "recipient"}
    if not (set(actor.roles) & recipients):
        names = ", ".join(p.organisation.name for p in agreement.parties if p.role == "recipient")
        reasons.append(f"Your organisation is not a recipient under the agreement {agreement.slug} "
                       f"(recipients: {names}).")
    if purpose not in agreement.purposes:
        reasons.append(f"The purpose {purpose} is not one the agreement {agreement.slug} allows "
                       f"({', '.join(agreement.purposes)}).")
    return reasons


def _covered(agreement: Agreement) -> dict[str, tuple[RestrictedDataset, list[str]]]:
    return {d.restricted.slug: (d.restricted, list(d.fields)) for d in agreement.datasets}


def plan_aggregate(agreement: Agreement, query: dict[str, Any], dp: bool) -> tuple[Plan, list[str]]:
    """Check a declarative aggregate against the agreement: the plan, and reasons to refuse."""
    errors: dict[str, str] = {}
    reasons: list[str] = []
    slug = query.get("dataset")
    covered = _covered(agreement)
    if not isinstance(slug, str) or slug not in covered:
        raise Refused([f"The agreement {agreement.slug} does not cover the dataset '{slug}'."])
    rd, fields = covered[slug]
    by = query.get("by") or []
    if not isinstance(by, list) or not all(isinstance(b, str) for b in by):
        errors["query.by"] = "Give the dimensions as a list of field names."
        by = []
    measures_in = query.get("measures") or [{"op": "count"}]
    measures: list[tuple[str, str | None]] = []
    if not isinstance(measures_in, list):
        errors["query.measures"] = "Give the measures as a list like [{\"op\": \"count\"}]."
        measures_in = []
    for i, m in enumerate(measures_in):
        op = m.get("op") if isinstance(m, dict) else None
        if op not in MEASURE_OPS:
            errors[f"query.measures.{i}"] = "Each measure needs an op of count, sum or mean."
            continue
        name = m.get("field") if op != "count" else None
        if op != "count" and not isinstance(name, str):
            errors[f"query.measures.{i}.field"] = f"Say which field to {op}."
            continue
        measures.append((op, name))
    where = query.get("where") or {}
    if not isinstance(where, dict):
        errors["query.where"] = "Give the filter as {\"field\": [values]} or {\"field\": {\">=\": 65}}."
        where = {}
    for name, cond in where.items():
        if isinstance(cond, list):
            if not cond or not all(isinstance(v, (str, int, float)) for v in cond):
                errors[f"query.where.{name}"] = "Give a non-empty list of values."
        elif isinstance(cond, dict):
            if not cond or any(op not in OPS or not isinstance(v, (str, int, float)) for op, v in cond.items()):
                errors[f"query.where.{name}"] = f"Use operators {', '.join(OPS)} with a value each."
        else:
            errors[f"query.where.{name}"] = "Give a list of values or {operator: value}."
    if errors:
        raise ValidationFailed("The query is not valid: " + "; ".join(errors.values()), errors)
    used = list(dict.fromkeys([*by, *[n for _, n in measures if n], *where]))
    for name in used:
        spec = rd.field(name)
        if spec is None:
            raise ValidationFailed(f"'{name}' is not a field of {rd.slug}.", {"query": f"Unknown field {name}."})
        if name not in fields:
            reasons.append(f"The agreement {agreement.slug} does not cover the field '{name}' of {rd.slug}.")
        elif spec["identifier"]:
            reasons.append(f"'{name}' is a direct identifier of {rd.slug}: aggregates cannot use it.")
    for op, name in measures:
        spec = rd.field(name) if name else None
        if spec is not None and spec["type"].upper() in ("VARCHAR", "TEXT", "BOOLEAN", "DATE"):
            raise ValidationFailed(f"The field '{name}' is not numeric, so it cannot be given a {op}.",
                                   {"query.measures": f"{name} is not numeric."})
    if len(set(by)) != len(by):
        raise ValidationFailed("Name each dimension once.", {"query.by": "Repeated dimension."})
    return Plan("aggregate", [rd], used, dimensions=list(by), measures=measures, where=dict(where)), reasons


def plan_sql(agreement: Agreement, query: dict[str, Any]) -> tuple[Plan, list[str]]:
    """Check a SQL query: one SELECT over the covered datasets' tables only."""
    from ..catalogue.tabular.sql_guard import referenced_tables

    sql = query.get("sql")
    if not isinstance(sql, str):
        raise ValidationFailed("Give the SQL as a string.", {"query.sql": "Not a string."})
    counts = query.get("count_columns") or []
    if not isinstance(counts, list) or not all(isinstance(c, str) for c in counts):
        raise ValidationFailed("Give count_columns as a list of column names.", {"query.count_columns": "Not a list."})
    text, tables = referenced_tables(sql)
    by_table = {rd.table_name: (rd, fields) for rd, fields in _covered(agreement).values()}
    reasons = [f"The agreement {agreement.slug} does not cover a table called '{t}'." for t in sorted(tables)
               if t not in by_table]
    if not tables:
        reasons.append("The query reads no covered table.")
    if agreement.identifiability == "aggregate" and not counts:
        reasons.append(f"The agreement {agreement.slug} allows aggregate outputs only: declare the columns that count "
                       "people in count_columns so disclosure control can check them, or use a declarative query.")
    used = [rd for t, (rd, _) in by_table.items() if t in tables]
    fields = sorted({f for rd in used for f in by_table[rd.table_name][1]})
    return Plan("sql", used, fields, sql=text, count_columns=list(counts)), reasons


# --- running --------------------------------------------------------------------------------------

def _where_sql(plan: Plan, bounds: dict[str, Any]) -> tuple[str, list[Any]]:
    parts, params = [], []
    for name, cond in sorted(plan.where.items()):
        if isinstance(cond, list):
            parts.append(f"{quote(name)} IN ({', '.join('?' for _ in cond)})")
            params.extend(cond)
        else:
            for op, value in sorted(cond.items()):
                parts.append(f"{quote(name)} {OPS[op]} ?")
                params.append(value)
    return " AND ".join(parts), params


def _excluded(session: Session, store: RestrictedStore, rd: RestrictedDataset, purpose: str) -> set[int]:
    if not rd.subject_column:
        return set()
    try:
        from .privacy.optouts import excluded_subject_nos
    except ImportError:  # privacy not installed: no opt-outs registered
        return set()
    return set(excluded_subject_nos(session, store, rd.slug, purpose))


def _subject_set(cur: duckdb.DuckDBPyConnection, table: str, where: str, params: list[Any]) -> tuple[bytes, int, int]:
    """The compact set of subjects whose rows match, the rows read and the number of subjects."""
    row = cur.execute("SELECT max_subject_no FROM _tables WHERE name = ?", [table]).fetchone()
    top = max(int(row[0] or 0) if row else 0, 1)
    clause = f"WHERE {where}" if where else ""
    blob, ones, rows = cur.execute(f"SELECT b::BLOB, bit_count(b), n FROM (SELECT bitstring_agg(_subject_no, 1, {top}) "
                                   f"AS b, count(*) AS n FROM {quote(table)} {clause})", params).fetchone()
    if blob is None:
        return accesslog.encode_bitmap(b"", 0), int(rows), 0
    pad = len(blob) * 8 - top
    return accesslog.encode_bitmap(bytes(blob), 1 - pad, int(ones)), int(rows), int(ones)


def run_aggregate(session: Session, store: RestrictedStore, plan: Plan, purpose: str, bounds: dict[str, Any],
                  profile: Profile | None = None
                  ) -> tuple[AggregateResult, Callable[[], tuple[dict[str, bytes], int, dict[str, int]]]]:
    """Compute the aggregate's true cells; the subject sets and rows read come from the returned function.

    With a ``profile`` that has dominance rules, sums and means also get what those rules need (see
    ``_dominance``).
    """
    rd = plan.datasets[0]
    _, one_per_subject = store.table_info(rd.table_name)
    with store.cursor() as cur:
        plain, params = _where_sql(plan, bounds)
        excluded = _excluded(session, store, rd, purpose)
        optout, side = store.exclusion(rd.table_name, excluded)
        where = " AND ".join(p for p in (plain, optout) if p)
        # one row per subject: the subject index answers while DuckDB computes the aggregate
        pending = (_in_background(store, rd, where, params, plan, excluded)
                   if one_per_subject and rd.subject_column else None)
        # sums and means as a sum and a count of values, so that the opted-out rows can be taken away
        cols = []
        names = []
        for op, name in plan.measures:
            value = quote(name) if name else ""
            if name and name in bounds:
                lo, hi = bounds[name]
                value = f"least(greatest({quote(name)}, {float(lo)}), {float(hi)})"
            if op == "count":
                cols.append("count(*)")
                names.append("count")
            else:
                cols.append(f"sum({value}), count({value})")
                names.append(f"{op}_{name}")
        n_expr = "count(*)" if one_per_subject or not rd.subject_column else "count(DISTINCT _subject_no)"
        dims = ", ".join(quote(d) for d in plan.dimensions)
        magnitudes = list(dict.fromkeys(n for op, n in plan.measures if op != "count" and n))
        if profile is None or not profile.has_magnitude_rules:
            magnitudes = []
        select = ", ".join([*(quote(d) for d in plan.dimensions), *cols, n_expr])

        def aggregate(table: str, condition: str) -> list[tuple[Any, ...]]:
            sql = f"SELECT {select} FROM {table}"
            if condition:
                sql += f" WHERE {condition}"
            if dims:
                sql += f" GROUP BY {dims} ORDER BY {dims}"
            return cur.execute(sql, params).fetchall()

        # the opted-out people's rows are few: aggregating them apart and subtracting spares the big scan a
        # filter (counts, sums and distinct people are additive over disjoint sets of people)
        raw = aggregate(quote(rd.table_name), plain if side else where)
        if side:
            raw = _subtract(raw, aggregate(side, plain), len(plan.dimensions))
        rows = _finish_measures(raw, plan, len(plan.dimensions))
        k = len(plan.dimensions)
        width = k + len(names) + 1
        dominance: dict[tuple[Any, ...], dict[str, list[float]]] = {}
        if magnitudes and rows and not (one_per_subject and _surely_safe(
                profile, plan, rows, width, {m: store.column_stats(rd.table_name, m) for m in magnitudes},  # type: ignore[arg-type]
                names)):
            dominance = _dominance(cur, plan, rd, where, params, one_per_subject, magnitudes, names)
    out = []
    for row in rows:
        cell = dict(zip(plan.dimensions, row[:k]))
        cell.update(zip(names, (float(v) if isinstance(v, float) else v for v in row[k:width - 1])))
        cell["_n"] = int(row[width - 1])
        if not plan.dimensions and cell["_n"] == 0:
            cell.update({n: 0 if n == "count" else None for n in names})
        out.append(cell)
    result = AggregateResult(datasets=[rd.slug], dimensions=list(plan.dimensions), measures=names, rows=out,
                             where=_canonical_where(plan.where), query_kind="aggregate")
    if bounds:
        result.bounds = {k: list(v) for k, v in bounds.items()}  # type: ignore[attr-defined]
    if magnitudes:
        result.dominance = dominance
        result.dominance_checked = True
    # a second pass in DuckDB starts after the aggregate: both at once only compete
    return result, pending or _in_background(store, rd, where, params)


def _subtract(whole: list[tuple[Any, ...]], part: list[tuple[Any, ...]], k: int) -> list[tuple[Any, ...]]:
    """``whole`` minus ``part`` cell by cell (both: dimensions, then additive values); empty cells dropped.

    With no dimensions the single row stays, as an aggregate over no rows does.
    """
    if not part:
        return whole
    minus = {tuple(r[:k]): r[k:] for r in part}
    out = []
    for row in whole:
        taken = minus.get(tuple(row[:k]))
        if taken is not None:
            row = (*row[:k], *((a or 0) - (b or 0) for a, b in zip(row[k:], taken)))
            if k and not row[-1]:
                continue  # everyone in this cell opted out: the filtered query has no such group
        out.append(row)
    return out


def _finish_measures(raw: list[tuple[Any, ...]], plan: Plan, k: int) -> list[tuple[Any, ...]]:
    """Rows of (dimensions, one value per measure, people) from rows with a (sum, count of values) per sum or
    mean: a mean is sum / count, and a sum or mean over no values is NULL, as in SQL."""
    out = []
    for row in raw:
        values: list[Any] = list(row[:k])
        i = k
        for op, _ in plan.measures:
            if op == "count":
                values.append(row[i])
                i += 1
                continue
            total, n = row[i], row[i + 1]
            i += 2
            if not n:
                values.append(None)
            elif op == "sum":
                values.append(total)
            else:  # int / int divides exactly rounded; a DECIMAL's quotient becomes a float like avg() gives
                values.append(total / n if isinstance(total, (int, float)) else float(total / n))
        values.append(row[i])
        out.append(tuple(values))
    return out


def _surely_safe(profile: Profile, plan: Plan, rows: list[tuple[Any, ...]], width: int,
                 stats: dict[str, tuple[Any, Any, bool]], names: list[str]) -> bool:
    """True when the column's least and largest values prove no cell (margins too) is dominated.

    For a table with one row per person: when a column has no negative values and no NULLs, each cell's
    total is its sum (or mean times its count of rows) and no contribution exceeds the column's largest value,
    so a cell with ``n x largest <= k% x total`` cannot be dominated. The test only gets easier as a total
    grows (and a zero total is never sensitive), and a margin's total is the sum of its cells' non-negative
    totals: so when every cell passes, every margin does too, and only the cells need checking.
    """
    k = len(plan.dimensions)
    n_at = width - 1
    for name, (low, high, nulls) in stats.items():
        if low is None:
            continue  # only NULLs: nothing to add up
        if nulls or low < 0:
            return False
        largest = float(high)
        if f"sum_{name}" in names:
            at = k + names.index(f"sum_{name}")
            totals = (float(row[at] or 0.0) for row in rows)
        else:
            at = k + names.index(f"mean_{name}")
            totals = (float(row[at]) * int(row[n_at]) if row[at] is not None else 0.0 for row in rows)
        if not all(profile.surely_safe(total, largest) for total in totals):
            return False
    return True


def _dominance(cur: duckdb.DuckDBPyConnection, plan: Plan, rd: RestrictedDataset, where: str, params: list[Any],
               one_per_subject: bool, magnitudes: list[str],
               names: list[str]) -> dict[tuple[Any, ...], dict[str, list[float]]]:
    """Per cell (margins too) and sum/mean measure: [total, largest, second largest] absolute contribution.

    A contributor is a person (the sum of their rows in the cell; in a margin, over the cells it covers) or,
    in a table without people, a row. One pass per set of dimensions the published table shows.
    """
    from .disclosure.rules import ALL

    dims = plan.dimensions
    sets: list[list[str]] = [list(dims)]
    if len(dims) == 2:
        sets += [[dims[0]], [dims[1]]]
    if dims:
        sets.append([])
    per_person = bool(rd.subject_column) and not one_per_subject
    clause = f" WHERE {where}" if where else ""
    parts = []
    for i, group in enumerate(sets):
        keys = ", ".join(quote(d) for d in group)
        cols = [quote(d) if d in group else "NULL" for d in dims]
        if per_person:
            inner = (f"SELECT {keys + ', ' if keys else ''}"
                     + ", ".join(f"sum({quote(m)}) AS c{j}" for j, m in enumerate(magnitudes))
                     + f" FROM {quote(rd.table_name)}{clause} GROUP BY {keys + ', ' if keys else ''}_subject_no")
        else:
            inner = (f"SELECT {keys + ', ' if keys else ''}"
                     + ", ".join(f"{quote(m)} AS c{j}" for j, m in enumerate(magnitudes))
                     + f" FROM {quote(rd.table_name)}{clause}")
        stats = ", ".join(f"sum(abs(c{j}))::DOUBLE, max(abs(c{j}), 2)::DOUBLE[]" for j in range(len(magnitudes)))
        parts.append(f"SELECT {i} AS _set{''.join(', ' + c for c in cols)}, {stats} FROM ({inner})"
                     + (f" GROUP BY {keys}" if keys else ""))
    rows = cur.execute(" UNION ALL ".join(parts), params * len(parts)).fetchall()
    out: dict[tuple[Any, ...], dict[str, list[float]]] = {}
    for row in rows:
        group = sets[row[0]]
        key = tuple(v if d in group else ALL for d, v in zip(dims, row[1:1 + len(dims)]))
        cell = out.setdefault(key, {})
        for j, m in enumerate(magnitudes):
            total, top = row[1 + len(dims) + 2 * j], row[2 + len(dims) + 2 * j] or []
            top = [*top, 0.0, 0.0][:2]
            for name in names:
                if name in (f"sum_{m}", f"mean_{m}"):
                    cell[name] = [float(total or 0.0), float(top[0] or 0.0), float(top[1] or 0.0)]
    return out


def _in_background(store: RestrictedStore, rd: RestrictedDataset, where: str, params: list[Any],
                   plan: Plan | None = None,
                   excluded: set[int] | None = None) -> Callable[[], tuple[dict[str, bytes], int, dict[str, int]]]:
    """Start the subject-set work on its own thread; the returned function waits for it: (subject sets, rows
    read, people).

    For a table with one row per subject whose filter uses only indexed columns the set comes from the subject
    index (bitmaps AND-ed and OR-ed in numpy: no second read of the table); otherwise from a second pass in
    DuckDB. Both release the GIL, so the work overlaps the aggregate or disclosure control.
    """
    done: dict[str, Any] = {}

    def work() -> None:
        try:
            done["value"] = _indexed_subject_set(store, rd, plan, excluded) if plan is not None else None
            if done["value"] is None:
                with store.cursor() as cur:
                    done["value"] = _subject_set(cur, rd.table_name, where, params)
        except BaseException as exc:  # handed to the waiting caller
            done["error"] = exc

    thread = threading.Thread(target=work, name="sharing-subject-set", daemon=True)
    thread.start()

    def wait() -> tuple[dict[str, bytes], int, dict[str, int]]:
        thread.join()
        if "error" in done:
            raise done["error"]
        subjects, rows_read, people = done["value"]
        if not rd.subject_column:
            return {}, rows_read, {}
        return {rd.slug: subjects}, rows_read, {rd.slug: people}

    return wait


def _indexed_subject_set(store: RestrictedStore, rd: RestrictedDataset, plan: Plan,
                         excluded: set[int] | None) -> tuple[bytes, int, int] | None:
    """The subject set, rows read and people from the subject index; None when the index cannot answer."""
    if not rd.subject_column:
        return None
    _, one_per_subject = store.table_info(rd.table_name)
    if not one_per_subject:
        return None
    import numpy as np

    bits = SubjectIndex(store, rd.table_name).subjects(plan.where, excluded or ())
    if bits is None:
        return None
    ones = int(np.bitwise_count(bits).sum())
    if not ones:
        return accesslog.encode_bitmap(b"", 0), 0, 0
    return accesslog.encode_bitmap(bits.tobytes(), 1, ones), ones, ones  # one row per subject: rows = people


def _canonical_where(where: dict[str, Any]) -> dict[str, Any]:
    return {k: sorted(v, key=str) if isinstance(v, list) else dict(sorted(v.items())) for k, v in sorted(where.items())}


def run_sql(session: Session, store: RestrictedStore, plan: Plan, agreement: Agreement,
            purpose: str) -> tuple[list[str], list[tuple[Any, ...]], dict[str, bytes], int, dict[str, int]]:
    """Run SQL over views exposing only the covered fields, without opted-out people."""
    covered = _covered(agreement)
    expose_ids = agreement.identifiability != "aggregate"
    subjects: dict[str, bytes] = {}
    people: dict[str, int] = {}
    rows_read = 0
    with store.cursor() as cur:
        catalog = cur.execute("SELECT current_database()").fetchone()[0]
        for rd in plan.datasets:
            fields = [f for f in covered[rd.slug][1] if expose_ids or not rd.field(f)["identifier"]]  # type: ignore[index]
            optout = store.exclusion_filter(rd.table_name, _excluded(session, store, rd, purpose))
            clause = f" WHERE {optout}" if optout else ""
            if rd.subject_column:  # before the view of the same name hides the table
                subjects[rd.slug], read, people[rd.slug] = _subject_set(cur, rd.table_name, optout, [])
            else:
                read = cur.execute(f"SELECT count(*) FROM {quote(rd.table_name)}").fetchone()[0]
            rows_read += int(read)
            cur.execute(f"CREATE OR REPLACE TEMP VIEW {quote(rd.table_name)} AS SELECT "
                        f"{', '.join(quote(f) for f in fields) or 'NULL AS nothing'} "
                        f"FROM {quote(catalog)}.main.{quote(rd.table_name)}{clause}")
        try:
            relation = cur.execute(f"SELECT * FROM ({plan.sql}) LIMIT {MAX_ROWS + 1}")
            columns = [d[0] for d in relation.description]
            rows = relation.fetchall()
        except duckdb.Error as exc:
            message = (str(exc).strip().splitlines() or ["The query failed."])[0]
            raise ValidationFailed(f"sql: {message}", {"query.sql": message}) from exc
    if len(rows) > MAX_ROWS:
        raise ValidationFailed(f"The query returns more than {MAX_ROWS} rows; aggregate or filter it.",
                               {"query.sql": "Too many rows."})
    return columns, rows, subjects, rows_read, people


def _boroughs(plan: Plan, rows: list[dict[str, Any]]) -> list[str]:
    """The boroughs a use was about, as far as its filter or dimensions say (empty: all)."""
    rd = plan.datasets[0] if plan.datasets else None
    area = rd.area_field if rd else None
    if not area or plan.kind != "aggregate":
        return []
    if isinstance(plan.where.get(area), list):
        return sorted(str(v) for v in plan.where[area])
    if area in plan.dimensions:
        return sorted({str(r[area]) for r in rows if r.get(area) is not None})
    return []


def _json(value: Any) -> Any:
    if isinstance(value, (date,)):
        return value.isoformat()
    if hasattr(value, "__float__") and not isinstance(value, (int, float, bool)):
        return float(value)
    return value


def submit(session: Session, settings: Settings, actor: Actor, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Run one gateway query; returns the HTTP status and the response body."""
    require_authenticated(actor)
    if actor.user is None:
        raise Forbidden("The gateway answers analysts with an API token, not the command line.")
    slug, purpose, query, disclosure = parse_body(body)
    record = SharingQuery(user_id=actor.user.id, purpose=purpose, body=body, status="refused", created=utcnow())
    agreement = session.query(Agreement).filter(Agreement.slug == slug).one_or_none()
    org_id = None
    if agreement is not None:
        recipients = [p.organisation_id for p in agreement.parties if p.role == "recipient"]
        org_id = next((o for o in recipients if o in actor.roles), None)
        record.agreement_id = agreement.id
    record.organisation_id = org_id if org_id is not None else next(iter(actor.roles), None)
    try:
        if agreement is None:
            raise Refused([f"There is no agreement called '{slug}'."])
        reasons = check_agreement(agreement, actor, purpose)
        dp = disclosure.get("dp") if isinstance(disclosure.get("dp"), dict) else None
        if "dataset" in query:
            plan, more = plan_aggregate(agreement, query, dp is not None)
        else:
            if dp is not None:
                raise ValidationFailed("Differential privacy works on declarative aggregates only.",
                                       {"disclosure.dp": "Use a declarative query."})
            plan, more = plan_sql(agreement, query)
        reasons += more
        if reasons:
            raise Refused(reasons)
    except Refused as refused:
        record.reasons = refused.reasons
        session.add(record)
        session.flush()
        return 403, {"id": record.id, "status": "refused", "table": None, "disclosure": {}, "reasons": refused.reasons}
    session.add(record)
    session.flush()
    store = RestrictedStore(settings)
    bounds: dict[str, Any] = {}
    if dp is not None and isinstance(dp.get("bounds"), dict):
        for name, pair in dp["bounds"].items():
            if (not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(v, (int, float)) for v in pair)
                    or pair[0] > pair[1]):
                raise ValidationFailed(f"Give the bounds of {name} as [lower, upper].", {"disclosure.dp.bounds": name})
            bounds[name] = pair
    dimensions_rows: list[dict[str, Any]] = []
    if plan.kind == "aggregate":
        rules = None if dp is not None else profile_named(disclosure.get("profile") or agreement.disclosure_profile)
        result, pending = run_aggregate(session, store, plan, purpose, bounds, rules)
        dimensions_rows = result.rows
        try:
            outcome = _control(session, result, agreement, disclosure, record, actor)
        finally:
            subjects, rows_read, people = pending()
    else:
        columns, rows, subjects, rows_read, people = run_sql(session, store, plan, agreement, purpose)
        if agreement.identifiability == "aggregate":
            missing = [c for c in plan.count_columns if c not in columns]
            if missing:
                raise ValidationFailed(f"The count column '{missing[0]}' is not in the query's output.",
                                       {"query.count_columns": missing[0]})
            dims = [c for c in columns if c not in plan.count_columns]
            result = AggregateResult(datasets=[d.slug for d in plan.datasets], dimensions=dims,
                                     measures=list(plan.count_columns),
                                     rows=[{c: _json(v) for c, v in zip(columns, r)} for r in rows],
                                     query_kind="sql", count_columns=list(plan.count_columns))
            outcome = _control(session, result, agreement, disclosure, record, actor)
        else:
            outcome = Outcome("released", columns, [[_json(v) for v in r] for r in rows],
                              {"profile": None, "row_level": True,
                               "note": f"Row-level output under a {agreement.identifiability} agreement: "
                                       "no disclosure control; the use is logged."}, [])
    _finish(record, outcome)
    org = next((p.organisation for p in agreement.parties if p.organisation_id == record.organisation_id), None)
    entry = accesslog.append(session, actor=actor.label, organisation=org.slug if org else "",
                             agreement=agreement.slug, purpose=purpose, datasets=[d.slug for d in plan.datasets],
                             fields=plan.fields, rows_read=rows_read, released=_released_summary(outcome),
                             subjects=subjects, query_id=record.id, boroughs=_boroughs(plan, dimensions_rows),
                             subject_counts=people)
    accesslog.anchor_if_due(session, entry, settings.data_dir)
    session.flush()
    return (403 if outcome.status == "refused" else 200), view(record)


def _control(session: Session, result: AggregateResult, agreement: Agreement, disclosure: dict[str, Any],
             record: SharingQuery, actor: Actor) -> Outcome:
    from . import disclosure as sdc

    if isinstance(disclosure.get("dp"), dict):
        from .disclosure import dp

        return dp.release(session, result, agreement=agreement, epsilon=float(disclosure["dp"]["epsilon"]),
                          query_id=record.id)
    profile = disclosure.get("profile") or agreement.disclosure_profile
    return sdc.clear(session, result, agreement=agreement, profile=profile, query_id=record.id,
                     requested_by=actor.user)


def _released_summary(outcome: Outcome) -> dict[str, Any]:
    s = outcome.summary or {}
    return {"status": outcome.status, "rows": len(outcome.rows) if outcome.status == "released" else 0,
            "profile": s.get("profile"), "suppressed": int(s.get("suppressed_primary", 0) or 0)
            + int(s.get("suppressed_dominance", 0) or 0) + int(s.get("suppressed_secondary", 0) or 0),
            "dp": s.get("dp")}


def _finish(record: SharingQuery, outcome: Outcome) -> None:
    record.status = outcome.status
    record.disclosure = dict(outcome.summary or {})
    record.reasons = list(outcome.reasons)
    if outcome.status == "released":
        record.result = {"columns": list(outcome.columns), "rows": [list(r) for r in outcome.rows]}
        record.released_at = utcnow()
    else:
        record.result = None


def view(record: SharingQuery) -> dict[str, Any]:
    """The JSON form of a stored query (the safe table only once released)."""
    return {"id": record.id, "status": record.status, "agreement": record.agreement.slug if record.agreement else None,
            "purpose": record.purpose, "created": record.created.isoformat(),
            "released_at": record.released_at.isoformat() if record.released_at else None,
            "table": record.result if record.status == "released" else None,
            "disclosure": record.disclosure or {}, "reasons": list(record.reasons or [])}


def get_query(session: Session, actor: Actor, query_id: int) -> SharingQuery:
    """A stored query, for the analyst who ran it (or a sysadmin); 404 otherwise."""
    require_authenticated(actor)
    record = session.get(SharingQuery, query_id)
    if record is None or not (actor.is_sysadmin or (actor.user and actor.user.id == record.user_id)):
        raise NotFound(f"There is no query {query_id} of yours.")
    return record


def mark_released(session: Session, query_id: int | str, outcome: Outcome, data_dir: Path | None = None
                  ) -> SharingQuery:
    """Record the end of a review (released or refused), and log what was released (an anchor that falls due
    goes to the table and, given ``data_dir``, to the head file, as after any other use)."""
    record = session.get(SharingQuery, int(query_id))
    if record is None:
        raise NotFound(f"There is no query {query_id}.")
    if record.status not in ("review",):
        raise BadRequest(f"Query {query_id} is {record.status}, not waiting for review.")
    _finish(record, outcome)
    agreement = record.agreement
    org = record.organisation
    entry = accesslog.append(session, actor=record.user.username, organisation=org.slug if org else "",
                             agreement=agreement.slug if agreement else "", purpose=record.purpose, datasets=[],
                             fields=[], rows_read=0, released={**_released_summary(outcome), "after_review": True},
                             subjects={}, query_id=record.id)
    accesslog.anchor_if_due(session, entry, data_dir)
    session.flush()
    return record
