"""The scorecard's scheduler: a background thread of ``serve`` that keeps every scorecard current.

Each tick it runs the jobs that are due:

- ``tables`` (every minute): rescore datasets whose table checks were waiting for the tabular
  store, once their tables have been loaded and validated;
- ``dcat`` (every minute): validate the DCAT-AP records that changed since they were last
  validated (up to 200 a run) and rescore them;
- ``links`` (every hour): check the links and files that are due (each about once a day, up to
  5,000 a run);
- ``score`` (every day): rescore everything, since time alone makes a dataset late.

Several server processes (``serve --workers N``) each run a scheduler; a job runs in only one of
them, because a process must first move the job's ``next_run_at`` forward in ``charter_job`` (an
atomic update only one can win). Switched by ``SMARTLONDON_CHARTER_SCHEDULER`` (on for ``serve``,
off unless set in tests). Without it, run ``smartlondon catalogue check-links`` and
``smartlondon catalogue score`` from cron.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ...core.background import TickingThread, run_during_lifespan
from ...core.db import Database, utcnow
from ...core.storage import LocalStorage
from ...settings import Settings
from ..models import Resource
from . import inputs, linkcheck, rules, scores
from .models import CharterJob, DatasetCheck

log = logging.getLogger(__name__)


def rescore_loaded_tables(db: Database, settings: Settings, limit: int = 5000) -> str:
    """Rescore datasets whose table checks were waiting, if their tables' state in the store has changed."""
    with db.session() as session:
        waiting = {dataset_id: detail for dataset_id, detail in session.execute(
            select(DatasetCheck.dataset_id, DatasetCheck.detail)
            .where(DatasetCheck.name == "schema", DatasetCheck.status == rules.NOT_CHECKED)
            .order_by(DatasetCheck.dataset_id).limit(limit))}
        if not waiting:
            return "no tables waiting"
        tables: dict[int, list[int]] = {}
        for dataset_id, resource_id, fmt in session.execute(
                select(Resource.dataset_id, Resource.id, Resource.format).where(Resource.dataset_id.in_(list(waiting)))):
            if (fmt or "").upper() in rules.TABULAR_FORMATS:
                tables.setdefault(dataset_id, []).append(resource_id)
        found = inputs.schema_results(session, [r for ids in tables.values() for r in ids])
        if found is None:
            return "the tabular store is not available"
        changed = []
        for dataset_id, detail in waiting.items():
            now = {str(r): f"{(found.get(r) or {}).get('status')}:{(found.get(r) or {}).get('valid')}"
                   for r in tables.get(dataset_id, [])}
            if now != (detail or {}).get("states"):
                changed.append(dataset_id)
        scores.rescore_ids(session, changed)
    return f"rescored {len(changed)} of {len(waiting)} datasets waiting for their tables"


def validate_changed_records(db: Database, settings: Settings, limit: int = 200) -> str:
    """Validate up to ``limit`` DCAT-AP records changed since their last validation."""
    if not inputs.dcat_available():
        return "DCAT-AP validation is not available"
    stale = scores.stale_dcat(db, limit=limit)
    return f"validated {scores.refresh_dcat(db, stale)} DCAT-AP records"


def check_due_links(db: Database, settings: Settings, limit: int = 5000) -> str:
    """Check the links and files that are due a check."""
    options = linkcheck.LinkCheckOptions(allow_private=settings.linkcheck_private)
    report = linkcheck.run(db, LocalStorage(settings.files_dir), options, limit=limit)
    return linkcheck.summary(report)


def rescore_everything(db: Database, settings: Settings) -> str:
    """Rescore every dataset."""
    return f"rescored {scores.rescore_all(db)} datasets"


@dataclass(frozen=True)
class Job:
    """A scheduled job: its name, how often it runs, and what it does."""

    name: str
    every: timedelta
    run: Callable[[Database, Settings], str]


JOBS = (
    Job("tables", timedelta(minutes=1), rescore_loaded_tables),
    Job("dcat", timedelta(minutes=1), validate_changed_records),
    Job("links", timedelta(hours=1), check_due_links),
    Job("score", timedelta(days=1), rescore_everything),
)


def claim(db: Database, job: Job, now: datetime | None = None) -> bool:
    """Take this run of the job if it is due and no other process has taken it (an atomic update)."""
    now = now or utcnow()
    with db.engine.begin() as conn:
        taken = conn.execute(update(CharterJob).where(
            CharterJob.name == job.name, or_(CharterJob.next_run_at.is_(None), CharterJob.next_run_at <= now))
            .values(next_run_at=now + job.every)).rowcount
        if taken == 1:
            return True
        if conn.scalar(select(CharterJob.name).where(CharterJob.name == job.name)) is not None:
            return False
    try:
        with db.engine.begin() as conn:
            conn.execute(insert(CharterJob).values(name=job.name, next_run_at=now + job.every, last_result=""))
        return True
    except IntegrityError:  # another process made the row first, and so took this run
        return False


class CharterScheduler(TickingThread):
    """Runs the due scorecard jobs in a daemon thread until stopped."""

    thread_name = "charter-scheduler"

    def __init__(self, db: Database, settings: Settings, jobs: tuple[Job, ...] = JOBS) -> None:
        super().__init__(settings.charter_tick_seconds)
        self.db = db
        self.settings = settings
        self.jobs = jobs

    def tick(self, now: datetime | None = None) -> dict[str, str]:
        """Run every job that is due now; returns what each one that ran did."""
        done: dict[str, str] = {}
        for job in self.jobs:
            if self.stopping or not claim(self.db, job, now):
                continue
            try:
                result = job.run(self.db, self.settings)
            except Exception as exc:  # one failing job must not stop the others, or the scheduler
                log.exception("charter job %s failed", job.name)
                result = f"failed: {type(exc).__name__}: {exc}"
            done[job.name] = result
            with self.db.engine.begin() as conn:
                conn.execute(update(CharterJob).where(CharterJob.name == job.name)
                             .values(last_run_at=utcnow(), last_result=result[:2000]))
        return done


def install(app: Any) -> None:
    """Run a scheduler for the app's lifetime when the settings switch it on."""
    settings = app.state.settings
    if getattr(settings, "charter_scheduler", False):
        run_during_lifespan(app, "charter_scheduler",
                            lambda application: CharterScheduler(application.state.db, settings))
