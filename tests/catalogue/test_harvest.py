"""Harvesting a CKAN portal: the real Birmingham package_search response, served as CKAN would.

What a publisher relies on: datasets come in once (never twice), as links; a re-run with
nothing changed writes nothing; changes arrive (incrementally); datasets gone upstream are
withdrawn by the source's policy; a bad record is an error line, not a failed job; a portal
that hangs fails the job quickly with the reason; a dead job never stays "running"; and two
harvests of one source cannot run at once.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from smartlondon.catalogue import service
from smartlondon.catalogue.harvest import runner, sources
from smartlondon.catalogue.harvest.models import HarvestJob, HarvestObject
from smartlondon.catalogue.models import Dataset
from smartlondon.core.accounts import COMMAND_LINE
from smartlondon.core.db import utcnow
from smartlondon.core.errors import Conflict
from smartlondon.core.models import AuditEvent
from tests.catalogue.harvest_portal import Portal, birmingham_packages, ckan_package_search, failing, hanging

SEARCH = "/api/3/action/package_search"
FAST = {"connect_timeout": 2, "read_timeout": 2, "retries": 0, "backoff": 0}


@pytest.fixture
def portal():
    server = Portal().start()
    yield server
    server.stop()


@pytest.fixture
def packages(portal) -> list[dict[str, Any]]:
    """The real Birmingham packages; its 45-resource package keeps its first 5, to keep tests fast."""
    found = birmingham_packages()
    found[0]["resources"] = found[0]["resources"][:5]
    portal.routes[SEARCH] = ckan_package_search(found)
    return found


def add_source(db, url: str, slug: str = "birmingham", kind: str = "ckan", org: str = "camden",
               **config: Any) -> int:
    with db.session() as session:
        return sources.create_source(session, COMMAND_LINE, {
            "slug": slug, "name": slug.title(), "type": kind, "url": url, "organisation": org,
            "schedule": "daily", "config": {**FAST, **config}}).id


def harvest(db, source_id: int, mode: str = "auto") -> HarvestJob:
    return runner.run_job(db, sources.start_job(db, source_id, requested_by="tests", mode=mode))


def problems(db, job: HarvestJob) -> list[tuple[str, str | None, str]]:
    with db.session() as session:
        return [(p.level, p.remote_id, p.reason) for p in sources.job_problems(session, job)]


def count(db, model, *where) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def dataset(db, slug: str) -> dict[str, Any]:
    with db.session() as session:
        ds = session.scalar(select(Dataset).where(Dataset.slug == slug))
        return {**service.dataset_dict(ds), "state": ds.state} if ds else {}


def test_the_real_birmingham_catalogue_comes_in_as_links_paged_by_id(db, portal):
    portal.routes[SEARCH] = ckan_package_search(birmingham_packages())
    source = add_source(db, portal.url, page_size=4)
    job = harvest(db, source)

    assert job.status == "finished", job.message
    assert (job.seen, job.created, job.errors, job.expected) == (10, 10, 0, 10)
    assert [(q["start"], q["rows"], q["sort"]) for q in portal.calls(SEARCH)] == [
        ("0", "4", "id asc"), ("4", "4", "id asc"), ("8", "4", "id asc")]
    assert {p for p, _ in portal.requests} == {SEARCH}  # links only: no file was downloaded

    ds = dataset(db, "purchase-card-transactions")
    assert ds["title"] == "Purchase Card Transactions"
    assert ds["publisher"]["slug"] == "camden"  # the source's organisation publishes what it brings in
    assert ds["licence"]["id"] == "OGL-UK-3.0"  # CKAN's uk-ogl
    assert ds["keywords"] == ["payments", "purchase card"]
    assert ds["contact_email"] == "ian.martin@birmingham.gov.uk"  # the trailing space is gone
    assert len(ds["resources"]) == 45 and all(r["kind"] == "link" for r in ds["resources"])
    assert ds["resources"][0]["url"].startswith("https://data.birmingham.gov.uk/dataset/cf552d08")
    assert ds["resources"][7]["format"] == "XLS"  # missing upstream: guessed from the link
    assert ds["extras"]["harvest_remote_id"] == "cf552d08-cee9-43bf-8c0f-3196a9311799"
    assert ds["extras"]["harvest_remote_url"] == f"{portal.url}/dataset/purchase-card-transactions"
    assert ds["extras"]["harvest_remote_modified"] == "2021-01-15T10:25:28.638659Z"  # CKAN's naive time is UTC
    assert dataset(db, "december-2020-purchase-card-transactions")  # CKAN's underscores made a valid slug
    with db.session() as session:
        actors = set(session.scalars(select(AuditEvent.actor).where(AuditEvent.dataset_id.is_not(None))))
    assert actors == {"harvest:birmingham"}  # every dataset and resource write is the harvest's
    warnings = [p for p in problems(db, job) if p[0] == "warning"]
    assert ("warning", "cf552d08-cee9-43bf-8c0f-3196a9311799",
            "Gave the resource ‘Purchase Card transactions - November 2014’ the format XLS, guessed from its "
            "address.") in warnings


def test_a_rerun_with_nothing_changed_writes_nothing(db, portal, packages):
    source = add_source(db, portal.url)
    harvest(db, source)
    events = count(db, AuditEvent)
    with db.session() as session:
        modified = dict(session.execute(select(Dataset.slug, Dataset.modified)).all())

    again = harvest(db, source, mode="full")

    assert (again.status, again.seen, again.unchanged, again.created, again.updated) == ("finished", 10, 10, 0, 0)
    assert count(db, AuditEvent) == events  # no new history
    assert count(db, Dataset) == 10 and count(db, HarvestObject) == 10  # never a duplicate
    with db.session() as session:
        assert dict(session.execute(select(Dataset.slug, Dataset.modified)).all()) == modified


def test_a_changed_record_updates_its_dataset_in_an_incremental_run(db, portal, packages):
    source = add_source(db, portal.url)
    first = harvest(db, source)
    assert first.mode == "full" and first.watermark == "2021-05-24T14:35:41Z"
    changed = next(p for p in packages if p["name"] == "purchase-card-transactions")
    changed["title"] = "Purchase card transactions, 2014 to 2018"
    changed["metadata_modified"] = "2024-06-01T08:00:00.000000"
    del changed["resources"][4]
    events = count(db, AuditEvent)

    job = harvest(db, source)

    assert job.mode == "incremental"
    assert portal.calls(SEARCH)[-1]["fq"] == "metadata_modified:[2021-05-24T14:35:41Z TO *]"
    assert (job.seen, job.updated, job.unchanged) == (2, 1, 1)  # only the changed ones were asked for
    assert job.watermark == "2024-06-01T08:00:00Z"
    ds = dataset(db, "purchase-card-transactions")
    assert ds["title"] == "Purchase card transactions, 2014 to 2018" and len(ds["resources"]) == 4
    with db.session() as session:
        new = list(session.scalars(select(AuditEvent).where(AuditEvent.id > events)))
    assert sorted(e.action for e in new) == ["dataset.update", "resource.delete"]
    assert all(e.actor == "harvest:birmingham" for e in new)


@pytest.mark.parametrize("policy,state,visible", [("delete", "deleted", False), ("draft", "draft", False),
                                                  ("keep", "active", True)])
def test_datasets_gone_upstream_are_withdrawn_by_the_policy(db, portal, packages, client, policy, state, visible):
    source = add_source(db, portal.url, withdraw=policy)
    harvest(db, source)
    gone = packages.pop(1)  # february-2018-purchase-card-transactions
    slug = gone["name"]

    incremental = harvest(db, source)  # cannot tell what is gone: withdraws nothing
    assert incremental.mode == "incremental" and incremental.withdrawn == 0
    assert dataset(db, slug)["state"] == "active"

    job = harvest(db, source, mode="full")
    assert job.withdrawn == (0 if policy == "keep" else 1)
    assert dataset(db, slug)["state"] == state
    assert (client.get(f"/dataset/{slug}.json").status_code == 200) == visible
    assert (client.get("/api/datasets", params={"q": "february 2018"}).json()["count"] > 0) == visible
    if policy == "keep":
        assert ("warning", gone["id"], "No longer listed by the source; the dataset was kept (the source's "
                                       "withdrawal policy is 'keep').") in problems(db, job)

    packages.insert(1, gone)  # back upstream: the same dataset comes back, not a new one
    back = harvest(db, source, mode="full")
    assert dataset(db, slug)["state"] == "active"
    assert count(db, Dataset) == 10
    assert back.updated == (0 if policy == "keep" else 1)


def test_a_source_that_lists_nothing_withdraws_nothing(db, portal, packages):
    source = add_source(db, portal.url, withdraw="delete")
    harvest(db, source)
    packages.clear()
    job = harvest(db, source, mode="full")
    assert job.status == "finished" and job.withdrawn == 0
    assert count(db, Dataset, Dataset.state == "active") == 10
    assert any("listed no datasets" in reason for _, _, reason in problems(db, job))


def test_one_malformed_record_is_an_error_line_and_the_rest_are_harvested(db, portal, packages):
    packages.append({"name": "no-id-here", "title": "A record without an id"})
    bad_email = packages[3]
    bad_email["maintainer_email"] = "not-an-email"
    source = add_source(db, portal.url, transforms=["tags", "timezones", "formats", "signed_links", "slugs"])
    events_before = count(db, AuditEvent)

    job = harvest(db, source)

    assert job.status == "finished"
    assert (job.seen, job.created, job.errors) == (11, 9, 2)
    found = problems(db, job)
    assert ("error", "no-id-here", "The record has no 'id'.") in found
    email_error = next(p for p in found if p[1] == bad_email["id"])
    assert "email" in email_error[2]  # the service's own message, saying what to fix
    # nothing half written for the bad record: no dataset, no history, no harvest object
    assert not dataset(db, service.slugify(bad_email["name"]))
    assert count(db, HarvestObject, HarvestObject.remote_id == bad_email["id"]) == 0
    assert count(db, AuditEvent) - events_before == 9 + sum(
        len(p["resources"]) for p in packages if p is not bad_email and "id" in p)

    bad_email["maintainer_email"] = "mailto:Finance.Team@birmingham.gov.uk"
    with db.session() as session:  # switch the email clean-up back on: the record comes in
        sources.update_source(session, COMMAND_LINE, session.get(sources.HarvestSource, source), {"config": FAST})
    retry = harvest(db, source)
    assert retry.created == 1
    assert dataset(db, service.slugify(bad_email["name"]))["contact_email"] == "Finance.Team@birmingham.gov.uk"


def test_a_taken_name_gets_the_source_prefix(db, portal, packages):
    with db.session() as session:
        service.create_dataset(session, COMMAND_LINE, {"title": "Camden's own", "slug": "purchase-card-transactions",
                                                       "publisher": "camden"})
    source = add_source(db, portal.url)
    job = harvest(db, source)
    assert job.created == 10
    assert dataset(db, "purchase-card-transactions")["title"] == "Camden's own"  # left alone
    assert dataset(db, "birmingham-purchase-card-transactions")["title"] == "Purchase Card Transactions"
    assert ("warning", "cf552d08-cee9-43bf-8c0f-3196a9311799", "The name 'purchase-card-transactions' is used by "
            "another dataset: published as 'birmingham-purchase-card-transactions'.") in problems(db, job)


def test_a_portal_that_hangs_fails_the_job_quickly_with_the_reason(db, portal):
    portal.routes[SEARCH] = hanging(5)
    source = add_source(db, portal.url, read_timeout=0.3, retries=1)
    started = time.monotonic()
    job = harvest(db, source)
    assert time.monotonic() - started < 3
    assert job.status == "failed" and job.finished_at is not None
    assert "stopped answering" in job.message and "read timeout" in job.message
    assert "(tried 2 times)" in job.message
    assert len(portal.calls(SEARCH)) == 2


def test_5xx_answers_are_retried_with_backoff(db, portal, packages):
    portal.routes[SEARCH] = failing(2, ckan_package_search(packages))
    source = add_source(db, portal.url, retries=2, backoff=0.01)
    job = harvest(db, source)
    assert job.status == "finished" and job.created == 10
    assert len(portal.calls(SEARCH)) == 3


def test_a_4xx_answer_fails_the_job_with_what_went_wrong(db, portal):
    source = add_source(db, portal.url + "/nowhere")
    job = harvest(db, source)
    assert job.status == "failed"
    assert job.message == f"The source answered 404 Not Found for {portal.url}/nowhere{SEARCH} with " \
                          "{'rows': 100, 'start': 0, 'sort': 'id asc'}."


def test_the_page_cap_stops_a_run_without_withdrawing(db, portal, packages):
    source = add_source(db, portal.url, page_size=3, max_pages=2, withdraw="delete")
    job = harvest(db, source)
    assert job.status == "finished" and job.created == 6 and job.pages == 2
    assert "page cap" in job.message
    assert count(db, Dataset, Dataset.state == "deleted") == 0


def test_a_stalled_running_job_is_marked_failed_and_frees_the_source(db, portal, packages):
    source = add_source(db, portal.url)
    job_id = sources.start_job(db, source, requested_by="tests")
    runner.claim(db, job_id)
    with db.session() as session:  # the process running it died an hour ago
        job = session.get(HarvestJob, job_id)
        job.heartbeat_at = job.started_at = utcnow() - timedelta(hours=1)
    with pytest.raises(Conflict, match="already running"):
        sources.start_job(db, source, requested_by="tests")

    assert runner.mark_stalled(db, stall_minutes=15) == [job_id]

    with db.session() as session:
        job = session.get(HarvestJob, job_id)
        assert job.status == "failed" and "stopped making progress" in job.message
    assert harvest(db, source).status == "finished"  # the source is free again


def test_a_job_failed_by_the_watchdog_stops_at_its_next_heartbeat(db, portal, packages, monkeypatch):
    monkeypatch.setattr(runner, "HEARTBEAT_SECONDS", 0)
    source = add_source(db, portal.url, page_size=2)
    job_id = sources.start_job(db, source, requested_by="tests")

    def watchdog_strikes(progress: runner.Progress) -> None:
        if progress.counts["created"] == 2:
            runner.mark_stalled(db, stall_minutes=-1)  # as if it had stalled

    job = runner.run_job(db, job_id, watchdog_strikes)
    assert job.status == "failed" and "watchdog" in job.message
    assert job.created < 10


def test_two_starts_at_once_run_one_job(db, portal, packages):
    source = add_source(db, portal.url)
    barrier = threading.Barrier(2)
    outcomes: list[Any] = []

    def start() -> None:
        barrier.wait()
        try:
            outcomes.append(sources.start_job(db, source, requested_by="tests"))
        except Conflict as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    started = [o for o in outcomes if isinstance(o, int)]
    refused = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(started) == 1 and len(refused) == 1
    assert "A harvest of Birmingham is already queued" in refused[0].message
    assert runner.run_job(db, started[0]).created == 10
    with pytest.raises(Exception, match="already been started"):
        runner.run_job(db, started[0])  # a job runs once


def test_a_second_start_while_one_runs_is_refused(db, portal, packages):
    slow = ckan_package_search(packages)

    def slowly(query):
        time.sleep(0.5)
        return slow(query)

    portal.routes[SEARCH] = slowly
    source = add_source(db, portal.url, page_size=5)
    job_id = sources.start_job(db, source, requested_by="tests")
    thread = threading.Thread(target=runner.run_job, args=(db, job_id))
    thread.start()
    try:
        with pytest.raises(Conflict, match=f"already (queued|running) \\(job {job_id}"):
            sources.start_job(db, source, requested_by="tests")
    finally:
        thread.join()
    assert count(db, Dataset) == 10
    assert harvest(db, source, mode="full").unchanged == 10
