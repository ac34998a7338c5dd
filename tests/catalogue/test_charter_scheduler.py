"""The scorecard's scheduler: due jobs run once across processes, and scorecards catch up with the
tabular store's validation, changed DCAT-AP records and the link checker."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from smartlondon.app import create_app
from smartlondon.catalogue import service
from smartlondon.catalogue.charter import scheduler
from smartlondon.catalogue.charter.models import CharterJob, DatasetCheck
from smartlondon.catalogue.charter.scheduler import CharterScheduler, Job
from smartlondon.catalogue.models import Dataset
from smartlondon.core.accounts import COMMAND_LINE
from smartlondon.core.db import utcnow

IMD = b"lsoa11cd,lsoa11nm,score\nE01000001,City of London 001A,6.2\nE01000002,City of London 001B,5.1\n"
DECLARED = {"fields": [{"name": "lsoa11cd", "type": "string"}, {"name": "lsoa11nm", "type": "string"},
                       {"name": "score", "type": "number"}]}


def checks(db, slug: str) -> dict[str, tuple[str, str]]:
    with db.session() as session:
        dataset_id = session.scalar(select(Dataset.id).where(Dataset.slug == slug))
        return {c.name: (c.status, c.reason) for c in session.scalars(
            select(DatasetCheck).where(DatasetCheck.dataset_id == dataset_id))}


def wait_until_loaded(db, seconds: float = 20) -> None:
    """Small files load as the upload is answered, unless a background loader took them: wait for it."""
    from smartlondon.catalogue.models import Resource
    from smartlondon.catalogue.tabular import validation_summary

    deadline = time.monotonic() + seconds
    while True:
        with db.session() as session:
            ids = list(session.scalars(select(Resource.id)))
            states = [v["status"] for v in validation_summary(session, ids).values()]
        if all(state in ("loaded", "failed") for state in states) or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def recording(calls: list[str], name: str, every: timedelta) -> Job:
    def run(db, settings) -> str:  # type: ignore[no-untyped-def]
        calls.append(name)
        return f"{name} ran"
    return Job(name, every, run)


def test_due_jobs_run_once_however_many_schedulers_tick(db, settings) -> None:
    calls: list[str] = []
    jobs = (recording(calls, "quick", timedelta(minutes=1)), recording(calls, "daily", timedelta(days=1)))
    first, second = CharterScheduler(db, settings, jobs), CharterScheduler(db, settings, jobs)
    assert first.tick() == {"quick": "quick ran", "daily": "daily ran"}
    assert second.tick() == {}  # another process: nothing is due any more
    assert first.tick(utcnow() + timedelta(minutes=2)) == {"quick": "quick ran"}
    assert calls == ["quick", "daily", "quick"]
    with db.session() as session:
        row = session.get(CharterJob, "daily")
        assert row.last_result == "daily ran" and row.next_run_at > utcnow() + timedelta(hours=23)


def test_a_failing_job_is_recorded_and_the_others_still_run(db, settings) -> None:
    def broken(db, settings):  # type: ignore[no-untyped-def]
        raise RuntimeError("no network")

    calls: list[str] = []
    done = CharterScheduler(db, settings, (Job("broken", timedelta(minutes=1), broken),
                                           recording(calls, "after", timedelta(minutes=1)))).tick()
    assert done == {"broken": "failed: RuntimeError: no network", "after": "after ran"}


def test_a_loaded_table_rescores_its_dataset_at_once(db, settings, client, editor) -> None:
    """The load emits resource.loaded: the schema and GSS checks follow it without the scheduler."""
    for slug in ("imd", "imd-declared"):
        made = client.post("/api/datasets", headers=editor.headers,
                           json={"title": slug, "slug": slug, "publisher": "camden", "geography": "lsoa"})
        assert made.status_code == 201
    good = client.post("/api/datasets/imd/resources", headers=editor.headers, data={"title": "Scores"},
                       files={"upload": ("imd.csv", IMD, "text/csv")})
    assert good.status_code == 201
    bad = client.post("/api/datasets/imd-declared/resources", headers=editor.headers,
                      data={"title": "Scores", "table_schema": json.dumps(DECLARED)},
                      files={"upload": ("imd.csv", IMD + b"E01000003,City of London 001C,not known\n", "text/csv")})
    assert bad.status_code == 201
    wait_until_loaded(db)
    found = checks(db, "imd")
    assert found["schema"] == ("pass", "Its table matches its schema (2 rows).")
    assert found["gss"] == ("pass", "GSS codes: ‘Scores’ (CSV) has them in ‘lsoa11cd’.")
    status, reason = checks(db, "imd-declared")["schema"]
    assert status == "fail" and reason.startswith("‘Scores’ (CSV) has 1 problem")
    assert scheduler.rescore_loaded_tables(db, settings) == "no tables waiting"


def test_tables_catch_up_with_the_tabular_stores_validation(db, settings, client, editor) -> None:
    """A dataset left waiting (its scorecard written while the store was away) is caught up by the job."""
    made = client.post("/api/datasets", headers=editor.headers,
                       json={"title": "imd", "slug": "imd", "publisher": "camden", "geography": "lsoa"})
    assert made.status_code == 201
    good = client.post("/api/datasets/imd/resources", headers=editor.headers, data={"title": "Scores"},
                       files={"upload": ("imd.csv", IMD, "text/csv")})
    assert good.status_code == 201
    wait_until_loaded(db)
    with db.session() as session:  # as if the store had been unreachable when the dataset was scored
        dataset_id = session.scalar(select(Dataset.id).where(Dataset.slug == "imd"))
        check = session.get(DatasetCheck, (dataset_id, "schema"))
        check.status, check.detail = "not-checked", {"states": {}}
    assert checks(db, "imd")["schema"][0] == "not-checked"
    assert scheduler.rescore_loaded_tables(db, settings) == "rescored 1 of 1 datasets waiting for their tables"
    assert checks(db, "imd")["schema"] == ("pass", "Its table matches its schema (2 rows).")
    assert scheduler.rescore_loaded_tables(db, settings) == "no tables waiting"


def test_changed_records_are_validated_by_the_dcat_job(db, settings) -> None:
    with db.session() as session:
        service.create_dataset(session, COMMAND_LINE, {"title": "Tube stations", "publisher": "transport-for-london",
                                                       "description": "Every station."})
    assert checks(db, "tube-stations")["dcat"][0] == "not-checked"
    assert scheduler.validate_changed_records(db, settings) == "validated 1 DCAT-AP records"
    assert checks(db, "tube-stations")["dcat"][0] == "pass"
    assert scheduler.validate_changed_records(db, settings) == "validated 0 DCAT-AP records"


def test_serve_runs_the_scheduler_for_the_apps_lifetime(db, settings) -> None:
    app = create_app(replace(settings, charter_scheduler=True, charter_tick_seconds=0.05), db)
    with TestClient(app):
        running = app.state.charter_scheduler
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with db.session() as session:
                if session.get(CharterJob, "score") is not None and session.get(CharterJob, "score").last_run_at:
                    break
            time.sleep(0.05)
        with db.session() as session:
            assert {job.name for job in session.scalars(select(CharterJob))} == {"tables", "dcat", "links", "score"}
    assert running._thread is not None and not running._thread.is_alive()
