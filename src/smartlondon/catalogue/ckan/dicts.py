"""CKAN-shaped dicts of datasets (packages), resources, organisations, groups, tags and licences.

Builders take either ORM objects or the list views of ``catalogue/listing.py`` (same attribute
names). What a page of results needs besides the datasets (their organisations, licences and
which resources are in the datastore) is looked up once for the whole page by
:func:`lookups_for`, so a page of any size costs a fixed number of statements.
"""

from __future__ import annotations

import importlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.models import Organisation
from ...core.reference import THEMES
from ..formats import display_format
from ..models import Licence
from ..service import resource_download_url

CKAN_VERSION = "2.10.4"
# Extras computed from the platform's own fields: shown read-only, mapped back to the fields on write.
PLATFORM_EXTRAS = ("boroughs", "frequency", "geography", "spatial", "temporal_end", "temporal_start")
_NAMESPACE = uuid.UUID("6f1e3a55-2f3c-5d8e-9a55-5b6a1c0de0a1")


def ckan_time(value: datetime | None) -> str | None:
    """A timestamp as CKAN writes it: naive ISO 8601 in UTC (``2024-05-01T10:00:00.123456``)."""
    if value is None:
        return None
    if value.tzinfo is not None and value.tzinfo is not timezone.utc:
        value = value.astimezone(timezone.utc)
    text = value.isoformat()
    return text[:-6] if text.endswith("+00:00") else text


@lru_cache(maxsize=256)
def group_id(theme: str) -> str:
    """The stable id of the CKAN group that stands for a theme."""
    return str(uuid.uuid5(_NAMESPACE, f"theme:{theme}"))


@lru_cache(maxsize=65536)
def tag_id(name: str) -> str:
    """The stable id of a tag."""
    return str(uuid.uuid5(_NAMESPACE, f"tag:{name}"))


def theme_for_group(ref: str) -> str | None:
    """The theme a group name or group id stands for, or None."""
    if ref in THEMES:
        return ref
    for theme in THEMES:
        if group_id(theme) == ref:
            return theme
    return None


# --- lookups shared by a page of results ------------------------------------------------------

@dataclass
class Lookups:
    """What package dicts need besides the datasets themselves, for a whole page at once."""

    base_url: str
    organisations: dict[int, Organisation] = field(default_factory=dict)
    licences: dict[str, Licence] = field(default_factory=dict)
    datastore: set[int] = field(default_factory=set)


def datastore_active(session: Session, resource_ids: list[int]) -> set[int]:
    """Which of these resources are loaded in the tabular store (none if that part is absent)."""
    if not resource_ids:
        return set()
    try:
        tabular = importlib.import_module("smartlondon.catalogue.tabular")
    except ImportError:
        return set()
    summary = getattr(tabular, "validation_summary", None)
    if summary is None:
        return set()
    states = summary(session, resource_ids)
    return {rid for rid, state in states.items() if (state or {}).get("status") == "loaded"}


def lookups_for(session: Session, datasets: Iterable[Any], base_url: str) -> Lookups:
    """Organisations, licences and datastore state for these datasets (three statements)."""
    datasets = list(datasets)
    lookups = Lookups(base_url=base_url)
    if not datasets:
        return lookups
    org_ids = sorted({d.organisation_id for d in datasets})
    lookups.organisations = {o.id: o for o in session.scalars(select(Organisation).where(Organisation.id.in_(org_ids)))}
    lookups.licences = {lic.id: lic for lic in session.scalars(select(Licence))}
    lookups.datastore = datastore_active(session, [r.id for d in datasets for r in d.resources])
    return lookups


# --- dicts --------------------------------------------------------------------------------------

def organization_dict(org: Organisation, *, package_count: int | None = None, full: bool = False,
                      include_extras: bool = False) -> dict[str, Any]:
    """An organisation as a CKAN organization (the short form inside packages, or ``full``)."""
    out: dict[str, Any] = {
        "id": org.uuid, "name": org.slug, "title": org.name, "type": "organization",
        "description": org.description or "", "image_url": "", "created": ckan_time(org.created),
        "is_organization": True, "approval_status": "approved", "state": "active",
    }
    if full:
        out.update(display_name=org.name, image_display_url="", num_followers=0,
                   package_count=package_count or 0)
        if include_extras:
            extras = {"kind": org.kind, "gss_code": org.gss_code or "", "url": org.url or ""}
            out["extras"] = [{"key": k, "value": v, "state": "active"} for k, v in sorted(extras.items()) if v]
    return out


def group_dict(theme: str, *, package_count: int | None = None, full: bool = False) -> dict[str, Any]:
    """A theme as a CKAN group (the short form inside packages, or ``full``)."""
    title = THEMES[theme][0]
    out: dict[str, Any] = {"id": group_id(theme), "name": theme, "title": title, "display_name": title,
                           "description": f"Datasets about {title.lower()}.", "image_display_url": ""}
    if full:
        out.update(type="group", is_organization=False, approval_status="approved", state="active",
                   image_url="", created=None, num_followers=0, package_count=package_count or 0)
    return out


def tag_dict(name: str) -> dict[str, Any]:
    """A keyword as a CKAN tag."""
    return {"id": tag_id(name), "name": name, "display_name": name, "state": "active", "vocabulary_id": None}


def licence_dict(lic: Licence) -> dict[str, Any]:
    """A licence of the register in the shape of CKAN's licence list."""
    return {
        "id": lic.id, "title": lic.title, "url": lic.url, "status": "active", "maintainer": "", "family": "",
        "domain_content": False, "domain_data": bool(lic.is_open), "domain_software": False,
        "is_generic": False, "od_conformance": "approved" if lic.is_open else "not reviewed",
        "osd_conformance": "not reviewed", "is_okd_compliant": bool(lic.is_open), "is_osi_compliant": False,
    }


def _bbox(ds: Any) -> list[float] | None:
    box = [ds.bbox_west, ds.bbox_south, ds.bbox_east, ds.bbox_north]
    return None if any(v is None for v in box) else box


def spatial_geojson(box: list[float]) -> str:
    """A bounding box [west, south, east, north] as a GeoJSON polygon (the ``spatial`` extra)."""
    west, south, east, north = box
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return json.dumps({"type": "Polygon", "coordinates": [ring]}, separators=(",", ":"))


def platform_extras(ds: Any) -> dict[str, str]:
    """The dataset's metadata that CKAN has no field for, as extras."""
    out = {"frequency": ds.frequency, "geography": ds.geography}
    if isinstance(ds.temporal_start, date):
        out["temporal_start"] = ds.temporal_start.isoformat()
    if isinstance(ds.temporal_end, date):
        out["temporal_end"] = ds.temporal_end.isoformat()
    box = _bbox(ds)
    if box:
        out["spatial"] = spatial_geojson(box)
    if ds.areas:
        out["boroughs"] = ",".join(a.gss_code for a in ds.areas)
    return out


RESOURCE_CORE_KEYS = frozenset({
    "id", "package_id", "url", "name", "description", "format", "mimetype", "mimetype_inner", "size", "hash",
    "position", "url_type", "created", "last_modified", "metadata_modified", "datastore_active", "state",
    "resource_type", "cache_url", "cache_last_updated",
})


def resource_dict(ds: Any, res: Any, position: int, lookups: Lookups) -> dict[str, Any]:
    """A resource as CKAN shows it, with the download address of an uploaded file as its ``url``."""
    upload = res.kind == "upload"
    out: dict[str, Any] = {
        "id": res.uuid, "package_id": ds.uuid, "url": resource_download_url(ds, res, lookups.base_url),
        "name": res.title, "description": res.description or "", "format": display_format(res.format),
        "mimetype": res.media_type or None, "mimetype_inner": None, "size": res.byte_size,
        "hash": res.sha256 or "", "position": position, "url_type": "upload" if upload else None,
        "created": ckan_time(res.created), "last_modified": ckan_time(res.modified) if upload else None,
        "metadata_modified": ckan_time(res.modified), "datastore_active": res.id in lookups.datastore,
        "state": "active", "resource_type": None, "cache_url": None, "cache_last_updated": None,
    }
    for key, value in (res.extras or {}).items():
        if key not in RESOURCE_CORE_KEYS:
            out[key] = value
    return out


def package_dict(ds: Any, lookups: Lookups) -> dict[str, Any]:
    """A dataset as a CKAN package dict, with its resources, tags, groups, organization and extras."""
    org = lookups.organisations.get(ds.organisation_id) or ds.organisation
    lic = lookups.licences.get(ds.licence_id)
    tags = [tag_dict(k.keyword) for k in ds.keywords]
    groups = [group_dict(t) for t in sorted(t.theme for t in ds.themes) if t in THEMES]
    extras = dict(ds.extras or {})
    extras.update(platform_extras(ds))
    ordered = sorted(ds.resources, key=lambda r: (r.position, r.id or 0))
    resources = [resource_dict(ds, r, i, lookups) for i, r in enumerate(ordered)]
    contact_name, contact_email = ds.contact_name or "", ds.contact_email or ""
    return {
        "id": ds.uuid, "name": ds.slug, "title": ds.title, "notes": ds.description or "", "type": "dataset",
        "state": ds.state, "private": bool(ds.private), "url": ds.landing_page or "", "version": ds.version or "",
        "author": contact_name, "author_email": contact_email,
        "maintainer": contact_name, "maintainer_email": contact_email,
        "license_id": ds.licence_id, "license_title": lic.title if lic else ds.licence_id,
        "license_url": lic.url if lic else "", "isopen": bool(lic.is_open) if lic else False,
        "owner_org": org.uuid if isinstance(org, Organisation) else None,
        "organization": organization_dict(org) if isinstance(org, Organisation) else None,
        "creator_user_id": None,
        "metadata_created": ckan_time(ds.created), "metadata_modified": ckan_time(ds.modified),
        "num_resources": len(resources), "num_tags": len(tags),
        "tags": tags, "groups": groups, "resources": resources,
        "extras": [{"key": k, "value": v} for k, v in sorted(extras.items())],
        "relationships_as_object": [], "relationships_as_subject": [],
    }
