"""Running a harvest job, and the watchdog that fails jobs which stopped making progress.

A job claims itself (queued -> running), reads its source's records and writes each one in its
own transaction through ``catalogue.service``, as an editor of the source's organisation
labelled ``harvest:<source>`` in the audit log. A record whose mapped content has the same
hash as last time is not written at all, so a re-run with nothing changed writes nothing. A
bad record becomes an error line of the report; the job goes on. After a complete full run,
datasets gone upstream are withdrawn by the source's policy. The job writes a heartbeat (and
its counts) as it goes; if the heartbeat stops, ``mark_stalled`` fails the job.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from ...core.accounts import Actor
from ...core.db import Database, utcnow
from ...core.errors import PlatformError
from ...core.models import Organisation
from ...core.reference import THEMES
from .. import service
from ..models import Dataset, Licence
from .fetch import Fetcher, FetchFailed, PageCapReached
from .models import HarvestError, HarvestJob, HarvestObject
from .options import SourceOptions, parse_options
from .records import Crawl, RecordProblem, RemoteRecord
from .transforms import Mapped, Reference, to_catalogue

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 1.0
BATCH_RECORDS = 100  # records per transaction on PostgreSQL
MAX_PROBLEMS = 10_000  # per job: a source that is broken throughout does not flood the table
COUNTS = ("seen", "created", "updated", "unchanged", "withdrawn", "skipped", "errors", "warnings")


def reader_for(source_type: str) -> ModuleType:
    """The module that reads sources of this type."""
    from . import ckan, datapress, dcat, dcat_us, socrata

    readers = {"ckan": ckan, "dcat": dcat, "datapress": datapress, "socrata": socrata, "dcat-us": dcat_us}
    return readers[source_type]


def harvest_actor(source_slug: str, organisation_ids: list[int]) -> Actor:
    """The actor a harvest writes as: an editor of the source's organisation, named for the source."""
    return Actor(user=None, via=f"harvest:{source_slug}", roles={org: "editor" for org in organisation_ids})


class JobStopped(Exception):
    """The job was marked failed by someone else (the watchdog): stop quietly."""


@dataclass
class Progress:
    """What a job has done so far, for progress bars."""

    job_id: int
    counts: dict[str, int]
    expected: int | None
    pages: int


@dataclass
class _Known:
    """What the last harvest of a remote record wrote."""

    id: int
    dataset_id: int | None
    content_hash: str
    state: str
    remote_modified: datetime | None


@dataclass
class _Source:
    id: int
    slug: str
    name: str
    type: str
    url: str
    organisation_id: int
    organisation_slug: str
    options: SourceOptions
    fingerprint: str


@dataclass
class _Run:
    job_id: int
    source: _Source
    mode: str
    since: str | None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    expected: int | None = None
    pages: int = 0
    problems: list[tuple[str, str | None, str]] = field(default_factory=list)
    stored_problems: int = 0
    listed: set[str] = field(default_factory=set)
    kept: set[str] = field(default_factory=set)
    newest: datetime | None = None
    oldest_failed: datetime | None = None
    last_beat: float = 0.0


def claim(db: Database, job_id: int) -> bool:
    """Move a queued job to running; False if it is not queued (someone else took it)."""
    now = utcnow()
    with db.session() as session:
        result = session.execute(update(HarvestJob).where(HarvestJob.id == job_id, HarvestJob.status == "queued")
                                 .values(status="running", started_at=now, heartbeat_at=now)
                                 .execution_options(synchronize_session=False))
        return bool(result.rowcount)


def run_job(db: Database, job_id: int, progress: Callable[[Progress], None] | None = None) -> HarvestJob:
    """Run a queued job to its end (finished or failed) and return it."""
    if not claim(db, job_id):
        with db.session() as session:
            job = session.get(HarvestJob, job_id)
            if job is None:
                raise PlatformError(f"There is no harvest job {job_id}.")
            raise PlatformError(f"Job {job_id} is {job.status}, not queued: it has already been started.")
    try:
        _Harvest(db, job_id, progress).run()
    except PlatformError as exc:  # the source itself cannot be harvested as configured
        _finish(db, job_id, "failed", f"The source cannot be harvested: {exc.message}", None, None)
    except Exception as exc:  # never leave a job running because of a bug: fail it with the reason
        log.exception("harvest job %s failed", job_id)
        _finish(db, job_id, "failed", f"Unexpected error: {type(exc).__name__}: {exc}", None, None)
    with db.session() as session:
        job = session.get(HarvestJob, job_id)
        session.expunge(job)
        return job  # type: ignore[return-value]


def _finish(db: Database, job_id: int, status: str, message: str, run: _Run | None,
            watermark: str | None) -> None:
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "heartbeat_at": utcnow(),
                              "message": message[:10_000], "watermark": watermark}
    if run is not None:
        values.update(run.counts, expected=run.expected, pages=run.pages, mode=run.mode)
    with db.session() as session:
        if run is not None and run.problems:
            _store_problems(session, run)
        session.execute(update(HarvestJob).where(HarvestJob.id == job_id, HarvestJob.status == "running")
                        .values(**values).execution_options(synchronize_session=False))


def _store_problems(session: Session, run: _Run) -> None:
    room = MAX_PROBLEMS - run.stored_problems
    rows = [{"job_id": run.job_id, "level": level, "remote_id": (rid or None) and rid[:500], "reason": reason,
             "at": utcnow()} for level, rid, reason in run.problems[:max(room, 0)]]
    if rows:
        session.execute(HarvestError.__table__.insert(), rows)
    run.stored_problems += len(rows)
    run.problems.clear()


def _fingerprint(options: SourceOptions, organisation_id: int) -> str:
    shaping = {"licence": options.default_licence, "zone": options.timezone, "transforms": sorted(options.transforms),
               "strip": sorted(options.strip_query_params), "themes": options.theme_map,
               "boroughs": list(options.boroughs), "private": options.private, "org": organisation_id}
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


def _watermark_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Harvest:
    """One job's run."""

    def __init__(self, db: Database, job_id: int, progress: Callable[[Progress], None] | None) -> None:
        self.db = db
        self.job_id = job_id
        self.on_progress = progress
        self._batch: Session | None = None  # the open batch of records (PostgreSQL)
        self._staged: list[tuple[str, _Known, str]] = []  # its records, known once it commits

    # -- setting up ----------------------------------------------------------------------------

    def _load(self) -> tuple[_Run, Reference, dict[str, _Known]]:
        with self.db.session() as session:
            job = session.get(HarvestJob, self.job_id)
            assert job is not None
            src = job.source
            options = parse_options(src.type, src.config)
            source = _Source(src.id, src.slug, src.name, src.type, src.url, src.organisation_id,
                             src.organisation.slug, options, _fingerprint(options, src.organisation_id))
            mode, since = self._mode(session, job, source)
            reference = _reference(session)
            known = {row.remote_id: _Known(row.id, row.dataset_id, row.content_hash, row.state, row.remote_modified)
                     for row in session.scalars(select(HarvestObject).where(HarvestObject.source_id == src.id))}
            job.mode = mode
        return _Run(self.job_id, source, mode, since), reference, known

    def _mode(self, session: Session, job: HarvestJob, source: _Source) -> tuple[str, str | None]:
        reader = reader_for(source.type)
        if job.mode == "full" or not reader.INCREMENTAL:
            return "full", None
        if source.type == "dcat" and not source.options.modified_since:
            return "full", None
        finished = select(HarvestJob).where(HarvestJob.source_id == source.id, HarvestJob.status == "finished",
                                            HarvestJob.id != job.id)
        last = session.scalar(finished.where(HarvestJob.watermark.is_not(None)).order_by(HarvestJob.id.desc()))
        last_full = session.scalar(finished.where(HarvestJob.mode == "full").order_by(HarvestJob.id.desc()))
        if last is None or last_full is None:
            return "full", None  # nothing to be incremental from yet
        age = utcnow() - (last_full.started_at or last_full.queued_at)
        if job.mode == "auto" and age > timedelta(days=source.options.full_every_days):
            return "full", None
        return "incremental", last.watermark

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> None:
        run, reference, known = self._load()
        self.run_state, self.reference, self.known = run, reference, known
        source = run.source
        headers = {"Authorization": source.options.api_key} if source.options.api_key else {}
        complete = True
        note = ""
        try:
            with Fetcher(source.options, headers=headers, on_page=self._page_read,
                         before_request=self._commit_batch) as fetcher:
                crawl = Crawl(url=source.url, options=source.options, fetcher=fetcher, since=run.since,
                              expect=self._expect)
                for item in self._records(crawl):
                    self._one(item)
                    if len(self._staged) >= BATCH_RECORDS:
                        self._commit_batch()
                    self._beat()
            self._commit_batch()
        except JobStopped:
            self._drop_batch()
            return
        except PageCapReached as exc:
            self._commit_batch()
            complete = False
            note = str(exc)
            self._problem("error", None, note)
        except FetchFailed as exc:
            self._commit_batch()  # what was written before the source failed stays written
            _finish(self.db, self.job_id, "failed", str(exc), run, None)
            return
        except BaseException:
            self._drop_batch()
            raise
        try:
            if complete and run.mode == "full":
                self._withdraw()
            if run.mode == "full":
                self._mark_seen()
        except JobStopped:
            return
        _finish(self.db, self.job_id, "finished", self._summary(note), run, self._watermark())

    def _records(self, crawl: Crawl) -> Iterator[RemoteRecord | RecordProblem]:
        yield from reader_for(self.run_state.source.type).records(crawl)

    def _expect(self, total: int) -> None:
        self.run_state.expected = total

    def _page_read(self) -> None:
        self.run_state.pages += 1
        self._beat()

    def _summary(self, note: str) -> str:
        c = self.run_state.counts
        kind = "Full run" if self.run_state.mode == "full" else f"Incremental run (changes since {self.run_state.since})"
        parts = [f"{kind}: {c['seen']} records read", f"{c['created']} created", f"{c['updated']} updated",
                 f"{c['unchanged']} unchanged", f"{c['withdrawn']} withdrawn"]
        if c["skipped"]:
            parts.append(f"{c['skipped']} skipped by the source's filters")
        parts.append(f"{c['errors']} error{'s' if c['errors'] != 1 else ''}")
        text = ", ".join(parts) + "."
        return f"{text} {note}" if note else text

    def _watermark(self) -> str | None:
        run = self.run_state
        moment = run.oldest_failed if run.oldest_failed is not None else run.newest
        if moment is None:
            return run.since
        if run.since and run.oldest_failed is None and _watermark_text(moment) < run.since:
            return run.since
        return _watermark_text(moment)

    # -- bookkeeping ---------------------------------------------------------------------------

    def _problem(self, level: str, remote_id: str | None, reason: str) -> None:
        self.run_state.counts["errors" if level == "error" else "warnings"] += 1
        self.run_state.problems.append((level, remote_id, reason))

    def _beat(self, force: bool = False, allow_stop: bool = True) -> None:
        run = self.run_state
        now = time.monotonic()
        if not force and now - run.last_beat < HEARTBEAT_SECONDS:
            return
        run.last_beat = now
        self._commit_batch()  # the heartbeat is written by another session: never wait on our own lock
        for attempt in range(5):
            try:
                with self.db.session() as session:
                    alive = session.execute(
                        update(HarvestJob).where(HarvestJob.id == run.job_id, HarvestJob.status == "running")
                        .values(heartbeat_at=utcnow(), expected=run.expected, pages=run.pages, mode=run.mode,
                                **run.counts).execution_options(synchronize_session=False)).rowcount
                    if alive and run.problems:
                        _store_problems(session, run)
                break
            except OperationalError:  # the database is busy: try again shortly
                time.sleep(0.2 * (attempt + 1))
        else:
            return
        if self.on_progress:
            self.on_progress(Progress(run.job_id, dict(run.counts), run.expected, run.pages))
        if not alive and allow_stop:
            raise JobStopped()

    # -- one record ----------------------------------------------------------------------------

    def _one(self, item: RemoteRecord | RecordProblem) -> None:
        run = self.run_state
        source = run.source
        if isinstance(item, RecordProblem):
            run.counts["seen"] += 1
            self._problem("error", item.remote_id, item.reason)
            return
        if item.remote_id in run.listed:
            return  # listed twice (a record moved between pages while reading): once is enough
        run.listed.add(item.remote_id)
        run.counts["seen"] += 1
        options = source.options
        if item.remote_id in options.exclude_ids or (
                options.require_keywords and not {k.strip().lower() for k in item.keywords} & options.require_keywords):
            run.counts["skipped"] += 1
            return
        run.kept.add(item.remote_id)
        try:
            mapped = to_catalogue(item, options, self.reference, source_slug=source.slug,
                                  known_themes=set(THEMES))
        except Exception as exc:  # a record the mapping cannot read is reported, not fatal
            self._problem("error", item.remote_id, f"Could not read the record: {type(exc).__name__}: {exc}")
            return
        digest = mapped.content_hash(source.fingerprint)
        known = self.known.get(item.remote_id)
        if known is not None and known.state == "active" and known.dataset_id is not None \
                and known.content_hash == digest:
            run.counts["unchanged"] += 1
            self._note_time(mapped.remote_modified, failed=False)
            return
        try:
            outcome = self._write(item, mapped, digest, known)
        except PlatformError as exc:
            self._problem("error", item.remote_id, exc.message)
            self._note_time(mapped.remote_modified, failed=True)
            return
        except IntegrityError:
            self._problem("error", item.remote_id, "Another job wrote this record at the same time; it was left "
                                                   "as that job wrote it.")
            return
        except Exception as exc:  # one bad record never fails the job
            log.exception("harvest of %s record %s failed", source.slug, item.remote_id)
            self._problem("error", item.remote_id, f"Could not write the record: {type(exc).__name__}: {exc}")
            self._note_time(mapped.remote_modified, failed=True)
            return
        run.counts[outcome] += 1
        self._note_time(mapped.remote_modified, failed=False)
        if outcome != "unchanged":
            for warning in mapped.warnings:
                self._problem("warning", item.remote_id, warning)

    def _note_time(self, moment: datetime | None, failed: bool) -> None:
        if moment is None:
            return
        run = self.run_state
        if failed:
            run.oldest_failed = moment if run.oldest_failed is None else min(run.oldest_failed, moment)
        else:
            run.newest = moment if run.newest is None else max(run.newest, moment)

    def _write(self, record: RemoteRecord, mapped: Mapped, digest: str, known: _Known | None) -> str:
        """Create or update the record's dataset; returns the outcome.

        On PostgreSQL records are written up to BATCH_RECORDS to a transaction (committed before
        every page request and every heartbeat), each in its own savepoint: one bad record is rolled
        back alone, and the batch pays one commit, with the index and scorecards of all its datasets
        written together. SQLite (whose driver cannot nest savepoints in a transaction it has not
        begun explicitly) gives each record its own transaction.
        """
        if self.db.dialect != "postgresql":
            with self.db.session() as session:
                object_id, dataset_id, outcome = self._write_in(session, record, mapped, digest, known)
            self.known[record.remote_id] = _Known(object_id, dataset_id, digest, "active", mapped.remote_modified)
            return outcome
        if self._batch is None:
            self._batch = self.db.sessions()
        with self._batch.begin_nested():
            object_id, dataset_id, outcome = self._write_in(self._batch, record, mapped, digest, known)
        self._staged.append((record.remote_id, _Known(object_id, dataset_id, digest, "active", mapped.remote_modified),
                             outcome))
        return outcome

    def _write_in(self, session: Session, record: RemoteRecord, mapped: Mapped, digest: str,
                  known: _Known | None) -> tuple[int, int, str]:
        run = self.run_state
        source = run.source
        ds = session.get(Dataset, known.dataset_id) if known and known.dataset_id else None
        if ds is None:
            ds = self._create(session, mapped)
            outcome = "created"
        else:
            outcome = self._update(session, ds, mapped, reinstate=known is not None and known.state != "active")
        now = utcnow()
        values = {"dataset_id": ds.id, "content_hash": digest, "remote_modified": mapped.remote_modified,
                  "remote_url": record.remote_url[:2000], "state": "active", "last_job_id": run.job_id,
                  "modified": now}
        if known is None:
            row = HarvestObject(source_id=source.id, remote_id=record.remote_id, created=now, **values)
            session.add(row)
            session.flush()
            return row.id, ds.id, outcome
        session.execute(update(HarvestObject).where(HarvestObject.id == known.id).values(**values)
                        .execution_options(synchronize_session=False))
        return known.id, ds.id, outcome

    def _commit_batch(self) -> None:
        """Commit the open batch of records (their index and scorecards are written now, once)."""
        session, staged = self._batch, self._staged
        self._batch, self._staged = None, []
        if session is None:
            return
        try:
            session.commit()
        except Exception as exc:  # e.g. a deferred index or scorecard write failed: report every record
            session.rollback()
            log.exception("harvest batch of %s records failed to commit", len(staged))
            for remote_id, _, outcome in staged:
                self.run_state.counts[outcome] -= 1
                self._problem("error", remote_id, f"Could not write the record: {type(exc).__name__}: {exc}")
            return
        finally:
            session.close()
        for remote_id, known, _ in staged:
            self.known[remote_id] = known

    def _drop_batch(self) -> None:
        if self._batch is not None:
            self._batch.rollback()
            self._batch.close()
        self._batch, self._staged = None, []

    def _actor(self, *organisation_ids: int) -> Actor:
        source = self.run_state.source
        return harvest_actor(source.slug, [source.organisation_id, *organisation_ids])

    def _slug(self, session: Session, mapped: Mapped) -> str:
        source = self.run_state.source
        base = service.slugify(mapped.name) or service.slugify(mapped.fields["title"])
        if len(base) < 3:
            base = f"{source.slug}-{base}".strip("-")
        base = base[:100].rstrip("-")

        def taken(slug: str) -> bool:
            return session.scalar(select(Dataset.id).where(Dataset.slug == slug)) is not None

        if not taken(base) or not source.options.uses("slugs"):
            return base
        candidate = f"{source.slug}-{base}"[:100].rstrip("-")
        n = 2
        while taken(candidate):
            candidate = f"{f'{source.slug}-{base}'[:95].rstrip('-')}-{n}"
            n += 1
        mapped.warnings.append(f"The name '{base}' is used by another dataset: published as '{candidate}'.")
        return candidate

    def _create(self, session: Session, mapped: Mapped) -> Dataset:
        source = self.run_state.source
        actor = self._actor()
        data = {**mapped.fields, "slug": self._slug(session, mapped), "publisher": source.organisation_slug}
        ds = service.create_dataset(session, actor, data)
        for position, resource in enumerate(mapped.resources):
            service.add_resource(session, actor, ds, {**resource, "position": position})
        return ds

    def _update(self, session: Session, ds: Dataset, mapped: Mapped, reinstate: bool) -> str:
        source = self.run_state.source
        actor = self._actor(ds.organisation_id)
        before = ds.modified
        data = {**mapped.fields, "publisher": source.organisation_slug}
        if ds.state == "deleted" or (reinstate and ds.state == "draft"):
            data["state"] = "active"
        service.update_dataset(session, actor, ds, data)
        self._sync_resources(session, actor, ds, mapped.resources)
        return "updated" if ds.modified != before else "unchanged"

    def _sync_resources(self, session: Session, actor: Actor, ds: Dataset, wanted: list[dict[str, Any]]) -> None:
        """Make the dataset's harvested links match the remote ones (resources added here are left alone)."""
        ours = {(r.extras or {}).get("harvest_remote_id"): r for r in ds.resources
                if (r.extras or {}).get("harvest_remote_id") and r.kind == "link"}
        for position, resource in enumerate(wanted):
            current = ours.pop(resource["extras"]["harvest_remote_id"], None)
            if current is None:
                service.add_resource(session, actor, ds, {**resource, "position": position})
            else:
                service.update_resource(session, actor, current, {**resource, "position": position})
        for gone in ours.values():
            service.delete_resource(session, actor, gone)

    # -- the end of a full run -----------------------------------------------------------------

    def _withdraw(self) -> None:
        """Withdraw, by the source's policy, the datasets whose records the source no longer lists."""
        run = self.run_state
        source = run.source
        policy = source.options.withdraw
        gone = [(rid, known) for rid, known in self.known.items() if known.state == "active" and rid not in run.kept]
        if not gone:
            return
        if not run.kept:
            self._problem("warning", None, f"The source listed no datasets, so none of the {len(gone)} harvested "
                                           "before was withdrawn. Check that the source and its filters are right.")
            return
        for remote_id, known in gone:
            try:
                with self.db.session() as session:
                    ds = session.get(Dataset, known.dataset_id) if known.dataset_id else None
                    if ds is not None:
                        actor = self._actor(ds.organisation_id)
                        if policy == "delete" and ds.state != "deleted":
                            service.delete_dataset(session, actor, ds)
                        elif policy == "draft" and ds.state == "active":
                            service.update_dataset(session, actor, ds, {"state": "draft"})
                    state = "gone" if policy == "keep" else "withdrawn"
                    session.execute(update(HarvestObject).where(HarvestObject.id == known.id)
                                    .values(state=state, last_job_id=run.job_id, modified=utcnow())
                                    .execution_options(synchronize_session=False))
            except PlatformError as exc:
                self._problem("error", remote_id, f"Could not withdraw the dataset: {exc.message}")
                continue
            known.state = state
            if policy == "keep":
                self._problem("warning", remote_id, "No longer listed by the source; the dataset was kept "
                                                    "(the source's withdrawal policy is 'keep').")
            else:
                run.counts["withdrawn"] += 1
            self._beat()

    def _mark_seen(self) -> None:
        """Record that every still-listed object was seen by this (full) job: one statement."""
        with self.db.session() as session:
            session.execute(update(HarvestObject).where(HarvestObject.source_id == self.run_state.source.id,
                                                        HarvestObject.state == "active")
                            .values(last_job_id=self.run_state.job_id).execution_options(synchronize_session=False))


def _reference(session: Session) -> Reference:
    """Licence ids and the boroughs' names and codes, loaded once per job."""
    licences = set(session.scalars(select(Licence.id)))
    boroughs: dict[str, str] = {}
    rows = session.execute(select(Organisation.name, Organisation.gss_code).where(
        Organisation.kind == "local-authority", Organisation.gss_code.is_not(None))).all()
    for name, code in rows:
        low = " ".join(name.lower().replace("&", " and ").replace("-", " ").split())
        boroughs[low] = code
        for suffix in (" upon thames",):
            if low.endswith(suffix):
                boroughs[low[: -len(suffix)]] = code
    return Reference(licence_ids=licences, boroughs=boroughs, borough_codes={c for _, c in rows})


# --- the watchdog ---------------------------------------------------------------------------

def mark_stalled(db: Database, stall_minutes: float, now: datetime | None = None) -> list[int]:
    """Fail every queued or running job with no sign of life for ``stall_minutes``; returns their ids."""
    now = now or utcnow()
    cutoff = now - timedelta(minutes=stall_minutes)
    last_sign = func.coalesce(HarvestJob.heartbeat_at, HarvestJob.started_at, HarvestJob.queued_at)
    failed: list[int] = []
    with db.session() as session:
        stalled = session.execute(select(HarvestJob.id, HarvestJob.status, last_sign)
                                  .where(HarvestJob.status.in_(("queued", "running")), last_sign < cutoff)).all()
        for job_id, status, seen_at in stalled:
            seen_text = seen_at.strftime("%Y-%m-%d %H:%M:%S UTC") if seen_at else "never"
            what = "never started" if status == "queued" else "stopped making progress"
            message = (f"The job {what}: no sign of life for more than {stall_minutes:g} minutes (last at "
                       f"{seen_text}). The watchdog marked it failed; the next run starts afresh.")
            done = session.execute(update(HarvestJob).where(HarvestJob.id == job_id, HarvestJob.status == status,
                                                            last_sign < cutoff)
                                   .values(status="failed", finished_at=now, message=message)
                                   .execution_options(synchronize_session=False))
            if done.rowcount:
                failed.append(job_id)
    return failed


def run_due(db: Database, stall_minutes: float, progress: Callable[[str, Progress], None] | None = None,
            now: datetime | None = None) -> list[HarvestJob]:
    """Run every due source once, one at a time (as the scheduler does); returns the jobs run."""
    from .sources import claim_due, due_sources, start_job

    mark_stalled(db, stall_minutes)
    now = now or utcnow()
    with db.session() as session:
        due = due_sources(session, now)
        for source in due:
            session.expunge(source)
    jobs = []
    for source in due:
        if not claim_due(db, source, now):
            continue  # another process took it
        try:
            job_id = start_job(db, source.id, requested_by="scheduler", trigger="schedule")
        except PlatformError as exc:
            log.info("scheduled harvest of %s not started: %s", source.slug, exc.message)
            continue
        callback = (lambda p, slug=source.slug: progress(slug, p)) if progress else None
        jobs.append(run_job(db, job_id, callback))
    return jobs
