"""Re-pseudonymising after a key rotation: ``repseudonymise`` vs the raw DuckDB ``UPDATE ... FROM`` it ends in.

    .venv/bin/python benchmarks/sharing_rekey.py [--rows 200000] [--per-person 1] [--compare-old]

Builds a throwaway restricted store and keys directory, ingests ``--rows`` rows (``--per-person`` rows per
synthetic NHS number) with real keyed pseudonyms, and rotates the key. Then, in the same run:

* **ours**: ``repseudonymise`` end to end from the source identifiers: every identifier normalised and
  checked, its pseudonym computed in the old and the new epoch, the mapping loaded, the coverage check,
  subject renumbering, the ``UPDATE`` and the bookkeeping, in one store transaction;
* **floor**: on a copy of the table as it was before the rewrite, the raw DuckDB
  ``UPDATE t SET person = m.new FROM m WHERE t.person = m.old`` with the mapping already computed and loaded
  (only the ``UPDATE`` is timed). This is the database doing the same rewrite with no identifiers to hash.

Also printed: the time to compute the mapping alone (``Pseudonymiser.pseudonym_table``) and, with
``--compare-old``, the same mapping computed the way the first version did (``normalise`` then ``hmac.new``
per value and epoch). Prints rows/s for ours and the floor, their ratio, and the load average.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from smartlondon.settings import Settings  # noqa: E402
from smartlondon.sharing.privacy.ingest import ingest_rows  # noqa: E402
from smartlondon.sharing.privacy.pseudonyms import Pseudonymiser, normalise  # noqa: E402
from smartlondon.sharing.privacy.rekey import repseudonymise  # noqa: E402
from smartlondon.sharing.store import RestrictedStore  # noqa: E402

WEIGHTS = range(10, 1, -1)


def nhs_numbers(count: int, stem: int = 400_000_000) -> list[str]:
    """``count`` distinct valid NHS numbers (stems whose Modulus 11 check digit would be 10 are skipped)."""
    out: list[str] = []
    while len(out) < count:
        digits = f"{stem:09d}"
        check = 11 - sum(int(d) * w for d, w in zip(digits, WEIGHTS)) % 11
        if check != 10:
            out.append(digits + str(0 if check == 11 else check))
        stem += 1
    return out


def old_mapping(keys: Pseudonymiser, values: list[str], epochs: list[str]) -> int:
    """The mapping as the first version computed it: normalise, then one ``hmac.new`` per value and epoch."""
    pairs: dict[str, str] = {}
    material = {e: bytes.fromhex((keys.keys_dir / f"{e}.key").read_text().strip()) for e in epochs}
    for value in values:
        normalise("nhs_number", value)
        new = hmac.new(material[epochs[0]], f"nhs_number\x1f{normalise('nhs_number', value)}".encode(),
                       hashlib.sha256).hexdigest()[:32]
        for epoch in epochs[1:]:
            old = hmac.new(material[epoch], f"nhs_number\x1f{normalise('nhs_number', value)}".encode(),
                           hashlib.sha256).hexdigest()[:32]
            pairs[old] = new
    return len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--per-person", type=int, default=1, help="rows per person (the source lists each row)")
    parser.add_argument("--compare-old", action="store_true", help="also time the first version's mapping")
    args = parser.parse_args()
    people = nhs_numbers(max(1, args.rows // args.per_person))
    source = [people[i % len(people)] for i in range(args.rows)]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), secret_key="bench").resolved()
        store, keys = RestrictedStore(settings), Pseudonymiser(settings)
        t0 = time.perf_counter()
        ingest_rows(store, keys, "visits", {"person": "VARCHAR", "age": "BIGINT"},
                    ((n, 20 + i % 70) for i, n in enumerate(source)), {"person": "nhs_number"},
                    subject_column="person")
        print(f"ingested {args.rows:,} rows ({len(people):,} people) in {time.perf_counter() - t0:.2f} s")
        first = keys.current_epoch()
        second = keys.rotate()
        with store.cursor() as cur:
            cur.execute("CREATE TABLE floor_copy AS SELECT * FROM visits")

        t0 = time.perf_counter()
        table, bad = keys.pseudonym_table("nhs_number", source, [second, first])
        mapping_s = time.perf_counter() - t0
        assert not bad and len(table) == len(people)
        with store.cursor() as cur:
            cur.execute("CREATE TABLE floor_map (old VARCHAR, new VARCHAR)")
            cur.execute("INSERT INTO floor_map SELECT unnest(?), unnest(?)",
                        [[row[1] for row in table], [row[0] for row in table]])
            t0 = time.perf_counter()
            cur.execute("UPDATE floor_copy SET person = m.new FROM floor_map m WHERE floor_copy.person = m.old")
            floor_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        done = repseudonymise(store, keys, "visits", {"person": ("nhs_number", source)})
        ours_s = time.perf_counter() - t0
        with store.cursor() as cur:  # both rewrites must have produced the same column
            differ = cur.execute("SELECT count(*) FROM visits v JOIN floor_copy f USING (_row) "
                                 "WHERE v.person <> f.person").fetchone()[0]
        assert differ == 0 and done.changed == {"person": args.rows}, (differ, done.changed)

        if args.compare_old:
            t0 = time.perf_counter()
            old_mapping(keys, source, [second, first])
            print(f"mapping, first version (normalise + hmac.new per value):  {time.perf_counter() - t0:7.2f} s")
        print(f"mapping alone (pseudonym_table, 2 epochs):                 {mapping_s:7.2f} s")
        print(f"ours  (repseudonymise, end to end):   {ours_s:7.2f} s  {args.rows / ours_s:12,.0f} rows/s")
        print(f"floor (raw UPDATE ... FROM mapping):  {floor_s:7.2f} s  {args.rows / floor_s:12,.0f} rows/s")
        print(f"ours / floor: {ours_s / floor_s:.1f} x   load average: {os.getloadavg()[0]:.2f} "
              f"{os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} on {os.cpu_count()} CPUs")
        store.close()


if __name__ == "__main__":
    main()
