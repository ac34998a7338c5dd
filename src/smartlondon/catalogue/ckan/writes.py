"""CKAN's write actions, mapped onto the catalogue service (permissions, audit and index live there).

CKAN field -> catalogue field: name -> slug, title -> title, notes -> description, owner_org (name
or id) -> publisher, license_id -> licence (CKAN's ``uk-ogl``, ``cc-by``... are understood),
tags -> keywords, groups -> themes, url -> landing_page, version -> version, maintainer/author
(+ _email) -> contact point, private, state, extras -> extras. The extras ``frequency``,
``geography``, ``temporal_start``, ``temporal_end``, ``spatial`` (GeoJSON) and ``boroughs`` (GSS
codes) stand for the catalogue's own fields and write those fields.

Everything an action writes is in the request's transaction: a validation error anywhere (in the
dataset or in its third resource) leaves nothing written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import select

from ...core import accounts
from ...core.errors import Conflict, NotFound, ValidationFailed
from ...core.models import Organisation
from .. import service
from ..models import Dataset, Resource
from .actions import ActionCall, action, invalid, require
from .dicts import (
    PLATFORM_EXTRAS, RESOURCE_CORE_KEYS, lookups_for, organization_dict, package_dict, resource_dict,
    theme_for_group,
)
from .solr import licence_id

SERVICE_TO_CKAN = {
    "slug": "name", "title": "title", "description": "notes", "publisher": "owner_org", "licence": "license_id",
    "keywords": "tags", "themes": "groups", "landing_page": "url", "version": "version",
    "contact_name": "maintainer", "contact_email": "maintainer_email", "private": "private", "state": "state",
    "extras": "extras",
}
PLATFORM_TO_EXTRA = {"frequency": "frequency", "geography": "geography", "temporal_start": "temporal_start",
                     "temporal_end": "temporal_end", "bbox": "spatial", "boroughs": "boroughs"}
RESOURCE_TO_CKAN = {"title": "name", "media_type": "mimetype"}
RESOURCE_IGNORED = RESOURCE_CORE_KEYS | {"revision_id", "tracking_summary", "has_views", "on_same_domain", "upload",
                                         "clear_upload", "datastore_contains_all_records_of_source_file"}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
NAME_IN_USE = "That URL is already in use."


def _add(errors: dict[str, Any], key: str, message: str) -> None:
    errors.setdefault(key, []).append(message)


def _ckan_errors(fields: dict[str, Any], names: dict[str, str], email_key: str = "maintainer_email") -> dict[str, Any]:
    """A service error's fields under CKAN's names, each a list of messages."""
    out: dict[str, Any] = {}
    for name, message in fields.items():
        messages = message if isinstance(message, list) else [str(message)]
        if name in PLATFORM_TO_EXTRA:
            for text in messages:
                _add(out, "extras", f"{PLATFORM_TO_EXTRA[name]}: {text}")
            continue
        key = names.get(name, name)
        if key == "maintainer_email":
            key = email_key
        for text in messages:
            _add(out, key, text)
    return out


@contextmanager
def _ckan_fields(names: dict[str, str], email_key: str = "maintainer_email") -> Iterator[None]:
    """Re-raise the service's validation errors and conflicts with CKAN's field names."""
    try:
        yield
    except ValidationFailed as exc:
        raise ValidationFailed(exc.message, _ckan_errors(exc.fields, names, email_key)) from exc
    except Conflict as exc:
        fields = {key: ([NAME_IN_USE] if key == "name" else value)
                  for key, value in _ckan_errors(exc.fields, names, email_key).items()}
        raise ValidationFailed(exc.message, fields) from exc


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else json.dumps(value, ensure_ascii=False)


# --- datasets --------------------------------------------------------------------------------------

def _tags(params: dict[str, Any], errors: dict[str, Any]) -> list[str] | None:
    if "tags" in params:
        tags = params["tags"]
        if tags in (None, ""):
            return []
        if isinstance(tags, str):
            try:
                tags = json.loads(tags) if tags.strip().startswith("[") else [tags]
            except ValueError:
                tags = None
        if not isinstance(tags, list):
            _add(errors, "tags", "Give the tags as a list of {\"name\": ...} objects.")
            return None
        names = []
        for tag in tags:
            name = tag.get("name") if isinstance(tag, dict) else tag
            if not isinstance(name, str) or not name.strip():
                _add(errors, "tags", "Each tag needs a name.")
                return None
            names.append(name.strip())
        return names
    if "tag_string" in params:
        return [t.strip() for t in str(params["tag_string"] or "").split(",") if t.strip()]
    return None


def _groups(params: dict[str, Any], errors: dict[str, Any]) -> list[str] | None:
    if "groups" not in params:
        return None
    groups = params["groups"] or []
    if not isinstance(groups, list):
        _add(errors, "groups", "Give the groups as a list of {\"name\": ...} objects.")
        return None
    themes = []
    for group in groups:
        ref = (group.get("name") or group.get("id")) if isinstance(group, dict) else group
        theme = theme_for_group(str(ref or ""))
        if theme is None:
            _add(errors, "groups", f"Group {ref!r} not found. The groups are the themes: see group_list.")
        else:
            themes.append(theme)
    return themes


def _bbox_from_spatial(value: str) -> list[float] | None:
    """[west, south, east, north] of a GeoJSON geometry (the ``spatial`` extra), or of "w,s,e,n"."""
    if not value.strip():
        return None
    if not value.strip().startswith("{"):
        return [float(part) for part in value.split(",")]
    geometry = json.loads(value)
    points: list[list[float]] = []

    def walk(coords: Any) -> None:
        if coords and isinstance(coords[0], (int, float)):
            points.append(coords)
        else:
            for item in coords:
                walk(item)

    walk(geometry.get("coordinates") or [])
    if not points:
        raise ValueError("no coordinates")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return [min(xs), min(ys), max(xs), max(ys)]


def _extras(params: dict[str, Any], data: dict[str, Any], errors: dict[str, Any], replace: bool) -> None:
    """Split CKAN extras into the platform's own fields and the free extras."""
    raw = params.get("extras")
    if raw is None:
        return
    pairs: dict[str, Any] = {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else []
        except ValueError:
            _add(errors, "extras", "The extras are not valid JSON.")
            return
    if isinstance(raw, dict):
        pairs = dict(raw)
    elif isinstance(raw, list):
        for item in raw:
            if not isinstance(item, dict) or not isinstance(item.get("key"), str):
                _add(errors, "extras", "Give the extras as a list of {\"key\": ..., \"value\": ...} objects.")
                return
            if item.get("deleted") in (True, "on", "True"):
                continue
            pairs[item["key"]] = item.get("value")
    else:
        _add(errors, "extras", "Give the extras as a list of {\"key\": ..., \"value\": ...} objects.")
        return
    free = {key: _text(value) for key, value in pairs.items() if key not in PLATFORM_EXTRAS}
    data["extras"] = free
    platform = {key: _text(pairs[key]).strip() for key in PLATFORM_EXTRAS if key in pairs}
    if replace:  # a full update: platform extras not given are cleared, like any other field
        platform = {key: platform.get(key, "") for key in PLATFORM_EXTRAS}
    for key, value in platform.items():
        if key == "spatial":
            try:
                data["bbox"] = _bbox_from_spatial(value)
            except (ValueError, TypeError, AttributeError):
                _add(errors, "extras", "spatial: Give a GeoJSON geometry, or west,south,east,north.")
        elif key == "boroughs":
            try:
                data["boroughs"] = json.loads(value) if value.startswith("[") else value
            except ValueError:
                _add(errors, "extras", "boroughs: Give GSS codes separated by commas, like E09000007,E09000012.")
        else:
            data[key] = value or None


def dataset_data(params: dict[str, Any], existing: Dataset | None,
                 replace: bool) -> tuple[dict[str, Any], str, dict[str, list[str]]]:
    """The catalogue fields for CKAN package fields, which email field was used, and the mapping's problems."""
    errors: dict[str, Any] = {}
    data: dict[str, Any] = {}
    if "name" in params:
        data["slug"] = str(params["name"] or "").strip()
    if "title" in params and params["title"] not in (None, ""):
        data["title"] = params["title"]
    elif existing is None and params.get("name"):
        data["title"] = str(params["name"])  # CKAN shows the name when there is no title
    elif replace and existing is not None:
        data["title"] = existing.title
    if "notes" in params:
        data["description"] = params["notes"] or ""
    if params.get("owner_org"):
        data["publisher"] = str(params["owner_org"])
    elif existing is not None and (replace or "owner_org" in params):
        data["publisher"] = existing.organisation.slug  # CKAN keeps the organization when none is sent
    if "license_id" in params:
        data["licence"] = licence_id(str(params["license_id"] or "")) or None
    tags = _tags(params, errors)
    if tags is not None:
        data["keywords"] = tags
    themes = _groups(params, errors)
    if themes is not None:
        data["themes"] = themes
    if "url" in params:
        data["landing_page"] = params["url"] or ""
    if "version" in params:
        data["version"] = params["version"] or ""
    email_key = "maintainer_email"
    if "maintainer" in params or "author" in params:
        data["contact_name"] = params.get("maintainer") or params.get("author") or ""
    if "maintainer_email" in params or "author_email" in params:
        email_key = "maintainer_email" if params.get("maintainer_email") or not params.get("author_email") \
            else "author_email"
        data["contact_email"] = params.get(email_key) or ""
    if "private" in params:
        data["private"] = params["private"]
    if params.get("state"):
        data["state"] = params["state"]
    _extras(params, data, errors, replace)
    return data, email_key, errors


def checked_dataset_data(call: ActionCall, params: dict[str, Any], existing: Dataset | None,
                         replace: bool) -> tuple[dict[str, Any], str]:
    """``dataset_data``, raising every problem at once: those of the mapping and the catalogue's own."""
    data, email_key, errors = dataset_data(params, existing, replace)
    if errors:
        try:
            service.clean_dataset(call.session, {k: v for k, v in data.items() if k in service.DATASET_FIELDS},
                                  existing)
        except ValidationFailed as exc:
            for key, messages in _ckan_errors(exc.fields, SERVICE_TO_CKAN, email_key).items():
                errors.setdefault(key, messages)
        raise ValidationFailed("The dataset has problems: " + "; ".join(m for ms in errors.values() for m in ms),
                               errors)
    return data, email_key


def _dict_of(call: ActionCall, ds: Dataset) -> dict[str, Any]:
    call.session.flush()
    return package_dict(ds, lookups_for(call.session, [ds], call.base_url))


def _given_uuid(call: ActionCall, value: Any, model: Any, what: str) -> str | None:
    """An id the client chose (kept when it is a free UUID; CKAN lets sysadmins choose dataset ids)."""
    if not isinstance(value, str) or not value:
        return None
    if not UUID.match(value):
        raise invalid("id", f"The {what} id must be a UUID like 0b6f1c1e-...")
    if call.session.scalar(select(model.id).where(model.uuid == value)) is not None:
        raise invalid("id", f"{what.capitalize()} id already exists")
    return value


@action("package_create", read=False)
def package_create(call: ActionCall) -> dict[str, Any]:
    """Create a new dataset (package); returns it as package_show would.

    :param name: the URL name: 3 to 100 lowercase letters, numbers and hyphens (required).
    :param title: the title (default: the name).
    :param owner_org: the id or name of the publishing organization (required).
    :param notes: the description (Markdown).
    :param license_id: a licence id from license_list (default OGL-UK-3.0).
    :param tags: list of {"name": ...}; ``tag_string`` ("a,b") also works.
    :param groups: list of {"name": ...}: the themes (see group_list).
    :param url: landing page; :param version:; :param maintainer:, ``maintainer_email`` (or
        ``author``, ``author_email``): the contact point.
    :param private: (default False); :param state: ``active`` (default) or ``draft``.
    :param extras: list of {"key", "value"}; ``frequency``, ``geography``, ``temporal_start``,
        ``temporal_end``, ``spatial`` (GeoJSON) and ``boroughs`` (GSS codes) set those fields.
    :param resources: list of resource dicts (links; upload files with resource_create).
    :param id: sysadmins may choose the dataset's id (a UUID).
    """
    params = call.params
    if not str(params.get("name") or "").strip():
        raise invalid("name", "Missing value")
    data, email_key = checked_dataset_data(call, params, None, replace=False)
    chosen = _given_uuid(call, params.get("id"), Dataset, "dataset") if call.actor.is_sysadmin else None
    with _ckan_fields(SERVICE_TO_CKAN, email_key):
        ds = service.create_dataset(call.session, call.actor, data, dataset_uuid=chosen)
    if params.get("resources"):
        _sync_resources(call, ds, params["resources"], delete_missing=False)
    return _dict_of(call, ds)


def _update(call: ActionCall, replace: bool) -> dict[str, Any]:
    params = call.params
    ds = service.get_dataset(call.session, call.actor, require(params, "id", "name"))
    service.check_can_publish(call.actor, ds)
    if "id" not in params and "name" in params:
        params = {k: v for k, v in params.items() if k != "name"}  # the name found it; it is not a rename
    data, email_key = checked_dataset_data(call, params, ds, replace=replace)
    with _ckan_fields(SERVICE_TO_CKAN, email_key):
        service.update_dataset(call.session, call.actor, ds, data, replace=replace)
    if "resources" in params and params["resources"] is not None:
        _sync_resources(call, ds, params["resources"], delete_missing=True)
    return _dict_of(call, ds)


@action("package_update", read=False)
def package_update(call: ActionCall) -> dict[str, Any]:
    """Update a dataset (package): fields not given are cleared, as in CKAN.

    Call package_show, change the dict, and send it back. ``resources``, when given, is the
    complete list: resources with a known id are updated, new ones added, missing ones removed;
    when ``resources`` is not given they are kept. Parameters as for package_create, plus
    :param id: the id or name of the dataset to update.
    """
    return _update(call, replace=True)


@action("package_patch", read=False)
def package_patch(call: ActionCall) -> dict[str, Any]:
    """Change only the given fields of a dataset (package); the others keep their values.

    :param id: the id or name of the dataset. Other parameters as for package_create.
    """
    return _update(call, replace=False)


@action("package_delete", read=False)
def package_delete(call: ActionCall) -> None:
    """Delete a dataset (package): it leaves search and the site; its history is kept.

    :param id: the id or name of the dataset.
    """
    ds = service.get_dataset(call.session, call.actor, require(call.params, "id"))
    service.delete_dataset(call.session, call.actor, ds)


# --- resources ---------------------------------------------------------------------------------------

def resource_data(rdata: dict[str, Any], existing: Resource | None, merge: bool) -> dict[str, Any]:
    """The catalogue's resource fields for a CKAN resource dict."""
    data: dict[str, Any] = {}
    name = rdata.get("name")
    if name not in (None, ""):
        data["title"] = str(name)
    elif existing is None:
        url = str(rdata.get("url") or "")
        data["title"] = urlparse(url).path.rstrip("/").rsplit("/", 1)[-1] or url or "Unnamed resource"
    for key, target in (("description", "description"), ("format", "format"), ("mimetype", "media_type")):
        if key in rdata:
            data[target] = rdata[key] or ""
        elif existing is not None and not merge and target == "description":
            data[target] = ""
    if "url" in rdata:
        data["url"] = rdata["url"] or ""
    extras = {key: _text(value) for key, value in rdata.items()
              if key not in RESOURCE_IGNORED and key not in ("name", "description", "format", "mimetype")}
    if merge and existing is not None:
        extras = {**(existing.extras or {}), **extras}
    if extras or existing is not None:
        data["extras"] = extras
    return data


def _sync_resources(call: ActionCall, ds: Dataset, resources: Any, delete_missing: bool) -> None:
    """Make the dataset's resources those listed: update known ids, add new ones, remove the rest."""
    if not isinstance(resources, list) or not all(isinstance(r, dict) for r in resources):
        raise invalid("resources", "Give the resources as a list of resource dicts.")
    errors: list[dict[str, Any]] = []
    current = {res.uuid: res for res in ds.resources}
    kept: set[str] = set()
    for position, rdata in enumerate(resources):
        problem: dict[str, Any] = {}
        try:
            with _ckan_fields(RESOURCE_TO_CKAN):
                rid = rdata.get("id")
                if isinstance(rid, str) and rid in current:
                    data = resource_data(rdata, current[rid], merge=False)
                    service.update_resource(call.session, call.actor, current[rid], {**data, "position": position})
                    kept.add(rid)
                else:
                    chosen = _given_uuid(call, rid, Resource, "resource") if rid else None
                    data = resource_data(rdata, None, merge=False)
                    if not data.get("url"):
                        raise invalid("url", "Missing value")
                    res = service.add_resource(call.session, call.actor, ds, {**data, "position": position},
                                               resource_uuid=chosen)
                    kept.add(res.uuid)
        except ValidationFailed as exc:
            problem = {key: value if isinstance(value, list) else [value] for key, value in exc.fields.items()}
        errors.append(problem)
    if any(errors):
        raise ValidationFailed("Some resources have problems: " + "; ".join(
            f"resource {i + 1}: " + "; ".join(m for ms in e.values() for m in ms) for i, e in enumerate(errors) if e),
            {"resources": errors})
    if delete_missing:
        for rid, res in current.items():
            if rid not in kept:
                key = service.delete_resource(call.session, call.actor, res)
                if key:
                    call.discard_after_commit.append(key)


def _find_resource(call: ActionCall, ref: str) -> tuple[Dataset, Resource]:
    dataset_uuid = call.session.scalar(select(Dataset.uuid).join(Resource, Resource.dataset_id == Dataset.id)
                                       .where(Resource.uuid == ref))
    try:
        if dataset_uuid is None:
            raise NotFound("Resource was not found.")
        ds = service.get_dataset(call.session, call.actor, dataset_uuid)
        return ds, service.get_resource(call.session, call.actor, ds, ref)
    except NotFound:
        raise NotFound("Resource was not found.") from None


def _resource_result(call: ActionCall, ds: Dataset, res: Resource) -> dict[str, Any]:
    call.session.flush()
    lookups = lookups_for(call.session, [ds], call.base_url)
    ordered = sorted(ds.resources, key=lambda r: (r.position, r.id or 0))
    return resource_dict(ds, res, ordered.index(res), lookups)


@action("resource_create", read=False)
def resource_create(call: ActionCall) -> dict[str, Any]:
    """Add a resource to a dataset: a file (multipart field ``upload``) or a link (``url``).

    :param package_id: the id or name of the dataset (required).
    :param url: the address of a linked file (required unless a file is uploaded).
    :param upload: the file, sent as multipart/form-data (streamed to storage, never held in memory).
    :param name:, :param description:, :param format:, :param mimetype:; any other field is kept
        as a resource extra.
    """
    ds = service.get_dataset(call.session, call.actor, require(call.params, "package_id"))
    service.check_can_publish(call.actor, ds)
    upload = call.take_upload()
    with _ckan_fields(RESOURCE_TO_CKAN):
        if upload is not None:
            stored, filename = upload
            data = resource_data({k: v for k, v in call.params.items() if k != "url"}, None, merge=False)
            if not call.params.get("name"):
                data["title"] = filename or data.get("title") or "Data file"
            res = service.add_resource(call.session, call.actor, ds, data, stored=stored, filename=filename)
        else:
            data = resource_data(call.params, None, merge=False)
            if not data.get("url"):
                raise invalid("url", "Missing value")
            res = service.add_resource(call.session, call.actor, ds, data)
    return _resource_result(call, ds, res)


def _resource_change(call: ActionCall, merge: bool) -> dict[str, Any]:
    ds, res = _find_resource(call, require(call.params, "id"))
    service.check_can_publish(call.actor, ds)
    upload = call.take_upload()
    params = {k: v for k, v in call.params.items() if not (upload is not None and k == "url")}
    data = resource_data(params, res, merge=merge)
    with _ckan_fields(RESOURCE_TO_CKAN):
        if upload is not None:
            stored, filename = upload
            _, old_key = service.update_resource(call.session, call.actor, res, data, stored=stored,
                                                 filename=filename)
        else:
            _, old_key = service.update_resource(call.session, call.actor, res, data)
    if old_key:
        call.discard_after_commit.append(old_key)
    return _resource_result(call, ds, res)


@action("resource_update", read=False)
def resource_update(call: ActionCall) -> dict[str, Any]:
    """Update a resource: fields not given are cleared (its name and file or link are kept).

    :param id: the id of the resource. Other parameters as for resource_create; a new ``upload``
        replaces the file.
    """
    return _resource_change(call, merge=False)


@action("resource_patch", read=False)
def resource_patch(call: ActionCall) -> dict[str, Any]:
    """Change only the given fields of a resource (a new ``upload`` replaces its file).

    :param id: the id of the resource.
    """
    return _resource_change(call, merge=True)


@action("resource_delete", read=False)
def resource_delete(call: ActionCall) -> None:
    """Remove a resource (and its stored file, once the change is committed).

    :param id: the id of the resource.
    """
    _, res = _find_resource(call, require(call.params, "id"))
    key = service.delete_resource(call.session, call.actor, res)
    if key:
        call.discard_after_commit.append(key)


# --- organizations ---------------------------------------------------------------------------------

@action("organization_create", read=False)
def organization_create(call: ActionCall) -> dict[str, Any]:
    """Create an organization (publisher); sysadmins only.

    :param name: the URL name: lowercase letters, numbers and hyphens (required).
    :param title: the display name (default: the name).
    :param description: a description.
    :param extras: list of {"key", "value"}: ``kind`` (e.g. local-authority), ``gss_code``, ``url``.
    """
    params = call.params
    name = str(params.get("name") or "").strip()
    if not name:
        raise invalid("name", "Missing value")
    extras = params.get("extras") or []
    pairs = {e.get("key"): e.get("value") for e in extras if isinstance(e, dict)} if isinstance(extras, list) else {}
    if call.session.scalar(select(Organisation.id).where(Organisation.slug == name)) is not None:
        accounts.require_sysadmin(call.actor)
        raise invalid("name", "Group name already exists in database")
    with _ckan_fields({"slug": "name", "name": "title"}):
        org = accounts.create_organisation(
            call.session, call.actor, slug=name, name=str(params.get("title") or name),
            kind=str(pairs.get("kind") or params.get("kind") or "other"),
            gss_code=pairs.get("gss_code") or None, url=pairs.get("url") or None,
            description=str(params.get("description") or ""))
    return organization_dict(org, full=True, package_count=0, include_extras=True)
