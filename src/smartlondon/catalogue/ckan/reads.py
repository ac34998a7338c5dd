"""CKAN's read actions over the catalogue: search, show and list (GET or POST)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from ... import __version__
from ...core import accounts
from ...core.errors import NotFound
from ...core.models import Organisation
from ...core.reference import THEMES
from .. import service
from ..listing import load_datasets
from ..models import Dataset, DatasetKeyword, DatasetTheme, Licence, Resource
from . import package_search as search
from .actions import ActionCall, action, action_names, as_bool, as_int, get_action, invalid, require
from .dicts import (
    CKAN_VERSION, group_dict, licence_dict, lookups_for, organization_dict, package_dict, resource_dict,
    tag_dict, theme_for_group,
)

GROUP_LIST_MAX, GROUP_LIST_ALL_FIELDS_MAX = 1000, 25  # CKAN's group_and_organization_list(_all_fields)_max
GROUP_SHOW_DATASETS_MAX = 1000
_PUBLIC = and_(Dataset.state == "active", Dataset.private.is_(False))


def packages_for(call: ActionCall, hits: search.PackageHits) -> list[dict[str, Any]]:
    """The package dicts of a page of search hits, in order (a fixed number of statements)."""
    views = load_datasets(call.session, hits.ids)
    lookups = lookups_for(call.session, views, call.base_url)
    return [package_dict(view, lookups) for view in views]


def _facet_titles(session: Session, facets: dict[str, list[tuple[str, int]]]) -> dict[str, dict[str, str]]:
    titles: dict[str, dict[str, str]] = {"groups": {k: v[0] for k, v in THEMES.items()}}
    if facets.get("organization"):
        slugs = [value for value, _ in facets["organization"]]
        titles["organization"] = dict(session.execute(  # type: ignore[arg-type]
            select(Organisation.slug, Organisation.name).where(Organisation.slug.in_(slugs))).all())
    if facets.get("license_id"):
        titles["license_id"] = dict(session.execute(select(Licence.id, Licence.title)).all())  # type: ignore[arg-type]
    return titles


@action("package_search", read=True)
def package_search(call: ActionCall) -> dict[str, Any]:
    """Searches for datasets (packages) satisfying a given search criteria.

    Accepts a subset of Solr's query parameters, as CKAN does:

    :param q: the query; words are full text (ranked), ``field:value`` clauses filter.
        Optional, default ``"*:*"``.
    :param fq: filter queries, e.g. ``organization:camden OR organization:hackney``,
        ``-organization:camden``, ``groups:transport``, ``tags:"air quality"``, ``res_format:CSV``,
        ``license_id:OGL-UK-3.0``, ``metadata_modified:[2024-05-01T10:00:00Z TO *]``.
    :param fq_list: more filter queries (list of strings).
    :param sort: e.g. ``"score desc, metadata_modified desc"`` (default), ``"id asc"``,
        ``"name asc"``, ``"metadata_modified desc"``, ``"title_string asc"``. Ties are broken by
        an internal id, so paging with ``start`` is stable.
    :param rows: results per page (default 10, at most 1000).
    :param start: offset of the first result.
    :param facet.field: fields to count, as a JSON list: organization, groups, tags, res_format,
        license_id.
    :param facet.limit: values per facet (default 50, -1 for all).
    :param facet.mincount: least count of a value to be listed (default 1).
    :param include_private: also private datasets the user may see (default False).
    :param include_drafts: also draft datasets the user may see (default False).
    :param fl: only these fields of each result (e.g. ``"id,name,metadata_modified"``;
        ``extras_<key>`` for an extra).

    :returns: ``count``, ``results`` (full package dicts), ``facets``, ``search_facets`` and ``sort``.
    """
    query = search.query_from_params(call.params)
    hits = search.run(call.session, call.actor, query)
    titles = _facet_titles(call.session, hits.facets)
    search_facets = {
        name: {"title": name, "items": [{"name": value, "display_name": titles.get(name, {}).get(value) or value,
                                         "count": count} for value, count in items]}
        for name, items in hits.facets.items()
    }
    results = packages_for(call, hits)
    fields = _field_list(call.params.get("fl"))
    if fields:
        results = [_only(pkg, fields) for pkg in results]
    return {
        "count": hits.count, "sort": hits.sort,
        "facets": {name: {value: count for value, count in items} for name, items in hits.facets.items()},
        "results": results, "search_facets": search_facets,
    }


def _field_list(value: Any) -> list[str]:
    """The ``fl`` parameter as a list of field names ("id,name", "id name" or a list)."""
    if isinstance(value, list):
        return [str(v) for v in value if v]
    return [part for part in re.split(r"[\s,]+", str(value or "")) if part]


def _only(pkg: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """The named fields of a package (``extras_<key>`` for an extra), as CKAN's ``fl`` returns them."""
    extras = {e["key"]: e["value"] for e in pkg["extras"]}
    out = {}
    for name in fields:
        if name in pkg:
            out[name] = pkg[name]
        elif name.startswith("extras_") and name[7:] in extras:
            out[name] = extras[name[7:]]
    return out


@action("package_show", read=True)
def package_show(call: ActionCall) -> dict[str, Any]:
    """Return the metadata of a dataset (package) and its resources.

    :param id: the id or name of the dataset.
    :param include_tracking: accepted and ignored (no view counts are kept).
    :rtype: dictionary
    """
    ref = require(call.params, "id", "name_or_id")
    ds = service.get_dataset(call.session, call.actor, ref)
    return package_dict(ds, lookups_for(call.session, [ds], call.base_url))


@action("package_list", read=True)
def package_list(call: ActionCall) -> list[str]:
    """Return a list of the names of the site's public datasets (packages), sorted by name.

    :param limit: if given, at most this many names (one page) are returned.
    :param offset: when ``limit`` is given, the offset to start from.
    :rtype: list of strings
    """
    limit = as_int(call.params, "limit", None, natural=True)
    offset = as_int(call.params, "offset", None, natural=True)
    stmt = select(Dataset.slug).where(_PUBLIC).order_by(Dataset.slug)
    if limit:
        stmt = stmt.limit(limit)
    if offset:
        stmt = stmt.offset(offset)
    return list(call.session.scalars(stmt))


@action("current_package_list_with_resources", read=True)
def current_package_list_with_resources(call: ActionCall) -> list[dict[str, Any]]:
    """Return a list of the site's datasets (packages) and their resources, most recently modified first.

    :param limit: at most this many datasets (default 10, at most 1000).
    :param offset: the offset to start from.
    :param page: deprecated; with ``limit``, the page to return (use ``offset``).
    :rtype: list of dictionaries
    """
    limit = as_int(call.params, "limit", None, natural=True)
    offset = as_int(call.params, "offset", None, natural=True)
    page = as_int(call.params, "page", None, natural=True)
    if offset is None and page:
        offset = (page - 1) * limit if limit else 0
    query = search.PackageQuery(rows=min(limit if limit is not None else search.ROWS_DEFAULT, search.ROWS_MAX),
                                start=offset or 0, sort="metadata_modified desc",
                                include_private=call.actor.is_sysadmin)
    return packages_for(call, search.run(call.session, call.actor, query))


@action("resource_show", read=True)
def resource_show(call: ActionCall) -> dict[str, Any]:
    """Return the metadata of a resource.

    :param id: the id of the resource.
    :rtype: dictionary
    """
    ref = require(call.params, "id")
    dataset_uuid = call.session.scalar(select(Dataset.uuid).join(Resource, Resource.dataset_id == Dataset.id)
                                       .where(Resource.uuid == ref))
    if dataset_uuid is None:
        raise NotFound("Resource was not found.")
    try:
        ds = service.get_dataset(call.session, call.actor, dataset_uuid)
    except NotFound:
        raise NotFound("Resource was not found.") from None
    lookups = lookups_for(call.session, [ds], call.base_url)
    for position, res in enumerate(sorted(ds.resources, key=lambda r: (r.position, r.id))):
        if res.uuid == ref:
            return resource_dict(ds, res, position, lookups)
    raise NotFound("Resource was not found.")


# --- organizations and groups -------------------------------------------------------------------

def _sort(call: ActionCall) -> tuple[str, bool]:
    """(field, descending) of a group/organization list sort ("title asc" by default)."""
    raw = str(call.params.get("sort") or call.params.get("order_by") or "title").strip()
    if raw in ("packages", "package_count"):
        return "package_count", True
    match = re.fullmatch(r"(name|title|packages|package_count)(?:\s+(asc|desc))?", raw, re.IGNORECASE)
    if not match:
        raise invalid("sort", f"Cannot sort by field `{raw.split()[0] if raw.split() else raw}`")
    name = "package_count" if match.group(1).lower() == "packages" else match.group(1).lower()
    return name, (match.group(2) or "asc").lower() == "desc"


def _paging(call: ActionCall, all_fields: bool) -> tuple[int, int]:
    limit = as_int(call.params, "limit", None, natural=True)
    offset = as_int(call.params, "offset", None, natural=True) or 0
    cap = GROUP_LIST_ALL_FIELDS_MAX if all_fields else GROUP_LIST_MAX
    return (cap if limit is None or limit > cap else limit), offset


def _org_counts(session: Session) -> dict[int, int]:
    return dict(session.execute(select(Dataset.organisation_id, func.count()).where(_PUBLIC)  # type: ignore[arg-type]
                                .group_by(Dataset.organisation_id)).all())


def _theme_counts(session: Session) -> dict[str, int]:
    return dict(session.execute(select(DatasetTheme.theme, func.count())  # type: ignore[arg-type]
                                .join(Dataset, Dataset.id == DatasetTheme.dataset_id).where(_PUBLIC)
                                .group_by(DatasetTheme.theme)).all())


def _names_filter(call: ActionCall, key: str) -> list[str] | None:
    value = call.params.get(key)
    if value in (None, "", []):
        return None
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _arrange(items: list[Any], key: Any, call: ActionCall, all_fields: bool) -> list[Any]:
    """Filter by ``q``, sort and page a list of organizations or groups."""
    field, descending = _sort(call)
    items = sorted(items, key=lambda item: key(item, "name"))  # a stable base order for ties
    items.sort(key=lambda item: key(item, field), reverse=descending)
    limit, offset = _paging(call, all_fields)
    return items[offset:offset + limit]


@action("organization_list", read=True)
def organization_list(call: ActionCall) -> list[Any]:
    """Return a list of the names of the site's organizations (publishers).

    :param sort: ``name``, ``title`` or ``package_count``, with ``asc`` or ``desc``
        (default ``"title asc"``; ``package_count`` alone sorts by most datasets).
    :param limit: at most this many (at most 1000, or 25 with ``all_fields``, as in CKAN).
    :param offset: the offset to start from.
    :param organizations: only these names.
    :param q: only organizations whose name, title or description contain this.
    :param all_fields: return organization dicts instead of names (default False).
    :param include_dataset_count: with all_fields, include package_count (default True).
    :param include_extras: with all_fields, include extras (kind, gss_code, url).
    :rtype: list of strings or dictionaries
    """
    all_fields = as_bool(call.params, "all_fields")
    orgs = accounts.list_organisations(call.session)
    wanted = _names_filter(call, "organizations")
    if wanted is not None:
        orgs = [o for o in orgs if o.slug in wanted]
    q = str(call.params.get("q") or "").strip().lower()
    if q:
        orgs = [o for o in orgs if q in o.slug.lower() or q in o.name.lower() or q in (o.description or "").lower()]
    counts = _org_counts(call.session)

    def key(org: Organisation, field: str) -> Any:
        return {"name": org.slug, "title": org.name.lower(), "package_count": counts.get(org.id, 0)}[field]

    chosen = _arrange(orgs, key, call, all_fields)
    if not all_fields:
        return [o.slug for o in chosen]
    with_count = as_bool(call.params, "include_dataset_count", True)
    return [organization_dict(o, full=True, package_count=counts.get(o.id, 0) if with_count else None,
                              include_extras=as_bool(call.params, "include_extras")) for o in chosen]


def _datasets_of(call: ActionCall, fq: str) -> list[dict[str, Any]]:
    query = search.PackageQuery(fq=[fq], rows=GROUP_SHOW_DATASETS_MAX, sort="name asc", include_private=True)
    return packages_for(call, search.run(call.session, call.actor, query))


@action("organization_show", read=True)
def organization_show(call: ActionCall) -> dict[str, Any]:
    """Return the details of an organization (publisher).

    :param id: the id or name of the organization.
    :param include_datasets: include a list of its datasets, up to 1000 (default False).
    :param include_dataset_count: include package_count (default True).
    :param include_extras: include extras: kind, gss_code, url (default True).
    :rtype: dictionary
    """
    ref = require(call.params, "id")
    try:
        org = accounts.get_organisation(call.session, ref)
    except NotFound:
        raise NotFound("Organization was not found.") from None
    count = _org_counts(call.session).get(org.id, 0) if as_bool(call.params, "include_dataset_count", True) else None
    out = organization_dict(org, full=True, package_count=count,
                            include_extras=as_bool(call.params, "include_extras", True))
    out.update(users=[], tags=[], groups=[])
    if as_bool(call.params, "include_datasets"):
        out["packages"] = _datasets_of(call, f'owner_org:"{org.uuid}"')
    return out


@action("group_list", read=True)
def group_list(call: ActionCall) -> list[Any]:
    """Return a list of the names of the site's groups (the catalogue's themes).

    Parameters as for ``organization_list`` (``groups`` instead of ``organizations``).
    :rtype: list of strings or dictionaries
    """
    all_fields = as_bool(call.params, "all_fields")
    themes = list(THEMES)
    wanted = _names_filter(call, "groups")
    if wanted is not None:
        themes = [t for t in themes if t in wanted]
    q = str(call.params.get("q") or "").strip().lower()
    if q:
        themes = [t for t in themes if q in t or q in THEMES[t][0].lower()]
    counts = _theme_counts(call.session)

    def key(theme: str, field: str) -> Any:
        return {"name": theme, "title": THEMES[theme][0].lower(), "package_count": counts.get(theme, 0)}[field]

    chosen = _arrange(themes, key, call, all_fields)
    if not all_fields:
        return chosen
    with_count = as_bool(call.params, "include_dataset_count", True)
    return [group_dict(t, full=True, package_count=counts.get(t, 0) if with_count else None) for t in chosen]


@action("group_show", read=True)
def group_show(call: ActionCall) -> dict[str, Any]:
    """Return the details of a group (a theme of the catalogue).

    :param id: the id or name of the group.
    :param include_datasets: include a list of its datasets, up to 1000 (default False).
    :rtype: dictionary
    """
    theme = theme_for_group(require(call.params, "id"))
    if theme is None:
        raise NotFound("Group was not found.")
    out = group_dict(theme, full=True, package_count=_theme_counts(call.session).get(theme, 0))
    out.update(users=[], tags=[], groups=[], extras=[])
    if as_bool(call.params, "include_datasets"):
        out["packages"] = _datasets_of(call, f"groups:{theme}")
    return out


@action("tag_list", read=True)
def tag_list(call: ActionCall) -> list[Any]:
    """Return a list of the tags (keywords) of the site's public datasets.

    :param query: only tags containing this text (``q`` also works).
    :param vocabulary_id: accepted and ignored (the catalogue has only free tags).
    :param all_fields: return tag dicts instead of names (default False).
    :rtype: list of strings or dictionaries
    """
    stmt = (select(DatasetKeyword.keyword).join(Dataset, Dataset.id == DatasetKeyword.dataset_id)
            .where(_PUBLIC).distinct().order_by(DatasetKeyword.keyword))
    query = str(call.params.get("query") or call.params.get("q") or "").strip().lower()
    if query:
        stmt = stmt.where(DatasetKeyword.keyword.contains(query, autoescape=True))
    names = list(call.session.scalars(stmt))
    return [tag_dict(n) for n in names] if as_bool(call.params, "all_fields") else names


@action("license_list", read=True)
def license_list(call: ActionCall) -> list[dict[str, Any]]:
    """Return the list of licenses available for datasets on the site.

    :rtype: list of dictionaries
    """
    return [licence_dict(lic) for lic in service.licences(call.session)]


@action("status_show", read=True)
def status_show(call: ActionCall) -> dict[str, Any]:
    """Return a dictionary with information about the site's configuration.

    :rtype: dictionary
    """
    extensions = ["smartlondon"]
    if get_action("datastore_search") is not None:
        extensions.append("datastore")
    return {
        "site_title": call.settings.site_name, "site_description": "", "site_url": call.base_url,
        "ckan_version": CKAN_VERSION, "error_emails_to": None, "locale_default": "en_GB",
        "extensions": extensions, "smartlondon_version": __version__, "actions": action_names(),
    }


@action("help_show", read=True)
def help_show(call: ActionCall) -> str:
    """Return the help string for a particular API action.

    :param name: action function name (e.g. ``package_search``).
    :rtype: string
    """
    name = require(call.params, "name")
    found = get_action(name)
    if found is None:
        raise NotFound("Action function not found")
    return found.help
