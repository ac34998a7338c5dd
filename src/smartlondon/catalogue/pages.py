"""The Datastore's pages: home, search, datasets, resources with previews, organisations, and the
publisher forms.

Server-rendered with GOV.UK Frontend components; every journey works without JavaScript.
Each page has a JSON twin (``.json`` suffix or ``Accept: application/json``) through ``render``.
Form handlers are ``async`` only to read the request body; the database work runs in the
threadpool and commits before the redirect, so the next page sees the change.
"""

from __future__ import annotations

import html as html_lib
import json
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

import nh3
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy import and_, func, or_, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from ..core import accounts, audit
from ..core.accounts import Actor
from ..core.errors import BadRequest, Conflict, Forbidden, PlatformError, ValidationFailed
from ..core.models import Organisation
from ..core.pages import flash, form_text, needs_sign_in, pop_flash
from ..core.reference import DEFAULT_LICENCE, FREQUENCIES, GEOGRAPHIES, THEMES
from ..core.uploads import receive_multipart
from ..core.web import Context, CtxDep, FormDep, check_csrf, render, wants_json
from . import service
from .api import _store_upload
from .download import file_response
from .formats import display_format
from .models import Dataset, Resource
from .preview import can_preview, preview_table
from .search import SearchRequest, SearchResult, request_from_params, search
from .views import facet_labels, facet_view, query_string, search_payload

router = APIRouter(tags=["pages"], include_in_schema=False)

SORT_LABELS = {"relevance": "Most relevant", "updated": "Recently updated", "title": "Title (A to Z)",
               "created": "Recently added"}
FACET_ITEMS_SHOWN = 20
KIND_LABELS = {"regional": "Regional government", "local-authority": "Local authority", "transport": "Transport",
               "health": "Health", "police": "Police", "fire": "Fire and rescue", "other": "Other"}
FIELD_LABELS = {
    "slug": "Short name", "title": "Title", "description": "Description", "publisher": "Publisher",
    "licence": "Licence", "contact_name": "Contact name", "contact_email": "Contact email",
    "keywords": "Keywords", "themes": "Themes", "frequency": "Update frequency",
    "temporal_start": "Time period start", "temporal_end": "Time period end", "boroughs": "Boroughs",
    "bbox": "Bounding box", "geography": "Smallest geography", "private": "Private", "state": "State",
    "featured": "Featured", "url": "Link", "filename": "File name", "format": "Format",
    "media_type": "Media type", "byte_size": "Size", "sha256": "SHA-256 checksum",
    "table_schema": "Table Schema", "position": "Position", "kind": "Kind", "places": "Places",
}
DATASET_FORM_FIELDS = ("publisher", "title", "slug", "description", "licence", "contact_name", "contact_email",
                       "keywords", "themes", "frequency", "temporal_start", "temporal_end", "boroughs", "bbox",
                       "geography", "private", "places")
RESOURCE_FORM_FIELDS = ("title", "description", "format", "upload", "url")
_md = MarkdownIt("commonmark", {"html": False})


# --- small helpers ---------------------------------------------------------------------------------

def plain_summary(text: str | None, limit: int = 200) -> str:
    """The first ``limit`` characters of a Markdown description as plain text, cut at a word."""
    rendered = _md.render(text or "")
    plain = " ".join(html_lib.unescape(nh3.clean(rendered, tags=set())).split())
    if len(plain) <= limit:
        return plain
    cut = plain.rfind(" ", 0, limit)
    return plain[: cut if cut > limit * 0.6 else limit].rstrip(" ,.;:-") + "…"


def download_path(ds: Dataset, res: Resource) -> str:
    """This site's address for a resource's file (or the link itself)."""
    return service.resource_download_url(ds, res)


def is_previewable(res: Resource) -> bool:
    """True for uploaded CSV (also gzipped) and XLSX files."""
    return res.kind == "upload" and bool(res.storage_key) and can_preview(res.format, res.filename)


def formats_of(ds: Dataset) -> list[str]:
    """The distinct formats of a dataset's resources, as people write them."""
    return sorted({display_format(r.format) for r in ds.resources if r.format})


def result_items(datasets: Iterable[Dataset]) -> list[dict[str, Any]]:
    """What the results list shows of each dataset (all loaded with the search, no more queries)."""
    return [{"ds": ds, "summary": plain_summary(ds.description), "formats": formats_of(ds)} for ds in datasets]


def pagination(req: SearchRequest, result: SearchResult, path: str, **fixed: Any) -> dict[str, Any] | None:
    """Parameters for govukPagination: previous, next and numbered pages with ellipses."""
    pages, page = result.pages, req.page
    if pages <= 1:
        return None

    def href(n: int) -> str:
        qs = query_string(req, page=n if n > 1 else None, **fixed)
        return f"{path}?{qs}" if qs else path

    wanted = sorted({1, pages, page - 1, page, page + 1} & set(range(1, pages + 1)))
    items: list[dict[str, Any]] = []
    previous = 0
    for n in wanted:
        if previous and n - previous > 1:
            items.append({"ellipsis": True})
        items.append({"number": n, "href": href(n), "current": n == page})
        previous = n
    params: dict[str, Any] = {"items": items}
    if 1 < page <= pages + 1:
        params["previous"] = {"href": href(min(page - 1, pages))}
    if page < pages:
        params["next"] = {"href": href(page + 1)}
    return params


def _with_query(path: str, qs: str) -> str:
    return f"{path}?{qs}" if qs else path


def _storage(request: Request) -> Any:
    return request.app.state.storage


def _forbid_unless_editor(ctx: Context, ds: Dataset) -> None:
    if not ctx.actor.can_edit(ds.organisation_id):
        raise Forbidden(f"You are not an editor of {ds.organisation.name}, so you cannot change its datasets. "
                        "Ask one of its administrators to make you an editor.")


def _show(value: Any) -> str:
    """A field value from the audit log, for people."""
    if value is None or value == "" or value == []:
        return "(none)"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)[:200]
    text = str(value)
    return text if len(text) <= 200 else text[:199] + "…"


def _error_data(exc_or_errors: PlatformError | dict[str, str], status: int) -> dict[str, Any]:
    if isinstance(exc_or_errors, PlatformError):
        return exc_or_errors.as_dict()
    return {"error": {"status": status, "code": "validation_failed",
                      "message": "; ".join(exc_or_errors.values()), "fields": exc_or_errors}}


def _ordered_errors(exc: PlatformError, order: Iterable[str]) -> dict[str, str]:
    """A service error's field messages in the order the fields appear on the form."""
    fields = dict(exc.fields) or {"title": exc.message}
    if isinstance(exc, Conflict) and len(fields) == 1:
        fields = {name: exc.message for name in fields}
    known = [name for name in order if name in fields]
    return {**{name: fields[name] for name in known},
            **{name: msg for name, msg in fields.items() if name not in known}}


# --- home ------------------------------------------------------------------------------------------

@router.get("/")
def home(request: Request, ctx: Context = CtxDep) -> Response:
    """The home page: what this is, a search box, featured datasets, themes and publishers."""
    featured = service.featured_datasets(ctx.session)
    result = search(ctx.session, ctx.actor, SearchRequest(page_size=1, facet_limit=500))
    labels = facet_labels(ctx.session)
    theme_counts = dict(result.facets.get("theme", []))
    themes = [{"id": key, "title": title, "count": theme_counts.get(key, 0), "url": f"/dataset?theme={key}"}
              for key, (title, _) in THEMES.items()]
    publishers = [{"slug": slug, "name": labels["publisher"].get(slug, slug), "count": n,
                   "url": f"/organisation/{slug}"} for slug, n in result.facets.get("publisher", [])[:12]]
    data = {"site_name": ctx.settings.site_name, "dataset_count": result.total,
            "featured": [service.dataset_dict(d, ctx.base_url) for d in featured],
            "themes": themes, "publishers": publishers}
    page = {"count": result.total, "featured": result_items(featured), "themes": themes,
            "publishers": publishers}
    return render(ctx, "catalogue/home.html", page, data)


# --- search ----------------------------------------------------------------------------------------

@router.get("/dataset")
def dataset_search(request: Request, ctx: Context = CtxDep) -> Response:
    """Search datasets, with facets, sorting and pages."""
    req = request_from_params(request.query_params, ctx.settings.page_size)
    result = search(ctx.session, ctx.actor, req)
    if wants_json(request):
        return render(ctx, "catalogue/search.html", {},
                      search_payload(ctx.session, result, ctx.base_url, "/dataset"))
    facets = facet_view(ctx.session, result)
    chosen: list[dict[str, Any]] = []
    hidden: list[tuple[str, str]] = []
    for facet in facets:
        items = facet["items"]
        shown = items[:FACET_ITEMS_SHOWN] + [i for i in items[FACET_ITEMS_SHOWN:] if i["selected"]]
        facet["items"] = shown
        for item in shown:
            if item["selected"]:
                chosen.append({"facet": facet["title"], "label": item["label"], "href": "/dataset" + item["toggle"]})
        shown_values = {i["value"] for i in shown}
        for value in req.filters.get(facet["name"], []):
            if value not in shown_values:
                hidden.append((facet["name"], value))
                others = [v for v in req.filters[facet["name"]] if v != value]
                chosen.append({"facet": facet["title"], "label": value,
                               "href": "/dataset?" + query_string(req, page=None, **{facet["name"]: others})})
    json_qs = query_string(req)
    page = {
        "req": req, "result": result, "items": result_items(result.datasets), "facets": facets,
        "chosen": chosen, "hidden_filters": hidden, "sort": req.effective_sort,
        "sorts": [{"value": k, "text": v, "selected": k == req.effective_sort} for k, v in SORT_LABELS.items()],
        "pagination": pagination(req, result, "/dataset"),
        "json_url": _with_query("/dataset.json", json_qs),
        "clear_url": _with_query("/dataset", query_string(req, page=None, **{f: None for f in req.filters})),
    }
    return render(ctx, "catalogue/search.html", page)


# --- publisher forms: new dataset (before /dataset/{slug}) -----------------------------------------

def _publisher_choices(ctx: Context, current: Organisation | None = None) -> list[Organisation]:
    """The organisations the actor may publish for (all of them for sysadmins)."""
    query = select(Organisation).order_by(Organisation.name)
    if not ctx.actor.is_sysadmin:
        ids = ctx.actor.editable_organisations()
        if current is not None:
            ids = [*ids, current.id]
        if not ids:
            raise Forbidden("You are not an editor of any organisation, so you cannot publish datasets. Ask an "
                            "organisation’s administrator to make you an editor.")
        query = query.where(Organisation.id.in_(ids))
    return list(ctx.session.scalars(query))


def _borough_choices(ctx: Context) -> list[tuple[str, str]]:
    """(GSS code, name) of the 33 London boroughs, by name."""
    rows = ctx.session.execute(
        select(Organisation.gss_code, Organisation.name)
        .where(Organisation.kind == "local-authority", Organisation.gss_code.is_not(None))
        .order_by(Organisation.name))
    return [(code, name) for code, name in rows]


def _values_from_form(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {name: form_text(form, name, 100_000 if name == "description" else 2000)
                              for name in DATASET_FORM_FIELDS if name not in ("themes", "boroughs", "private")}
    values["themes"] = [v for v in form.getlist("themes") if isinstance(v, str) and v][:50]
    values["boroughs"] = [v for v in form.getlist("boroughs") if isinstance(v, str) and v][:50]
    values["private"] = form.get("private") in ("true", "on", "1", "yes")
    for name, default in (("licence", DEFAULT_LICENCE), ("frequency", "irregular"), ("geography", "london")):
        values[name] = values[name] or default
    return values


def _values_from_dataset(ds: Dataset) -> dict[str, Any]:
    record = service.dataset_record(ds)
    return {**{name: record.get(name) or "" for name in DATASET_FORM_FIELDS},
            "keywords": ", ".join(record["keywords"]), "themes": record["themes"], "boroughs": record["boroughs"],
            "bbox": ", ".join(f"{v:g}" for v in record["bbox"]) if record["bbox"] else "",
            "private": bool(record["private"]), "places": "\n".join(record["places"])}


def _form_page(ctx: Context, *, mode: str, values: dict[str, Any], errors: dict[str, str],
               ds: Dataset | None = None, status: int = 200, error: PlatformError | None = None) -> Response:
    publishers = _publisher_choices(ctx, ds.organisation if ds is not None else None)
    if mode == "new" and not values.get("publisher") and len(publishers) == 1:
        values["publisher"] = publishers[0].slug
    boroughs = _borough_choices(ctx)
    licences = service.licences(ctx.session)
    page = {"mode": mode, "ds": ds, "values": values, "errors": errors, "publishers": publishers,
            "licences": licences, "boroughs": boroughs, "themes": [(k, v[0]) for k, v in THEMES.items()],
            "frequencies": [(k, v[0]) for k, v in FREQUENCIES.items()], "geographies": list(GEOGRAPHIES.items()),
            "action": "/dataset/new" if mode == "new" else f"/dataset/{ds.slug if ds else ''}/edit"}
    data: dict[str, Any] = {
        "values": values, "errors": errors,
        "choices": {"publisher": [o.slug for o in publishers], "licence": [lic.id for lic in licences],
                    "themes": list(THEMES), "frequency": list(FREQUENCIES), "geography": list(GEOGRAPHIES),
                    "boroughs": [code for code, _ in boroughs]},
    }
    if errors:
        data.update(error.as_dict() if error is not None else _error_data(errors, status))
    return render(ctx, "catalogue/dataset_form.html", page, data, status=status)


def _service_data(values: dict[str, Any]) -> dict[str, Any]:
    return {name: values.get(name) for name in DATASET_FORM_FIELDS}


@router.get("/dataset/new")
def dataset_new(request: Request, ctx: Context = CtxDep) -> Response:
    """The form to publish a new dataset."""
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect
    values = {name: "" for name in DATASET_FORM_FIELDS}
    values.update(themes=[], boroughs=[], private=False, licence=DEFAULT_LICENCE, frequency="irregular",
                  geography="london", publisher=request.query_params.get("publisher", ""))
    return _form_page(ctx, mode="new", values=values, errors={})


@router.post("/dataset/new")
async def dataset_create(request: Request, ctx: Context = CtxDep, form: FormData = FormDep) -> Response:
    """Create a dataset from the form; on problems show the form again with what was typed."""
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect
    values = _values_from_form(form)

    def work() -> Response:
        _publisher_choices(ctx)
        try:
            ds = service.create_dataset(ctx.session, ctx.actor, _service_data(values))
            ctx.session.commit()
        except (ValidationFailed, Conflict) as exc:
            ctx.session.rollback()
            errors = _ordered_errors(exc, DATASET_FORM_FIELDS)
            if not values["slug"] and "title" in errors:
                errors.pop("slug", None)  # the slug is made from the title: one message is enough
            return _form_page(ctx, mode="new", values=values, errors=errors, status=exc.status, error=exc)
        flash(request, "Dataset published", f"‘{ds.title}’ is now in the catalogue. Add its data files below.")
        return _redirect_or_json(ctx, f"/dataset/{ds.slug}", ds, 201)

    return await run_in_threadpool(work)


def _redirect_or_json(ctx: Context, location: str, ds: Dataset, status: int = 200) -> Response:
    if wants_json(ctx.request):
        from fastapi.responses import JSONResponse

        return JSONResponse(service.dataset_dict(ds, ctx.base_url), status_code=status,
                            headers={"Location": ctx.base_url + location})
    return RedirectResponse(location, status_code=303)


# --- organisations ---------------------------------------------------------------------------------

def _visible(actor: Actor) -> Any:
    if actor.is_sysadmin:
        return Dataset.state != "deleted"
    public = and_(Dataset.state == "active", Dataset.private.is_(False))
    if actor.roles:
        return or_(public, and_(Dataset.state != "deleted", Dataset.organisation_id.in_(list(actor.roles))))
    return public


def _org_dict(ctx: Context, org: Organisation, count: int | None = None) -> dict[str, Any]:
    out = {"id": org.uuid, "slug": org.slug, "name": org.name, "kind": org.kind, "gss_code": org.gss_code,
           "url": org.url, "description": org.description, "page": f"{ctx.base_url}/organisation/{org.slug}"}
    if count is not None:
        out["datasets"] = count
    return out


@router.get("/organisation")
def organisation_list(request: Request, ctx: Context = CtxDep) -> Response:
    """Every publishing organisation with its number of datasets."""
    orgs = accounts.list_organisations(ctx.session)
    counts = dict(ctx.session.execute(  # one grouped query for every organisation
        select(Dataset.organisation_id, func.count()).where(_visible(ctx.actor))
        .group_by(Dataset.organisation_id)).all())
    rows = [{"org": o, "count": counts.get(o.id, 0), "kind": KIND_LABELS.get(o.kind, o.kind.replace("-", " ")
                                                                              .capitalize())} for o in orgs]
    data = {"count": len(orgs), "results": [_org_dict(ctx, o, counts.get(o.id, 0)) for o in orgs]}
    return render(ctx, "catalogue/organisations.html", {"rows": rows}, data)


@router.get("/organisation/{slug}")
def organisation_page(slug: str, request: Request, ctx: Context = CtxDep) -> Response:
    """An organisation and the datasets it publishes."""
    org = accounts.get_organisation(ctx.session, slug)
    req = request_from_params(request.query_params, ctx.settings.page_size)
    req.filters = {"publisher": [org.slug]}
    req.include_facets = False
    result = search(ctx.session, ctx.actor, req)
    path = f"/organisation/{org.slug}"
    if wants_json(request):
        payload = search_payload(ctx.session, result, ctx.base_url, path)
        payload.pop("facets", None)
        return render(ctx, "catalogue/organisation.html", {}, {"organisation": _org_dict(ctx, org, result.total),
                                                               **payload})
    page = {"org": org, "kind": KIND_LABELS.get(org.kind, org.kind), "result": result,
            "items": result_items(result.datasets), "flash": pop_flash(request),
            "pagination": pagination(req, result, path, publisher=None),
            "can_edit": ctx.actor.can_edit(org.id)}
    return render(ctx, "catalogue/organisation.html", page)


# --- a dataset -------------------------------------------------------------------------------------

def _metadata_rows(ctx: Context, ds: Dataset) -> list[dict[str, Any]]:
    """The dataset's metadata as govukSummaryList rows (values escaped here)."""
    def link(href: str, text: str) -> Markup:
        return Markup('<a class="govuk-link" href="{}">{}</a>').format(href, text)

    def joined(parts: list[Markup]) -> Markup:
        return Markup(", ").join(parts)

    rows: list[tuple[str, Markup | str]] = [
        ("Publisher", link(f"/organisation/{ds.organisation.slug}", ds.organisation.name)),
        ("Licence", link(ds.licence.url, ds.licence.title) if ds.licence.url else ds.licence.title),
    ]
    contact: list[Markup] = []
    if ds.contact_name:
        contact.append(Markup("{}").format(ds.contact_name))
    if ds.contact_email:
        contact.append(link(f"mailto:{ds.contact_email}", ds.contact_email))
    rows.append(("Contact", Markup("<br>").join(contact) if contact else "Not given"))
    rows.append(("Keywords", joined([link(f"/dataset?keyword={quote(k.keyword)}", k.keyword)
                                     for k in ds.keywords]) if ds.keywords else "None"))
    rows.append(("Themes", joined([link(f"/dataset?theme={t.theme}", THEMES.get(t.theme, (t.theme,))[0])
                                   for t in ds.themes]) if ds.themes else "None"))
    rows.append(("Update frequency", FREQUENCIES.get(ds.frequency, (ds.frequency,))[0]))
    rows.append(("Time period", _period(ds.temporal_start, ds.temporal_end)))
    codes = [a.gss_code for a in ds.areas]
    if codes:
        names = dict(ctx.session.execute(select(Organisation.gss_code, Organisation.name)
                                          .where(Organisation.gss_code.in_(codes))).all())
        rows.append(("Boroughs", joined([link(f"/dataset?borough={c}", names.get(c, c))
                                         for c in sorted(codes, key=lambda c: names.get(c, c))])))
    else:
        rows.append(("Boroughs", "Not given"))
    from ..places.links import places_of_dataset  # coverage as places in the register (docs/places-links.md)

    covered = places_of_dataset(ctx.session, ds)
    if covered:
        rows.append(("Places", joined([link(p["href"], p["name"]) for p in covered])))
    box = service.bbox_of(ds)
    rows.append(("Bounding box", "West {:g}, south {:g}, east {:g}, north {:g} (WGS84 degrees)".format(*box)
                 if box else "Not given"))
    rows.append(("Smallest geography", GEOGRAPHIES.get(ds.geography, ds.geography)))
    rows.append(("Created", _when(ds.created)))
    rows.append(("Last updated", _when(ds.modified)))
    return [{"key": {"text": key}, "value": {"html": value} if isinstance(value, Markup) else {"text": value}}
            for key, value in rows]


def _when(value: datetime) -> Markup:
    from ..web.filters import format_date

    return Markup('<time datetime="{}">{}</time>').format(value.isoformat(), format_date(value))


def _period(start: date | None, end: date | None) -> str:
    from ..web.filters import format_date

    if start and end:
        return f"{format_date(start)} to {format_date(end)}"
    if start:
        return f"From {format_date(start)}"
    if end:
        return f"Until {format_date(end)}"
    return "Not given"


@router.get("/dataset/{slug}")
def dataset_page(slug: str, request: Request, ctx: Context = CtxDep) -> Response:
    """A dataset: its description, metadata and resources."""
    ds = service.get_dataset(ctx.session, ctx.actor, slug)
    from .charter.scores import scorecard_of

    charter = scorecard_of(ctx.session, ds)  # the open data charter scorecard (catalogue/_charter.html)
    if wants_json(request):
        return render(ctx, "catalogue/dataset.html", {}, {**service.dataset_dict(ds, ctx.base_url), "charter": charter})
    resources = [{"res": r, "href": download_path(ds, r), "preview": is_previewable(r),
                  "format": display_format(r.format)} for r in ds.resources]
    page = {"ds": ds, "metadata": _metadata_rows(ctx, ds), "resources": resources,
            "can_edit": ctx.actor.can_edit(ds.organisation_id), "flash": pop_flash(request), "charter": charter}
    return render(ctx, "catalogue/dataset.html", page)


@router.get("/dataset/{slug}/history")
def dataset_history(slug: str, request: Request, ctx: Context = CtxDep) -> Response:
    """Every change to a dataset and its resources: when, who, what, before and after."""
    ds = service.get_dataset(ctx.session, ctx.actor, slug)
    events = audit.dataset_history(ctx.session, ds.id)
    data = {"dataset": ds.slug, "events": [
        {"id": e.id, "at": e.at.isoformat(), "actor": e.actor, "action": e.action, "summary": e.summary,
         "object_type": e.object_type, "object_id": e.object_id,
         "changes": [{"field": f, "before": b, "after": a} for f, b, a in audit.changed_fields(e)]
         if e.action.endswith(".update") else []}
        for e in events]}
    if wants_json(request):
        return render(ctx, "catalogue/history.html", {}, data)
    rows = []
    for e in events:
        changes = []
        if e.action.endswith(".update"):
            changes = [{"field": FIELD_LABELS.get(f, f.replace("_", " ").capitalize()), "before": _show(b),
                        "after": _show(a)} for f, b, a in audit.changed_fields(e) if f != "modified"]
        rows.append({"event": e, "changes": changes})
    return render(ctx, "catalogue/history.html", {"ds": ds, "rows": rows}, data)


# --- resources ---------------------------------------------------------------------------------------

@router.get("/dataset/{slug}/resource/new")
def resource_new(slug: str, request: Request, ctx: Context = CtxDep) -> Response:
    """The form to add a file or a link to a dataset."""
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect
    ds = service.get_dataset(ctx.session, ctx.actor, slug)
    _forbid_unless_editor(ctx, ds)
    return _resource_form(ctx, ds, {name: "" for name in RESOURCE_FORM_FIELDS}, {})


def _resource_form(ctx: Context, ds: Dataset, values: dict[str, Any], errors: dict[str, str],
                   status: int = 200, error: PlatformError | None = None) -> Response:
    from ..core.storage import human_size

    page = {"ds": ds, "values": values, "errors": errors, "max_size": human_size(ctx.settings.max_upload_bytes)}
    data: dict[str, Any] = {"dataset": ds.slug, "values": values, "errors": errors,
                            "max_upload_bytes": ctx.settings.max_upload_bytes}
    if errors:
        data.update(error.as_dict() if error is not None else _error_data(errors, status))
    return render(ctx, "catalogue/resource_form.html", page, data, status=status)


@router.post("/dataset/{slug}/resource/new")
async def resource_create(slug: str, request: Request, ctx: Context = CtxDep) -> Response:
    """Add an uploaded file (streamed to storage) or a link; the CSRF token is the form's first field."""
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect

    def find() -> Dataset:
        ds = service.get_dataset(ctx.session, ctx.actor, slug)
        _forbid_unless_editor(ctx, ds)
        return ds

    ds = await run_in_threadpool(find)
    upload = await receive_multipart(request, _storage(request), ctx.settings.max_upload_bytes)
    try:
        check_csrf(request, upload.fields.get("csrf_token"))
    except Forbidden:
        upload.discard()
        raise
    values = {name: upload.fields.get(name, "").strip() for name in ("title", "description", "format", "url")}
    if upload.file is not None and not upload.filename and upload.file.byte_size == 0:
        upload.discard()  # the browser sends an empty part when no file was chosen
        upload.file = None
    errors: dict[str, str] = {}
    if upload.file is None and not values["url"]:
        errors["upload"] = "Choose a file to upload, or enter a link to the data"
    elif upload.file is not None and values["url"]:
        errors["upload"] = "Choose a file or enter a link, not both"
    elif upload.file is not None and upload.file.byte_size == 0:
        errors["upload"] = "The selected file is empty"
    if errors:
        upload.discard()
        return await run_in_threadpool(_resource_form, ctx, ds, values, errors, 422)
    fields = {k: v for k, v in values.items() if v and k != "url"}

    def store() -> Response:
        try:
            if upload.file is not None:
                upload.fields = fields
                title = _store_upload(ctx, request, ds, upload)["title"]
            else:
                title = service.add_resource(ctx.session, ctx.actor, ds, {**fields, "url": values["url"]}).title
                ctx.session.commit()
        except (ValidationFailed, Conflict, BadRequest) as exc:
            ctx.session.rollback()
            upload.discard()
            return _resource_form(ctx, ds, values, _ordered_errors(exc, RESOURCE_FORM_FIELDS), exc.status, exc)
        except BaseException:
            upload.discard()
            raise
        flash(request, "Resource added", f"‘{title}’ has been added to this dataset.")
        return _redirect_or_json(ctx, f"/dataset/{ds.slug}", ds, 201)

    return await run_in_threadpool(store)


@router.get("/dataset/{slug}/resource/{rid}")
def resource_page(slug: str, rid: str, request: Request, ctx: Context = CtxDep) -> Response:
    """A resource: its metadata, a download button and, for tables, a preview of the first rows."""
    ds = service.get_dataset(ctx.session, ctx.actor, slug)
    res = service.get_resource(ctx.session, ctx.actor, ds, rid)
    preview = None
    if is_previewable(res):
        path = _storage(request).local_path(res.storage_key)
        if path is not None and path.exists():
            preview = preview_table(path, res.format, res.filename or "", ctx.settings.preview_rows)
    data = {**service.resource_record(res), "dataset": ds.slug,
            "download_url": service.resource_download_url(ds, res, ctx.base_url),
            "preview": preview.as_dict() if preview is not None else None}
    if wants_json(request):
        return render(ctx, "catalogue/resource.html", {}, data)
    page = {"ds": ds, "res": res, "href": download_path(ds, res), "format": display_format(res.format),
            "preview": preview, "preview_rows": ctx.settings.preview_rows,
            "can_edit": ctx.actor.can_edit(ds.organisation_id)}
    return render(ctx, "catalogue/resource.html", page, data)


@router.api_route("/dataset/{slug}/resource/{rid}/download/{filename}", methods=["GET", "HEAD"])
def resource_download(slug: str, rid: str, filename: str, request: Request, ctx: Context = CtxDep) -> Response:
    """The resource's file (with Range support), or a redirect to a linked resource."""
    ds = service.get_dataset(ctx.session, ctx.actor, slug)
    res = service.get_resource(ctx.session, ctx.actor, ds, rid)
    if res.kind == "link":
        return RedirectResponse(res.url or "/", status_code=302)
    if not res.storage_key or filename != res.filename:
        from ..core.errors import NotFound

        raise NotFound(f"This resource’s file is called ‘{res.filename}’. Download it from "
                       f"{download_path(ds, res)}.")
    return file_response(request, _storage(request), res)


# --- editing and deleting a dataset ---------------------------------------------------------------------

@router.get("/dataset/{slug}/edit")
def dataset_edit(slug: str, request: Request, ctx: Context = CtxDep) -> Response:
    """The form to change a dataset's metadata, filled in."""
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect
    ds = service.get_dataset(ctx.session, ctx.actor, slug)
    _forbid_unless_editor(ctx, ds)
    return _form_page(ctx, mode="edit", values=_values_from_dataset(ds), errors={}, ds=ds)


@router.post("/dataset/{slug}/edit")
async def dataset_update(slug: str, request: Request, ctx: Context = CtxDep,
                         form: FormData = FormDep) -> Response:
    """Save the changed metadata; on problems show the form again with what was typed."""
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect
    values = _values_from_form(form)

    def work() -> Response:
        ds = service.get_dataset(ctx.session, ctx.actor, slug)
        _forbid_unless_editor(ctx, ds)
        try:
            service.update_dataset(ctx.session, ctx.actor, ds, _service_data(values))
            ctx.session.commit()
        except (ValidationFailed, Conflict) as exc:
            ctx.session.rollback()
            ds = service.get_dataset(ctx.session, ctx.actor, slug)
            return _form_page(ctx, mode="edit", values=values, errors=_ordered_errors(exc, DATASET_FORM_FIELDS),
                              ds=ds, status=exc.status, error=exc)
        flash(request, "Changes saved", f"‘{ds.title}’ has been updated.")
        return _redirect_or_json(ctx, f"/dataset/{ds.slug}", ds)

    return await run_in_threadpool(work)


@router.get("/dataset/{slug}/delete")
def dataset_delete_confirm(slug: str, request: Request, ctx: Context = CtxDep) -> Response:
    """Ask to confirm deleting a dataset."""
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect
    ds = service.get_dataset(ctx.session, ctx.actor, slug)
    _forbid_unless_editor(ctx, ds)
    data = {"dataset": ds.slug, "title": ds.title, "confirm": "POST this address with the form's csrf_token"}
    return render(ctx, "catalogue/dataset_delete.html", {"ds": ds}, data)


@router.post("/dataset/{slug}/delete")
async def dataset_delete(slug: str, request: Request, ctx: Context = CtxDep, form: FormData = FormDep) -> Response:
    """Delete a dataset: it leaves the catalogue; its history stays."""
    if (redirect := needs_sign_in(ctx)) is not None:
        return redirect

    def work() -> tuple[str, str]:
        ds = service.get_dataset(ctx.session, ctx.actor, slug)
        _forbid_unless_editor(ctx, ds)
        service.delete_dataset(ctx.session, ctx.actor, ds)
        ctx.session.commit()
        return ds.title, ds.organisation.slug

    title, org_slug = await run_in_threadpool(work)
    if wants_json(request):
        return Response(status_code=204)
    flash(request, "Dataset deleted", f"‘{title}’ has been removed from the catalogue. Its history is kept.")
    return RedirectResponse(f"/organisation/{org_slug}", status_code=303)
