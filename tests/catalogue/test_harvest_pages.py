"""Harvest pages, API, command line and scheduler: what an administrator sees and does.

Sources are listed with their last job and next run; a job's report shows its counts and each
error with the remote id and the reason; admins add sources and start harvests from a GOV.UK
form (with CSRF and an error summary) or the API; ``smartlondon harvest`` does the same from
a terminal; and the scheduler of ``serve`` runs due sources, never twice at once.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from smartlondon.app import create_app
from smartlondon.catalogue.harvest import runner, sources
from smartlondon.catalogue.harvest.models import HarvestJob, HarvestSource
from smartlondon.catalogue.harvest.scheduler import HarvestScheduler
from smartlondon.catalogue.models import Dataset
from smartlondon.cli import main
from smartlondon.core.accounts import COMMAND_LINE
from smartlondon.core.db import utcnow
from tests.catalogue.harvest_portal import Portal, birmingham_packages, ckan_package_search

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SEARCH = "/api/3/action/package_search"
FAST = {"connect_timeout": 2, "read_timeout": 2, "retries": 0, "backoff": 0}


@pytest.fixture
def portal():
    server = Portal().start()
    packages = birmingham_packages()[1:]  # the nine one-file packages: quick to harvest
    server.routes[SEARCH] = ckan_package_search(packages)
    server.packages = packages  # type: ignore[attr-defined]
    yield server
    server.stop()


def add_source(db, url: str, slug: str = "birmingham", org: str = "camden", schedule: str = "manual",
               **config: Any) -> int:
    with db.session() as session:
        return sources.create_source(session, COMMAND_LINE, {
            "slug": slug, "name": slug.title(), "type": "ckan", "url": url, "organisation": org,
            "schedule": schedule, "config": {**FAST, **config}}).id


def sign_in(client, account) -> str:
    token = CSRF.search(client.get("/sign-in").text).group(1)
    response = client.post("/sign-in", data={"csrf_token": token, "username": account.username,
                                             "password": account.password}, follow_redirects=False)
    assert response.status_code == 303
    return CSRF.search(client.get("/").text).group(1)


def wait_for(client, url: str, seconds: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        body = client.get(url).json()
        if body["status"] in ("finished", "failed") or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def test_the_report_pages_and_their_json_twins(db, client, portal):
    portal.packages.append({"name": "lost", "title": "A record without an id"})
    source = add_source(db, portal.url)
    job = runner.run_job(db, sources.start_job(db, source, requested_by="tests"))

    listing = client.get("/harvest")
    assert listing.status_code == 200
    assert '<a class="govuk-link" href="/harvest/birmingham">Birmingham</a>' in listing.text
    assert f'href="/harvest/birmingham/job/{job.id}">job {job.id}' in listing.text
    assert "Add a harvest source" not in listing.text  # anonymous visitors only read
    twin = client.get("/harvest.json").json()
    assert twin["count"] == 1
    assert twin["results"][0]["last_job"]["counts"]["created"] == 9 and twin["results"][0]["next_due"] is None

    page = client.get("/harvest/birmingham")
    assert "Job " + str(job.id) in page.text and "Start harvest" not in page.text
    assert client.get("/harvest/birmingham.json").json()["jobs"][0]["status"] == "finished"

    report = client.get(f"/harvest/birmingham/job/{job.id}")
    assert report.status_code == 200
    assert "Errors (1)" in report.text
    assert "<td class=\"govuk-table__cell\">The record has no &#39;id&#39;.</td>" in report.text
    assert ">lost</th>" in report.text  # the remote id, as the row's header
    data = client.get(f"/harvest/birmingham/job/{job.id}.json").json()
    assert data["counts"]["created"] == 9 and data["counts"]["errors"] == 1
    assert data["errors"] == [{"remote_id": "lost", "reason": "The record has no 'id'.", "at": data["errors"][0]["at"]}]
    assert client.get("/harvest/nowhere").status_code == 404
    assert client.get(f"/harvest/birmingham/job/{job.id + 1}.json").status_code == 404


def test_an_organisation_admin_adds_a_source_and_starts_a_harvest_from_the_web(db, client, portal, make_account):
    admin = make_account("camden-admin", camden="admin")
    token = sign_in(client, admin)
    form = client.get("/harvest/new")
    assert form.status_code == 200 and 'value="camden"' in form.text  # the only organisation it may choose

    bad = client.post("/harvest/new", data={"csrf_token": token, "name": "", "slug": "Bad Slug", "type": "ckan",
                                            "url": "ftp://x", "organisation": "camden", "schedule": "sometimes",
                                            "config": '{"withdraw": "shred"}'})
    assert bad.status_code == 422
    assert "<title>Error: Add a harvest source" in bad.text and "govuk-error-summary" in bad.text
    for field in ("name", "slug", "url", "schedule", "config"):
        assert f'href="#{field}"' in bad.text
    assert "&#39;withdraw&#39; must be one of: delete, draft, keep." in bad.text
    assert 'value="Bad Slug"' in bad.text  # what was typed is kept
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(HarvestSource)) == 0

    no_csrf = client.post("/harvest/new", data={"name": "Birmingham", "slug": "birmingham", "type": "ckan",
                                                "url": portal.url, "organisation": "camden"})
    assert no_csrf.status_code == 403

    made = client.post("/harvest/new", data={
        "csrf_token": token, "name": "Birmingham", "slug": "birmingham", "type": "ckan", "url": portal.url,
        "organisation": "camden", "schedule": "6h", "config": '{"read_timeout": 2, "retries": 0}',
        "active": "true"}, follow_redirects=False)
    assert made.status_code == 303 and made.headers["location"] == "/harvest/birmingham"
    page = client.get("/harvest/birmingham")
    assert "Harvest source added" in page.text and "Start harvest" in page.text

    started = client.post("/harvest/birmingham/run", data={"csrf_token": token, "mode": "full"},
                          follow_redirects=False)
    assert started.status_code == 303
    job_url = started.headers["location"]
    assert re.fullmatch(r"/harvest/birmingham/job/\d+", job_url)
    report = wait_for(client, job_url + ".json")
    assert report["status"] == "finished" and report["counts"]["created"] == 9
    assert report["requested_by"] == "camden-admin" and report["mode"] == "full"

    edit = client.post("/harvest/birmingham/edit", data={
        "csrf_token": token, "name": "Birmingham City Council", "type": "ckan", "url": portal.url,
        "organisation": "camden", "schedule": "manual", "config": ""}, follow_redirects=False)
    assert edit.status_code == 303
    assert client.get("/harvest/birmingham.json").json()["name"] == "Birmingham City Council"
    assert client.get("/harvest/birmingham.json").json()["active"] is False  # the box was not ticked


def test_editors_and_other_organisations_cannot_manage_sources(db, client, portal, make_account, editor):
    add_source(db, portal.url)
    token = sign_in(client, editor)  # an editor, not an admin, of Camden
    assert client.get("/harvest/new").status_code == 403
    assert client.post("/harvest/birmingham/run", data={"csrf_token": token}).status_code == 403
    westminster = make_account("west-admin", westminster="admin")
    api = client.post("/api/harvest/sources/birmingham/jobs", headers=westminster.headers)
    assert api.status_code == 403
    assert "admin of Camden" in api.json()["error"]["message"]
    anonymous = TestClient(client.app)
    assert anonymous.get("/harvest/new", follow_redirects=False).headers["location"].startswith("/sign-in")


def test_the_api_adds_sources_starts_jobs_and_refuses_a_second_start(db, client, portal, sysadmin):
    body = {"slug": "birmingham", "name": "Birmingham", "type": "ckan", "url": portal.url, "organisation": "camden",
            "schedule": "daily", "config": {**FAST, "withdraw": "delete", "api_key": "secret-key"}}
    made = client.post("/api/harvest/sources", json=body, headers=sysadmin.headers)
    assert made.status_code == 201, made.text
    assert made.json()["config"]["api_key"] == "********"  # never shown back
    assert made.json()["next_due"] is not None  # a daily source is due at once
    assert client.post("/api/harvest/sources", json=body, headers=sysadmin.headers).status_code == 409
    bad = client.post("/api/harvest/sources", json={**body, "slug": "other", "config": {"pages": 3}},
                      headers=sysadmin.headers)
    assert bad.status_code == 422 and "Unknown option 'pages'" in bad.json()["error"]["fields"]["config"]
    assert client.post("/api/harvest/sources", json={**body, "slug": "x2"}).status_code == 401

    portal.routes[SEARCH] = slowed(portal.routes[SEARCH], 0.3)
    started = client.post("/api/harvest/sources/birmingham/jobs", json={"mode": "full"}, headers=sysadmin.headers)
    assert started.status_code == 202
    again = client.post("/api/harvest/sources/birmingham/jobs", headers=sysadmin.headers)
    assert again.status_code == 409 and "already" in again.json()["error"]["message"]
    report = wait_for(client, started.headers["location"])
    assert report["status"] == "finished" and report["counts"]["created"] == 9
    assert portal.calls(SEARCH)[0].get("fq") is None

    changed = client.patch("/api/harvest/sources/birmingham", json={"config": {**FAST, "api_key": "********"}},
                           headers=sysadmin.headers)
    assert changed.status_code == 200
    with db.session() as session:
        assert sources.get_source(session, "birmingham").config["api_key"] == "secret-key"  # kept


def slowed(handler, seconds: float):
    def answer(query):
        time.sleep(seconds)
        return handler(query)

    return answer


def test_the_command_line_adds_lists_runs_and_shows(db, portal, tmp_path, monkeypatch):
    monkeypatch.setenv("SMARTLONDON_DATABASE_URL", db.url)
    monkeypatch.setenv("SMARTLONDON_DATA_DIR", str(tmp_path))
    cli = CliRunner()
    added = cli.invoke(main, ["harvest", "add", "birmingham", "--name", "Birmingham", "--type", "ckan", "--url",
                              portal.url, "--org", "camden", "--schedule", "weekly", "--config", '{"retries": 0}'])
    assert added.exit_code == 0, added.output
    assert "Added harvest source birmingham (ckan, weekly)" in added.output

    run = cli.invoke(main, ["harvest", "run", "birmingham"])
    assert run.exit_code == 0, run.output
    assert "finished: created 9, updated 0, unchanged 0, withdrawn 0, errors 0" in run.output
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Dataset)) == 9

    with db.session() as session:  # a job that died without a trace
        session.add(HarvestJob(source_id=sources.get_source(session, "birmingham").id, status="running",
                               queued_at=utcnow() - timedelta(hours=2), started_at=utcnow() - timedelta(hours=2),
                               heartbeat_at=utcnow() - timedelta(hours=2), message=""))
    listed = cli.invoke(main, ["harvest", "list"])
    assert listed.exit_code == 0, listed.output
    assert "had stopped making progress: marked failed" in listed.output
    assert "birmingham" in listed.output and "weekly" in listed.output

    shown = cli.invoke(main, ["harvest", "show", "birmingham", "--job", "1"])
    assert shown.exit_code == 0 and "job 1 finished (full)" in shown.output
    failed = cli.invoke(main, ["harvest", "show", "birmingham", "--job", "2", "--json"])
    assert '"status": "failed"' in failed.output
    nothing = cli.invoke(main, ["harvest", "run", "nowhere"])
    assert nothing.exit_code == 1 and "There is no harvest source called 'nowhere'." in nothing.output


def test_due_sources_run_once_even_when_two_schedulers_race(db, portal):
    due = add_source(db, portal.url, slug="due-now", schedule="daily")
    add_source(db, portal.url, slug="manual-only", schedule="manual")
    with db.session() as session:
        source = sources.get_source(session, "due-now")
        session.expunge(source)
    now = utcnow()
    assert sources.claim_due(db, source, now) is True
    assert sources.claim_due(db, source, now) is False  # the other process lost the race

    with db.session() as session:  # due again
        session.get(HarvestSource, due).next_run_at = utcnow() - timedelta(minutes=1)
    scheduler = HarvestScheduler(db, tick_seconds=3600, stall_minutes=15)
    assert scheduler.tick() == 1
    assert scheduler.tick() == 0  # not due again for a day
    with db.session() as session:
        jobs = list(session.scalars(select(HarvestJob)))
        assert [(j.trigger, j.status, j.created) for j in jobs] == [("schedule", "finished", 9)]
        assert session.get(HarvestSource, due).next_run_at > utcnow() + timedelta(hours=23)


def test_serve_runs_the_scheduler_when_switched_on(db, settings, portal):
    add_source(db, portal.url, slug="due-now", schedule="daily")
    from dataclasses import replace

    on = replace(settings, harvest_scheduler=True, harvest_tick_seconds=0.2)
    with TestClient(create_app(on, db)) as client:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            last = client.get("/harvest.json").json()["results"][0]["last_job"]
            if last and last["status"] == "finished":
                break
            time.sleep(0.1)
        assert last and last["status"] == "finished" and last["trigger"] == "schedule"
    off = create_app(settings, db)  # tests' settings leave it off
    with TestClient(off):
        assert not hasattr(off.state, "harvest_scheduler")
