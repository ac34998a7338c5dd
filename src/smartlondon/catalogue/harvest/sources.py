"""The registry of harvest sources: who may manage them, their schedules, and starting jobs.

Sysadmins and the admins of a source's organisation add and change sources and start jobs.
A job is started by inserting a queued ``harvest_job`` row: the partial unique index allows
one queued or running job per source, so a second start, from any process, is refused.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ...core import audit
from ...core.accounts import Actor, require_authenticated
from ...core.db import Database, utcnow
from ...core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from ...core.models import Organisation
from .models import HarvestError, HarvestJob, HarvestSource
from .options import SECRET_OPTIONS, TYPES, check_config

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,98}[a-z0-9]$")
URL = re.compile(r"^https?://[^\s]+$")
RESERVED = {"new"}
NAMED_SCHEDULES = {"hourly": timedelta(hours=1), "daily": timedelta(days=1), "weekly": timedelta(days=7)}
EVERY = re.compile(r"^(?:every\s+)?(\d+)\s*(m|mins?|minutes?|h|hrs?|hours?|d|days?|w|weeks?)$")
ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
SOURCE_FIELDS = ("slug", "name", "type", "url", "organisation", "schedule", "config", "active")


def schedule_interval(schedule: str) -> timedelta | None:
    """How often a schedule runs (None for 'manual'); ValueError if it is not a schedule."""
    text = " ".join((schedule or "").strip().lower().split())
    if text == "manual":
        return None
    if text in NAMED_SCHEDULES:
        return NAMED_SCHEDULES[text]
    every = EVERY.match(text)
    iso = ISO.match(text.upper())
    if every:
        interval = timedelta(**{UNITS[every.group(2)[0]]: int(every.group(1))})
    elif iso and any(iso.groups()):
        days, hours, minutes = (int(g or 0) for g in iso.groups())
        interval = timedelta(days=days, hours=hours, minutes=minutes)
    else:
        raise ValueError(f"'{schedule}' is not a schedule. Use manual, hourly, daily, weekly, or an interval "
                         "such as 30m, 6h, 2d or PT6H.")
    if interval < timedelta(minutes=5):
        raise ValueError("Harvest at most every 5 minutes.")
    return interval


# --- reading ---------------------------------------------------------------------------------

def get_source(session: Session, slug: str) -> HarvestSource:
    """The source with this slug; 404 if none."""
    source = session.scalar(select(HarvestSource).where(HarvestSource.slug == slug))
    if source is None:
        raise NotFound(f"There is no harvest source called '{slug}'.")
    return source


def list_sources(session: Session) -> list[HarvestSource]:
    """Every source, by name."""
    return list(session.scalars(select(HarvestSource).order_by(HarvestSource.name)))


def latest_jobs(session: Session, source_ids: list[int]) -> dict[int, HarvestJob]:
    """The latest job of each of these sources (one query)."""
    if not source_ids:
        return {}
    newest = (select(func.max(HarvestJob.id)).where(HarvestJob.source_id.in_(source_ids))
              .group_by(HarvestJob.source_id))
    return {job.source_id: job for job in session.scalars(select(HarvestJob).where(HarvestJob.id.in_(newest)))}


def jobs_of(session: Session, source: HarvestSource, limit: int = 50) -> list[HarvestJob]:
    """A source's jobs, newest first."""
    return list(session.scalars(select(HarvestJob).where(HarvestJob.source_id == source.id)
                                .order_by(HarvestJob.id.desc()).limit(limit)))


def get_job(session: Session, source: HarvestSource, job_id: int) -> HarvestJob:
    """A job of this source; 404 if none."""
    job = session.get(HarvestJob, job_id)
    if job is None or job.source_id != source.id:
        raise NotFound(f"The harvest source '{source.slug}' has no job {job_id}.")
    return job


def job_problems(session: Session, job: HarvestJob, limit: int = 5000) -> list[HarvestError]:
    """A job's errors and warnings, in the order they happened."""
    return list(session.scalars(select(HarvestError).where(HarvestError.job_id == job.id)
                                .order_by(HarvestError.id).limit(limit)))


def next_due(source: HarvestSource) -> datetime | None:
    """When the scheduler will next run this source (None: manual or inactive)."""
    if not source.active or schedule_interval(source.schedule) is None:
        return None
    return source.next_run_at


def can_manage(actor: Actor, organisation_id: int) -> bool:
    """True if the actor may add, change and run sources for this organisation."""
    return actor.is_sysadmin or actor.can_admin(organisation_id)


def manageable_organisations(session: Session, actor: Actor) -> list[Organisation]:
    """The organisations the actor may add sources for."""
    query = select(Organisation).order_by(Organisation.name)
    if not actor.is_sysadmin:
        ids = [org for org, role in actor.roles.items() if role == "admin"]
        query = query.where(Organisation.id.in_(ids or [-1]))
    return list(session.scalars(query))


# --- writing ---------------------------------------------------------------------------------

def _clean(session: Session, data: dict[str, Any], existing: HarvestSource | None) -> dict[str, Any]:
    """Check and normalise source fields; raises 422 listing every problem at once."""
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    creating = existing is None

    def given(name: str) -> bool:
        return name in data and (creating or data[name] is not None)

    if given("name") or creating:
        name = " ".join(str(data.get("name") or "").split())
        if not name:
            errors["name"] = "Enter the source's name, for example ‘Camden open data portal’."
        elif len(name) > 200:
            errors["name"] = "The name must be 200 characters or fewer."
        out["name"] = name
    if creating:
        slug = str(data.get("slug") or "").strip().lower()
        if not SLUG.match(slug) or slug in RESERVED:
            errors["slug"] = ("Enter a short name of 3 to 100 lowercase letters, numbers and hyphens, like "
                              "‘camden-ckan’.")
        out["slug"] = slug
    if given("type") or creating:
        kind = str(data.get("type") or "").strip().lower()
        if kind not in TYPES:
            errors["type"] = f"Choose the type of the source: one of {', '.join(TYPES)}."
        out["type"] = kind
    if given("url") or creating:
        url = str(data.get("url") or "").strip()
        if not URL.match(url) or len(url) > 2000:
            errors["url"] = "Enter the source's address, starting with http:// or https://."
        out["url"] = url
    if given("organisation") or creating:
        ref = str(data.get("organisation") or "").strip()
        org = session.scalar(select(Organisation).where(
            (Organisation.slug == ref) | (Organisation.uuid == ref))) if ref else None
        if org is None:
            errors["organisation"] = ("Choose the organisation that publishes what this source brings in."
                                      if not ref else f"There is no organisation called '{ref}'.")
        out["organisation"] = org
    if given("schedule") or creating:
        schedule = " ".join(str(data.get("schedule") or "daily").strip().lower().split())
        try:
            schedule_interval(schedule)
        except ValueError as exc:
            errors["schedule"] = str(exc)
        out["schedule"] = schedule
    if given("config") or creating:
        config = data.get("config")
        if isinstance(config, str):
            try:
                config = json.loads(config) if config.strip() else {}
            except ValueError as exc:
                errors["config"] = f"The options are not valid JSON: {exc}."
                config = {}
        if existing is not None and isinstance(config, dict):  # a masked secret means "keep it"
            for key in SECRET_OPTIONS:
                if config.get(key) == "********":
                    config[key] = (existing.config or {}).get(key, "")
        if "config" not in errors:
            kind = out.get("type") or (existing.type if existing else "")
            try:
                out["config"] = check_config(kind, config)
            except ValidationFailed as exc:
                errors["config"] = exc.fields.get("config", exc.message)
    if given("active"):
        value = data.get("active")
        out["active"] = value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")
    if errors:
        raise ValidationFailed("The harvest source has problems: " + " ".join(errors.values()), errors)
    return out


def _record(source: HarvestSource) -> dict[str, Any]:
    from .options import public_config

    return {"slug": source.slug, "name": source.name, "type": source.type, "url": source.url,
            "organisation": source.organisation.slug if source.organisation else None,
            "schedule": source.schedule, "config": public_config(source.config), "active": source.active}


def create_source(session: Session, actor: Actor, data: dict[str, Any]) -> HarvestSource:
    """Register a source (sysadmins, or admins of its organisation)."""
    require_authenticated(actor)
    cleaned = _clean(session, data, None)
    if not can_manage(actor, cleaned["organisation"].id):
        raise Forbidden(f"Only a sysadmin or an admin of {cleaned['organisation'].name} can add its harvest sources.")
    if session.scalar(select(HarvestSource.id).where(HarvestSource.slug == cleaned["slug"])) is not None:
        raise Conflict(f"The name '{cleaned['slug']}' is already used by another harvest source.",
                       {"slug": "Already in use by another harvest source."})
    now = utcnow()
    interval = schedule_interval(cleaned["schedule"])
    source = HarvestSource(slug=cleaned["slug"], name=cleaned["name"], type=cleaned["type"], url=cleaned["url"],
                           schedule=cleaned["schedule"], organisation=cleaned["organisation"],
                           organisation_id=cleaned["organisation"].id, config=cleaned["config"],
                           active=cleaned.get("active", True), next_run_at=now if interval else None,
                           created=now, modified=now)
    session.add(source)
    session.flush()
    audit.record(session, actor, "harvest_source.create", "harvest_source", source.slug, after=_record(source),
                 organisation_id=source.organisation_id, summary=f"Added harvest source {source.name}")
    return source


def update_source(session: Session, actor: Actor, source: HarvestSource, data: dict[str, Any]) -> HarvestSource:
    """Change a source's fields (those given)."""
    require_authenticated(actor)
    if not can_manage(actor, source.organisation_id):
        raise Forbidden(f"Only a sysadmin or an admin of {source.organisation.name} can change this source.")
    cleaned = _clean(session, {k: v for k, v in data.items() if k in SOURCE_FIELDS and k != "slug"}, source)
    if "organisation" in cleaned and not can_manage(actor, cleaned["organisation"].id):
        raise Forbidden(f"Only a sysadmin or an admin of {cleaned['organisation'].name} can give it this source.")
    if "type" in cleaned and "config" not in cleaned:
        check_config(cleaned["type"], source.config)
    before = _record(source)
    for name in ("name", "type", "url", "schedule", "config", "active"):
        if name in cleaned:
            setattr(source, name, cleaned[name])
    if "organisation" in cleaned:
        source.organisation = cleaned["organisation"]
        source.organisation_id = cleaned["organisation"].id
    after = _record(source)
    if after == before:
        return source
    interval = schedule_interval(source.schedule)
    if interval is None:
        source.next_run_at = None
    elif before["schedule"] != source.schedule or source.next_run_at is None:
        last = session.scalar(select(func.max(HarvestJob.queued_at)).where(HarvestJob.source_id == source.id))
        source.next_run_at = (last + interval) if last else utcnow()
    source.modified = utcnow()
    audit.record(session, actor, "harvest_source.update", "harvest_source", source.slug, before=before, after=after,
                 organisation_id=source.organisation_id, summary=f"Changed harvest source {source.name}")
    return source


# --- jobs ------------------------------------------------------------------------------------

def start_job(db: Database, source_id: int, *, requested_by: str, trigger: str = "manual",
              mode: str = "auto") -> int:
    """Queue a job for a source and return its id; 409 if one is already queued or running."""
    if mode not in ("auto", "full", "incremental"):
        raise ValidationFailed(f"Unknown mode '{mode}': choose auto, full or incremental.",
                               {"mode": "Choose auto, full or incremental."})
    with db.session() as session:
        source = session.get(HarvestSource, source_id)
        if source is None:
            raise NotFound("There is no such harvest source.")
        if not source.active and trigger == "schedule":
            raise Conflict(f"The source {source.name} is switched off.")
    try:
        with db.session() as session:
            job = HarvestJob(source_id=source_id, status="queued", mode=mode, trigger=trigger,
                             requested_by=requested_by[:200], queued_at=utcnow(), message="")
            session.add(job)
            session.flush()
            return job.id
    except IntegrityError:
        pass
    with db.session() as session:
        running = session.scalar(select(HarvestJob).where(HarvestJob.source_id == source_id,
                                                          HarvestJob.status.in_(("queued", "running"))))
        name = session.get(HarvestSource, source_id).name  # type: ignore[union-attr]
        if running is None:  # it finished in between: let the caller try again
            raise Conflict(f"A harvest of {name} was starting at the same moment. Try again.")
        since = running.started_at or running.queued_at
        raise Conflict(f"A harvest of {name} is already {running.status} (job {running.id}, since "
                       f"{since:%Y-%m-%d %H:%M:%S} UTC). Wait for it to finish; a job that stops making "
                       "progress is marked failed automatically.")


def claim_due(db: Database, source: HarvestSource, now: datetime) -> bool:
    """Take this source's due run for this process (another process that tries too gets False)."""
    interval = schedule_interval(source.schedule)
    if interval is None:
        return False
    with db.session() as session:
        taken = session.execute(
            update(HarvestSource)
            .where(HarvestSource.id == source.id, HarvestSource.active.is_(True),
                   HarvestSource.next_run_at.is_not(None), HarvestSource.next_run_at <= now)
            .values(next_run_at=now + interval).execution_options(synchronize_session=False))
        return bool(taken.rowcount)


def due_sources(session: Session, now: datetime) -> list[HarvestSource]:
    """Active scheduled sources whose next run is due, the longest overdue first."""
    return list(session.scalars(
        select(HarvestSource).where(HarvestSource.active.is_(True), HarvestSource.next_run_at.is_not(None),
                                    HarvestSource.next_run_at <= now).order_by(HarvestSource.next_run_at)))
