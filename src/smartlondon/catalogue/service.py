"""The catalogue's rules: create, read, update and delete datasets and resources.

Plain functions over a SQLAlchemy session and an :class:`~smartlondon.core.accounts.Actor`.
Every write checks permissions here, records an audit event and updates the search index in
the caller's transaction, so a failure leaves nothing half written.
"""

from __future__ import annotations

import json
import re
import unicodedata
from urllib.parse import quote
import uuid
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..core import audit, events
from ..core.accounts import Actor, require_authenticated
from ..core.db import utcnow
from ..core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from ..core.models import Organisation
from ..core.reference import DEFAULT_LICENCE, FREQUENCIES, GEOGRAPHIES, THEMES
from . import index
from .formats import display_format, guess_format, media_type_for, normalise_format
from .models import Dataset, DatasetArea, DatasetKeyword, DatasetPlace, DatasetTheme, Licence, Resource

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,98}[a-z0-9]$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
GSS = re.compile(r"^[EWSN]\d{8}$")
STATES = ("active", "draft", "deleted")
URL = re.compile(r"^https?://[^\s]+$")

DATASET_FIELDS = (
    "slug", "title", "description", "publisher", "licence", "contact_name", "contact_email", "keywords",
    "themes", "frequency", "temporal_start", "temporal_end", "boroughs", "bbox", "geography", "private",
    "state", "featured", "landing_page", "version", "extras", "places",
)
RESOURCE_FIELDS = ("title", "description", "url", "format", "media_type", "table_schema", "position", "extras")


def slugify(text: str) -> str:
    """A URL slug made from a title: lowercase ASCII words joined by hyphens."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:100].rstrip("-")


# --- reading -----------------------------------------------------------------------------

def visible_to(actor: Actor, ds: Dataset) -> bool:
    """True if the actor may see this dataset."""
    if ds.state == "deleted":
        return actor.is_sysadmin
    if ds.private or ds.state == "draft":
        return actor.can_read_private(ds.organisation_id)
    return True


def get_dataset(session: Session, actor: Actor, slug_or_id: str) -> Dataset:
    """The dataset with this slug or UUID, if the actor may see it; otherwise 404."""
    ds = session.scalar(select(Dataset).where((Dataset.slug == slug_or_id) | (Dataset.uuid == slug_or_id)))
    if ds is None or not visible_to(actor, ds):
        raise NotFound(f"There is no dataset called '{slug_or_id}'. It may have been renamed or deleted.")
    return ds


def get_resource(session: Session, actor: Actor, dataset: Dataset, resource_id: str) -> Resource:
    """A resource of a dataset by its UUID; 404 if none."""
    for res in dataset.resources:
        if res.uuid == resource_id:
            return res
    raise NotFound(f"The dataset '{dataset.slug}' has no resource '{resource_id}'.")


def featured_datasets(session: Session, limit: int = 6) -> list[Dataset]:
    """Featured public datasets, then the most recently updated, for the home page."""
    base = select(Dataset).where(Dataset.state == "active", Dataset.private.is_(False))
    chosen = list(session.scalars(base.where(Dataset.featured.is_(True)).order_by(Dataset.modified.desc())
                                  .limit(limit)))
    if len(chosen) < limit:
        seen = [d.id for d in chosen]
        chosen += session.scalars(base.where(Dataset.id.notin_(seen) if seen else True)
                                  .order_by(Dataset.modified.desc()).limit(limit - len(chosen)))
    return chosen


def licences(session: Session) -> list[Licence]:
    """The licence register."""
    return list(session.scalars(select(Licence).order_by(Licence.title)))


# --- validation --------------------------------------------------------------------------

def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part.strip() for part in re.split(r"[,\n]", value) if part.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    raise TypeError


def _as_date(value: Any) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def _as_bbox(value: Any) -> list[float] | None:
    if value in (None, "", []):
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    numbers = [float(p) for p in parts]
    if len(numbers) != 4:
        raise ValueError
    west, south, east, north = numbers
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        raise ValueError
    return numbers


def clean_dataset(session: Session, data: dict[str, Any], existing: Dataset | None) -> dict[str, Any]:
    """Check and normalise dataset fields; raises 422 listing every problem at once."""
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    creating = existing is None

    def present(name: str) -> bool:
        return name in data

    if present("title") or creating:
        title = str(data.get("title") or "").strip()
        if not title:
            errors["title"] = "Enter a title."
        elif len(title) > 300:
            errors["title"] = "Title must be 300 characters or fewer."
        out["title"] = title
    if present("slug") or creating:
        slug = str(data.get("slug") or "").strip()
        if not slug and creating:
            slug = slugify(out.get("title", "")) or ""
            out["_derived_slug"] = True
        if not SLUG.match(slug):
            errors["slug"] = ("Enter a short name of 3 to 100 lowercase letters, numbers and hyphens, "
                              "starting and ending with a letter or number, like 'air-quality-2023'.")
        out["slug"] = slug
    if present("description"):
        out["description"] = str(data.get("description") or "")
    if present("publisher") or creating:
        ref = str(data.get("publisher") or "").strip()
        org = session.scalar(select(Organisation).where(
            (Organisation.slug == ref) | (Organisation.uuid == ref))) if ref else None
        if org is None:
            errors["publisher"] = ("Choose the publishing organisation." if not ref
                                   else f"There is no organisation called '{ref}'.")
        out["publisher"] = org
    if present("licence") or creating:
        lic = str(data.get("licence") or DEFAULT_LICENCE).strip()
        if session.get(Licence, lic) is None:
            known = ", ".join(session.scalars(select(Licence.id).order_by(Licence.id)))
            errors["licence"] = f"Unknown licence '{lic}'. Choose one of: {known}."
        out["licence"] = lic
    if present("contact_name"):
        out["contact_name"] = str(data.get("contact_name") or "").strip()
    if present("contact_email"):
        email = str(data.get("contact_email") or "").strip()
        if email and not EMAIL.match(email):
            errors["contact_email"] = "Enter an email address like data@example.gov.uk."
        out["contact_email"] = email
    for name, allowed, label in (("themes", THEMES, "theme"), ("boroughs", None, "borough")):
        if not present(name):
            continue
        try:
            values = list(dict.fromkeys(_as_list(data.get(name))))
        except TypeError:
            errors[name] = f"Give the {name} as a list."
            continue
        if allowed is not None:
            bad = [v for v in values if v not in allowed]
            if bad:
                errors[name] = f"Unknown {label} '{bad[0]}'. Choose from: {', '.join(allowed)}."
        else:
            values = [v.upper() for v in values]
            bad = [v for v in values if not GSS.match(v)]
            known = set(session.scalars(select(Organisation.gss_code).where(
                Organisation.gss_code.is_not(None), Organisation.kind == "local-authority")))
            bad += [v for v in values if GSS.match(v) and v not in known]
            if bad:
                errors[name] = f"'{bad[0]}' is not the GSS code of a London borough (like E09000007 for Camden)."
        out[name] = values
    if present("places"):  # any place in the register, by its ldn: uid (see docs/places-links.md)
        try:
            out["places"] = _clean_places(session, _as_list(data.get("places")))
        except (TypeError, ValueError) as exc:
            errors["places"] = str(exc) if isinstance(exc, ValueError) else "Give the places as a list of ldn: identifiers."
    if present("keywords"):
        try:
            keywords = list(dict.fromkeys(k.lower() for k in _as_list(data.get("keywords"))))
        except TypeError:
            errors["keywords"] = "Give the keywords as a list or a comma-separated string."
            keywords = []
        if any(len(k) > 100 for k in keywords):
            errors["keywords"] = "Each keyword must be 100 characters or fewer."
        out["keywords"] = keywords
    if present("frequency"):
        freq = str(data.get("frequency") or "irregular")
        if freq not in FREQUENCIES:
            errors["frequency"] = f"Unknown update frequency '{freq}'. Choose from: {', '.join(FREQUENCIES)}."
        out["frequency"] = freq
    if present("geography"):
        geo = str(data.get("geography") or "london")
        if geo not in GEOGRAPHIES:
            errors["geography"] = f"Unknown geography '{geo}'. Choose from: {', '.join(GEOGRAPHIES)}."
        out["geography"] = geo
    for name in ("temporal_start", "temporal_end"):
        if present(name):
            try:
                out[name] = _as_date(data.get(name))
            except ValueError:
                errors[name] = "Enter a real date as YYYY-MM-DD, like 2023-01-31."
    start = out.get("temporal_start", existing.temporal_start if existing else None)
    end = out.get("temporal_end", existing.temporal_end if existing else None)
    if start and end and end < start and "temporal_end" not in errors:
        errors["temporal_end"] = "The end of the time period must be on or after its start."
    if present("bbox"):
        try:
            out["bbox"] = _as_bbox(data.get("bbox"))
        except (TypeError, ValueError):
            errors["bbox"] = "Give the bounding box as west,south,east,north in WGS84 degrees."
    for name in ("private", "featured"):
        if present(name):
            out[name] = _as_bool(data.get(name))
    if present("landing_page"):
        page = str(data.get("landing_page") or "").strip()
        if page and not URL.match(page):
            errors["landing_page"] = "Enter the landing page as a web address starting with http:// or https://."
        out["landing_page"] = page[:2000]
    if present("version"):
        version = str(data.get("version") or "").strip()
        if len(version) > 100:
            errors["version"] = "The version must be 100 characters or fewer."
        out["version"] = version
    if present("extras"):
        try:
            out["extras"] = clean_extras(data.get("extras"))
        except ValueError as exc:
            errors["extras"] = str(exc)
    if present("state"):
        state = str(data.get("state") or "active")
        if state not in ("active", "draft"):
            errors["state"] = "The state must be 'active' or 'draft' (delete a dataset to remove it)."
        out["state"] = state
    if errors:
        raise ValidationFailed("The dataset has problems: " + "; ".join(errors.values()), errors)
    return out


# --- writing -----------------------------------------------------------------------------

def clean_extras(value: Any) -> dict[str, str]:
    """Extra key/value metadata as a dict of strings (also accepts CKAN's list of {key, value})."""
    if value in (None, ""):
        return {}
    if isinstance(value, list):
        pairs: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, dict) or "key" not in item:
                raise ValueError("Give the extras as an object of key/value pairs or a list of {key, value}.")
            pairs[str(item["key"])] = item.get("value")
        value = pairs
    if not isinstance(value, dict):
        raise ValueError("Give the extras as an object of key/value pairs or a list of {key, value}.")
    out: dict[str, str] = {}
    for key, item in value.items():
        key = str(key).strip()
        if not key or len(key) > 100:
            raise ValueError("Each extra needs a key of 1 to 100 characters.")
        out[key] = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
    return out


def check_can_publish(actor: Actor, ds: Dataset) -> None:
    """Raise 401/403 unless the actor may change this dataset."""
    _check_can_publish(actor, ds.organisation)


def _check_can_publish(actor: Actor, org: Organisation) -> None:
    require_authenticated(actor)
    if not actor.can_edit(org.id):
        raise Forbidden(f"You are not an editor of {org.name}, so you cannot publish or change its datasets.")


def _apply(ds: Dataset, cleaned: dict[str, Any]) -> None:
    simple = ("title", "description", "contact_name", "contact_email", "frequency", "temporal_start",
              "temporal_end", "geography", "private", "state", "featured", "landing_page", "version", "extras")
    for name in simple:
        if name in cleaned:
            setattr(ds, name, cleaned[name])
    if "title" in cleaned:
        ds.title_sort = cleaned["title"].lower()
    if "slug" in cleaned:
        ds.slug = cleaned["slug"]
    if "licence" in cleaned:
        ds.licence_id = cleaned["licence"]
    if "publisher" in cleaned:
        ds.organisation = cleaned["publisher"]
        ds.organisation_id = cleaned["publisher"].id
    if "bbox" in cleaned:
        box = cleaned["bbox"] or [None, None, None, None]
        ds.bbox_west, ds.bbox_south, ds.bbox_east, ds.bbox_north = box
    if "keywords" in cleaned:
        ds.keywords = [DatasetKeyword(keyword=k, position=i) for i, k in enumerate(cleaned["keywords"])]
    if "themes" in cleaned:
        ds.themes = [DatasetTheme(theme=t) for t in cleaned["themes"]]
    if "boroughs" in cleaned:
        ds.areas = [DatasetArea(gss_code=g) for g in cleaned["boroughs"]]
    if "places" in cleaned:
        ds.place_refs = [DatasetPlace(place_uid=u) for u in cleaned["places"]]


def _clean_places(session: Session, values: list[str]) -> list[str]:
    """Register uids a dataset is about, each checked through the places service (ValueError says what to fix)."""
    from ..places import service as places_service

    uids = list(dict.fromkeys(v.strip() for v in values if v.strip()))
    for uid in uids:
        if not uid.startswith("ldn:"):
            raise ValueError(f"'{uid}' is not a place identifier; they start with 'ldn:', like ldn:borough:E09000007.")
        try:
            place = places_service.get_place(session, uid)
        except NotFound:
            raise ValueError(f"There is no place '{uid}' in the register; find it at /places/search.") from None
        if place.status == "retired":
            instead = f"; use {', '.join(place.successors)} instead" if place.successors else ""
            raise ValueError(f"The place '{uid}' is retired{instead}.")
    return uids[:200]


def datasets_about_places(session: Session, gss_codes: list[str], place_uids: list[str], *,
                          limit: int = 20, offset: int = 0) -> tuple[int, list[Dataset]]:
    """Public datasets covering any of ``gss_codes`` or naming any of ``place_uids``: (how many, one page by title)."""
    ids = select(DatasetArea.dataset_id).where(DatasetArea.gss_code.in_(gss_codes or [""])).union(
        select(DatasetPlace.dataset_id).where(DatasetPlace.place_uid.in_(place_uids or [""])))
    query = select(Dataset).where(Dataset.id.in_(ids), Dataset.state == "active", Dataset.private.is_(False))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return total, list(session.scalars(query.order_by(Dataset.title_sort, Dataset.id).offset(offset).limit(limit)))


def _slug_taken(session: Session, slug: str, except_id: int | None = None) -> bool:
    query = select(Dataset.id).where(Dataset.slug == slug)
    if except_id is not None:
        query = query.where(Dataset.id != except_id)
    return session.scalar(query) is not None


def create_dataset(session: Session, actor: Actor, data: dict[str, Any], *,
                   dataset_uuid: str | None = None) -> Dataset:
    """Create a dataset for an organisation the actor edits for (``dataset_uuid``: keep a given id)."""
    require_authenticated(actor)
    cleaned = clean_dataset(session, data, None)
    _check_can_publish(actor, cleaned["publisher"])
    if cleaned.get("featured") and not actor.is_sysadmin:
        cleaned.pop("featured")
    if _slug_taken(session, cleaned["slug"]):
        if not cleaned.pop("_derived_slug", False):
            raise Conflict(f"The name '{cleaned['slug']}' is already used by another dataset. Choose another.",
                           {"slug": "Already in use by another dataset."})
        base, n = cleaned["slug"][:95], 2
        while _slug_taken(session, f"{base}-{n}"):
            n += 1
        cleaned["slug"] = f"{base}-{n}"
    cleaned.pop("_derived_slug", None)
    now = utcnow()
    ds = Dataset(uuid=dataset_uuid or str(uuid.uuid4()), created=now, modified=now, licence_id=DEFAULT_LICENCE)
    ds.keywords, ds.themes, ds.areas, ds.resources = [], [], [], []
    _apply(ds, cleaned)
    session.add(ds)
    session.flush()
    index.index_later(session, ds)
    audit.record(session, actor, "dataset.create", "dataset", ds.uuid, after=dataset_record(ds),
                 dataset_id=ds.id, organisation_id=ds.organisation_id, summary=f"Created “{ds.title}”")
    events.emit(session, "dataset.changed", dataset_id=ds.id)
    return ds


def update_dataset(session: Session, actor: Actor, ds: Dataset, data: dict[str, Any],
                   replace: bool = False) -> Dataset:
    """Change a dataset's fields (all of them when ``replace``); records before and after."""
    _check_can_publish(actor, ds.organisation)
    if replace:
        data = {**{name: None for name in DATASET_FIELDS if name not in ("slug", "state", "featured")},
                "slug": ds.slug, **data}
    cleaned = clean_dataset(session, {k: v for k, v in data.items() if k in DATASET_FIELDS}, ds)
    cleaned.pop("_derived_slug", None)
    if "publisher" in cleaned and cleaned["publisher"].id != ds.organisation_id:
        _check_can_publish(actor, cleaned["publisher"])
    if cleaned.get("featured") is not None and not actor.is_sysadmin:
        cleaned.pop("featured")
    if "slug" in cleaned and cleaned["slug"] != ds.slug and _slug_taken(session, cleaned["slug"], ds.id):
        raise Conflict(f"The name '{cleaned['slug']}' is already used by another dataset. Choose another.",
                       {"slug": "Already in use by another dataset."})
    before = dataset_record(ds)
    _apply(ds, cleaned)
    after = dataset_record(ds)
    if after == before:
        return ds
    ds.modified = utcnow()
    after["modified"] = ds.modified.isoformat()
    index.index_later(session, ds)
    audit.record(session, actor, "dataset.update", "dataset", ds.uuid, before=before, after=after,
                 dataset_id=ds.id, organisation_id=ds.organisation_id, summary=f"Updated “{ds.title}”")
    events.emit(session, "dataset.changed", dataset_id=ds.id)
    return ds


def delete_dataset(session: Session, actor: Actor, ds: Dataset) -> None:
    """Delete a dataset: it leaves search and the public site; its history stays."""
    _check_can_publish(actor, ds.organisation)
    before = dataset_record(ds)
    ds.state = "deleted"
    ds.modified = utcnow()
    index.index_later(session, ds)
    audit.record(session, actor, "dataset.delete", "dataset", ds.uuid, before=before,
                 after={**before, "state": "deleted"}, dataset_id=ds.id,
                 organisation_id=ds.organisation_id, summary=f"Deleted “{ds.title}”")
    events.emit(session, "dataset.deleted", dataset_id=ds.id)


# --- resources -----------------------------------------------------------------------------

def clean_resource(data: dict[str, Any], kind: str, creating: bool) -> dict[str, Any]:
    """Check and normalise resource fields; raises 422 listing every problem."""
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    if "title" in data or creating:
        title = str(data.get("title") or "").strip()
        if not title:
            errors["title"] = "Enter a title for the resource."
        out["title"] = title[:300]
    if "description" in data:
        out["description"] = str(data.get("description") or "")
    if kind == "link" and ("url" in data or creating):
        url = str(data.get("url") or "").strip()
        if not URL.match(url):
            errors["url"] = "Enter a web address starting with http:// or https://."
        out["url"] = url
    if "format" in data and data.get("format"):
        out["format"] = normalise_format(str(data["format"]))[:40]
    if "media_type" in data and data.get("media_type"):
        out["media_type"] = str(data["media_type"])[:200]
    if "table_schema" in data:
        schema = data.get("table_schema")
        if isinstance(schema, str) and schema.strip():
            import json

            try:
                schema = json.loads(schema)
            except ValueError:
                errors["table_schema"] = "The Table Schema is not valid JSON."
        if schema in ("", None):
            schema = None
        elif not isinstance(schema, dict) or not isinstance(schema.get("fields"), list):
            errors.setdefault("table_schema", "A Table Schema is a JSON object with a 'fields' list.")
        out["table_schema"] = schema
    if "extras" in data:
        try:
            out["extras"] = clean_extras(data.get("extras"))
        except ValueError as exc:
            errors["extras"] = str(exc)
    if "position" in data and data.get("position") not in (None, ""):
        try:
            out["position"] = int(data["position"])
        except (TypeError, ValueError):
            errors["position"] = "The position must be a whole number."
    if errors:
        raise ValidationFailed("The resource has problems: " + "; ".join(errors.values()), errors)
    return out


def add_resource(session: Session, actor: Actor, ds: Dataset, data: dict[str, Any], *,
                 stored: Any | None = None, filename: str | None = None,
                 resource_uuid: str | None = None) -> Resource:
    """Add a resource: an uploaded file (``stored``, from storage) or a link (``data['url']``)."""
    _check_can_publish(actor, ds.organisation)
    if (ds.extras or {}).get("access_rights") == "restricted":  # LODA (docs/sharing.md): never downloadable
        raise Forbidden("This is a restricted dataset: its data is reached only through the LODA gateway under an "
                        "agreement, so it cannot have downloadable resources.")
    kind = "upload" if stored is not None else "link"
    if kind == "upload" and not data.get("title"):
        data = {**data, "title": filename or "Data file"}
    cleaned = clean_resource(data, kind, creating=True)
    fmt = cleaned.get("format") or guess_format(filename if kind == "upload" else cleaned.get("url"))
    if kind == "link" and fmt not in ("CSV", "XLSX", "JSON", "GEOJSON", "PDF", "ZIP", "XML", "PARQUET"):
        fmt = cleaned.get("format") or ("HTML" if fmt in ("", "HTM", "PHP", "ASPX") or "/" in fmt else fmt)
    now = utcnow()
    res = Resource(
        uuid=resource_uuid or str(uuid.uuid4()), kind=kind, title=cleaned["title"],
        description=cleaned.get("description", ""),
        url=cleaned.get("url"), format=fmt, created=now, modified=now,
        media_type=cleaned.get("media_type") or media_type_for(fmt, filename),
        table_schema=cleaned.get("table_schema"), extras=cleaned.get("extras") or {},
        position=cleaned.get("position", max((r.position for r in ds.resources), default=-1) + 1),
    )
    if stored is not None:
        res.storage_key, res.byte_size, res.sha256 = stored.key, stored.byte_size, stored.sha256
        res.filename = safe_filename(filename or f"{slugify(cleaned['title']) or 'data'}")
    ds.resources.append(res)
    ds.modified = now
    session.flush()
    index.index_later(session, ds)
    audit.record(session, actor, "resource.create", "resource", res.uuid, after=resource_record(res),
                 dataset_id=ds.id, organisation_id=ds.organisation_id,
                 summary=f"Added resource “{res.title}”")
    events.emit(session, "resource.changed", resource_id=res.id, dataset_id=ds.id)
    events.emit(session, "dataset.changed", dataset_id=ds.id)
    return res


def update_resource(session: Session, actor: Actor, res: Resource, data: dict[str, Any], *,
                    stored: Any | None = None, filename: str | None = None) -> tuple[Resource, str | None]:
    """Change a resource; returns it and the storage key of any file it replaced (to delete later)."""
    ds = res.dataset
    _check_can_publish(actor, ds.organisation)
    cleaned = clean_resource({k: v for k, v in data.items() if k in RESOURCE_FIELDS}, res.kind, creating=False)
    before = resource_record(res)
    old_key = None
    for name, value in cleaned.items():
        setattr(res, name, value)
    if stored is not None:
        old_key = res.storage_key
        res.kind, res.url = "upload", None
        res.storage_key, res.byte_size, res.sha256 = stored.key, stored.byte_size, stored.sha256
        res.filename = safe_filename(filename or res.filename or "data")
        if "format" not in cleaned:
            res.format = guess_format(filename) or res.format
        if "media_type" not in cleaned:
            res.media_type = media_type_for(res.format, filename)
    after = resource_record(res)
    if after == before:
        return res, None
    res.modified = ds.modified = utcnow()
    session.flush()
    index.index_later(session, ds)
    audit.record(session, actor, "resource.update", "resource", res.uuid, before=before, after=after,
                 dataset_id=ds.id, organisation_id=ds.organisation_id,
                 summary=f"Updated resource “{res.title}”")
    events.emit(session, "resource.changed", resource_id=res.id, dataset_id=ds.id)
    events.emit(session, "dataset.changed", dataset_id=ds.id)
    return res, old_key


def delete_resource(session: Session, actor: Actor, res: Resource) -> str | None:
    """Remove a resource; returns the storage key of its file, to delete after the commit."""
    ds = res.dataset
    _check_can_publish(actor, ds.organisation)
    before = resource_record(res)
    key = res.storage_key
    resource_id = res.id
    ds.resources.remove(res)
    ds.modified = utcnow()
    session.flush()
    index.index_later(session, ds)
    audit.record(session, actor, "resource.delete", "resource", before["id"], before=before,
                 dataset_id=ds.id, organisation_id=ds.organisation_id,
                 summary=f"Removed resource “{before['title']}”")
    events.emit(session, "resource.deleted", resource_id=resource_id, dataset_id=ds.id)
    events.emit(session, "dataset.changed", dataset_id=ds.id)
    return key


def safe_filename(name: str) -> str:
    """A file name safe to store and send: no directories, no control characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = re.sub(r"[^\w.\- ()]+", "_", base).strip(" .") or "data"
    return base[:200]


# --- views ---------------------------------------------------------------------------------

def dataset_record(ds: Dataset) -> dict[str, Any]:
    """The dataset's editable fields, flat: what the audit log stores before and after."""
    return {
        "slug": ds.slug, "title": ds.title, "description": ds.description,
        "publisher": ds.organisation.slug if ds.organisation else None, "licence": ds.licence_id,
        "contact_name": ds.contact_name, "contact_email": ds.contact_email,
        "keywords": [k.keyword for k in ds.keywords], "themes": [t.theme for t in ds.themes],
        "frequency": ds.frequency,
        "temporal_start": ds.temporal_start.isoformat() if ds.temporal_start else None,
        "temporal_end": ds.temporal_end.isoformat() if ds.temporal_end else None,
        "boroughs": [a.gss_code for a in ds.areas], "bbox": bbox_of(ds), "geography": ds.geography,
        "places": [p.place_uid for p in ds.place_refs],
        "private": ds.private, "state": ds.state, "featured": ds.featured,
        "landing_page": ds.landing_page or "", "version": ds.version or "", "extras": dict(ds.extras or {}),
    }


def bbox_of(ds: Dataset) -> list[float] | None:
    """The dataset's bounding box as [west, south, east, north], or None."""
    box = [ds.bbox_west, ds.bbox_south, ds.bbox_east, ds.bbox_north]
    return None if any(v is None for v in box) else box  # type: ignore[return-value]


def resource_record(res: Resource) -> dict[str, Any]:
    """A resource's fields: what the audit log stores and the API returns."""
    return {
        "id": res.uuid, "title": res.title, "description": res.description, "kind": res.kind,
        "url": res.url, "filename": res.filename, "format": display_format(res.format),
        "media_type": res.media_type, "byte_size": res.byte_size, "sha256": res.sha256,
        "table_schema": res.table_schema, "position": res.position, "extras": dict(res.extras or {}),
    }


def dataset_dict(ds: Dataset, base_url: str = "") -> dict[str, Any]:
    """The dataset as the JSON API returns it, with its publisher, licence and resources."""
    record = dataset_record(ds)
    record.pop("publisher")
    record.pop("licence")
    return {
        "id": ds.uuid, **record,
        "publisher": {"slug": ds.organisation.slug, "name": ds.organisation.name,
                      "url": f"{base_url}/organisation/{ds.organisation.slug}"},
        "licence": {"id": ds.licence.id, "title": ds.licence.title, "url": ds.licence.url},
        "created": ds.created.isoformat(), "modified": ds.modified.isoformat(),
        "url": f"{base_url}/dataset/{ds.slug}",
        "resources": [{**resource_record(r), "download_url": resource_download_url(ds, r, base_url)}
                      for r in ds.resources],
    }


def resource_download_url(ds: Dataset, res: Resource, base_url: str = "") -> str:
    """Where to get a resource: the link itself, or our download address for an upload."""
    if res.kind == "link":
        return res.url or ""
    return f"{base_url}/dataset/{ds.slug}/resource/{res.uuid}/download/{quote(res.filename or 'data')}"
