"""The catalogue's native JSON API under ``/api``: datasets, resources, organisations, licences."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPBearer
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..core import accounts, audit
from ..core.errors import BadRequest

from ..core.uploads import receive_multipart
from ..core.web import Context, CtxDep, json_body
from . import search as search_module
from . import service
from .views import search_payload

# Documents the token for OpenAPI clients (Swagger UI's "Authorize"); checking it is the Context's job.
bearer = HTTPBearer(auto_error=False, description="An API token: `smartlondon token create USER` or the API tokens page")
router = APIRouter(prefix="/api", tags=["catalogue"], dependencies=[Depends(bearer)])


class DatasetIn(BaseModel):
    """The fields of a dataset (all optional on PATCH)."""

    slug: str | None = Field(None, description="Short name in the address: lowercase letters, numbers, hyphens")
    title: str | None = None
    description: str | None = Field(None, description="Markdown")
    publisher: str | None = Field(None, description="Organisation slug, e.g. 'camden'")
    licence: str | None = Field("OGL-UK-3.0", description="Licence id from /api/licences")
    contact_name: str | None = None
    contact_email: str | None = None
    keywords: list[str] | None = None
    themes: list[str] | None = None
    frequency: str | None = Field(None, description="hourly, daily, weekly, monthly, quarterly, annual, "
                                                    "irregular, never")
    temporal_start: str | None = Field(None, description="YYYY-MM-DD")
    temporal_end: str | None = Field(None, description="YYYY-MM-DD")
    boroughs: list[str] | None = Field(None, description="GSS codes, e.g. E09000007")
    bbox: list[float] | None = Field(None, description="[west, south, east, north] in WGS84")
    geography: str | None = None
    private: bool | None = None
    state: str | None = Field(None, description="active or draft")
    landing_page: str | None = Field(None, description="A web page about the dataset (http/https)")
    version: str | None = None
    extras: dict[str, str] | None = Field(None, description="Extra metadata as key/value strings")


class ResourceIn(BaseModel):
    """A link resource (send multipart/form-data with an 'upload' file field for a file)."""

    title: str
    url: str | None = None
    description: str | None = None
    format: str | None = None
    table_schema: dict[str, Any] | None = None


def _body_doc(model: type[BaseModel], multipart: bool = False) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": model.model_json_schema()}}
    if multipart:
        content["multipart/form-data"] = {"schema": {"type": "object", "properties": {
            "upload": {"type": "string", "format": "binary"}, "title": {"type": "string"},
            "description": {"type": "string"}, "format": {"type": "string"}}}}
    return {"requestBody": {"required": True, "content": content}}


@router.get("/datasets", summary="Search datasets", response_class=JSONResponse)
def search_datasets(request: Request, ctx: Context = CtxDep) -> JSONResponse:
    """Full-text search with facets. Parameters: `q`, facet filters (`publisher`, `theme`, `format`,
    `borough`, `licence`, `frequency`, `keyword`, repeatable), `sort` (relevance, updated, title,
    created), `page`, `page_size` (max 1000), `bbox` (west,south,east,north)."""
    req = search_module.request_from_params(request.query_params, ctx.settings.page_size)
    result = search_module.search(ctx.session, ctx.actor, req)
    return JSONResponse(search_payload(ctx.session, result, ctx.base_url, "/api/datasets"))


@router.post("/datasets", status_code=201, summary="Create a dataset", openapi_extra=_body_doc(DatasetIn))
async def create_dataset(request: Request, ctx: Context = CtxDep) -> JSONResponse:
    """Create a dataset. Needs a token of an editor of the publishing organisation."""
    data = await json_body(request)

    def work() -> dict[str, Any]:
        ds = service.create_dataset(ctx.session, ctx.actor, data)
        ctx.session.commit()
        return service.dataset_dict(ds, ctx.base_url)

    body = await run_in_threadpool(work)
    return JSONResponse(body, status_code=201, headers={"Location": body["url"]})


@router.get("/datasets/{ref}", summary="Get a dataset")
def get_dataset(ref: str, ctx: Context = CtxDep) -> dict[str, Any]:
    """A dataset by slug or id, with its resources."""
    return service.dataset_dict(service.get_dataset(ctx.session, ctx.actor, ref), ctx.base_url)


async def _change(request: Request, ctx: Context, ref: str, replace: bool) -> dict[str, Any]:
    data = await json_body(request)

    def work() -> dict[str, Any]:
        ds = service.get_dataset(ctx.session, ctx.actor, ref)
        service.update_dataset(ctx.session, ctx.actor, ds, data, replace=replace)
        ctx.session.commit()
        return service.dataset_dict(ds, ctx.base_url)

    return await run_in_threadpool(work)


@router.patch("/datasets/{ref}", summary="Change some fields of a dataset", openapi_extra=_body_doc(DatasetIn))
async def patch_dataset(ref: str, request: Request, ctx: Context = CtxDep) -> dict[str, Any]:
    """Change the fields given; the others stay as they are."""
    return await _change(request, ctx, ref, replace=False)


@router.put("/datasets/{ref}", summary="Replace a dataset's metadata", openapi_extra=_body_doc(DatasetIn))
async def put_dataset(ref: str, request: Request, ctx: Context = CtxDep) -> dict[str, Any]:
    """Replace every metadata field (resources are kept); fields not given are cleared."""
    return await _change(request, ctx, ref, replace=True)


@router.delete("/datasets/{ref}", status_code=204, summary="Delete a dataset")
def delete_dataset(ref: str, ctx: Context = CtxDep) -> Response:
    """Delete a dataset: it leaves search and the site; its history is kept."""
    ds = service.get_dataset(ctx.session, ctx.actor, ref)
    service.delete_dataset(ctx.session, ctx.actor, ds)
    ctx.session.commit()
    return Response(status_code=204)


@router.get("/datasets/{ref}/history", summary="A dataset's history")
def dataset_history(ref: str, ctx: Context = CtxDep) -> dict[str, Any]:
    """Every change to the dataset and its resources, newest first: who, when, before and after."""
    ds = service.get_dataset(ctx.session, ctx.actor, ref)
    events = audit.dataset_history(ctx.session, ds.id)
    return {"dataset": ds.slug, "events": [
        {"id": e.id, "at": e.at.isoformat(), "actor": e.actor, "action": e.action, "summary": e.summary,
         "object_type": e.object_type, "object_id": e.object_id, "before": e.before, "after": e.after}
        for e in events]}


@router.post("/datasets/{ref}/resources", status_code=201, summary="Add a resource (upload or link)",
             openapi_extra=_body_doc(ResourceIn, multipart=True))
async def create_resource(ref: str, request: Request, ctx: Context = CtxDep) -> JSONResponse:
    """Upload a file (multipart/form-data, field `upload`) or add a link (JSON with `url`)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/"):
        def check() -> Any:
            ds = service.get_dataset(ctx.session, ctx.actor, ref)
            service.check_can_publish(ctx.actor, ds)
            return ds

        ds = await run_in_threadpool(check)
        upload = await receive_multipart(request, request.app.state.storage, ctx.settings.max_upload_bytes)
        if upload.file is None:
            upload.discard()
            raise BadRequest("Attach the file in a form field called 'upload', or send JSON with a 'url'.",
                             {"upload": "Choose a file to upload."})
        body = await run_in_threadpool(_store_upload, ctx, request, ds, upload)
    else:
        data = await json_body(request)

        def work() -> dict[str, Any]:
            ds = service.get_dataset(ctx.session, ctx.actor, ref)
            res = service.add_resource(ctx.session, ctx.actor, ds, data)
            ctx.session.commit()
            return _resource_body(ctx, ds, res)

        body = await run_in_threadpool(work)
    return JSONResponse(body, status_code=201, headers={"Location": body["download_url"]})


def _store_upload(ctx: Context, request: Request, ds: Any, upload: Any, res: Any = None) -> dict[str, Any]:
    """Commit the uploaded file, then the database row; if the row fails, remove the file."""
    storage = request.app.state.storage
    stored = upload.file.commit()
    try:
        if res is None:
            res = service.add_resource(ctx.session, ctx.actor, ds, upload.fields, stored=stored,
                                       filename=upload.filename)
            old_key = None
        else:
            res, old_key = service.update_resource(ctx.session, ctx.actor, res, upload.fields, stored=stored,
                                                   filename=upload.filename)
        ctx.session.commit()
    except BaseException:
        ctx.session.rollback()
        storage.delete(stored.key)
        raise
    if old_key:
        storage.delete(old_key)
    return _resource_body(ctx, ds, res)


def _resource_body(ctx: Context, ds: Any, res: Any) -> dict[str, Any]:
    return {**service.resource_record(res), "dataset": ds.slug,
            "download_url": service.resource_download_url(ds, res, ctx.base_url)}


@router.get("/datasets/{ref}/resources/{resource_id}", summary="Get a resource")
def get_resource(ref: str, resource_id: str, ctx: Context = CtxDep) -> dict[str, Any]:
    """A resource's metadata and its download address."""
    ds = service.get_dataset(ctx.session, ctx.actor, ref)
    return _resource_body(ctx, ds, service.get_resource(ctx.session, ctx.actor, ds, resource_id))


@router.patch("/datasets/{ref}/resources/{resource_id}", summary="Change a resource",
              openapi_extra=_body_doc(ResourceIn, multipart=True))
async def patch_resource(ref: str, resource_id: str, request: Request, ctx: Context = CtxDep) -> dict[str, Any]:
    """Change a resource's fields (JSON), or replace its file (multipart with `upload`)."""
    def find() -> tuple[Any, Any]:
        ds = service.get_dataset(ctx.session, ctx.actor, ref)
        service.check_can_publish(ctx.actor, ds)
        return ds, service.get_resource(ctx.session, ctx.actor, ds, resource_id)

    ds, res = await run_in_threadpool(find)
    if request.headers.get("content-type", "").startswith("multipart/"):
        upload = await receive_multipart(request, request.app.state.storage, ctx.settings.max_upload_bytes)
        if upload.file is None:
            def fields_only() -> dict[str, Any]:
                service.update_resource(ctx.session, ctx.actor, res, upload.fields)
                ctx.session.commit()
                return _resource_body(ctx, ds, res)
            return await run_in_threadpool(fields_only)
        return await run_in_threadpool(_store_upload, ctx, request, ds, upload, res)
    data = await json_body(request)

    def work() -> dict[str, Any]:
        service.update_resource(ctx.session, ctx.actor, res, data)
        ctx.session.commit()
        return _resource_body(ctx, ds, res)

    return await run_in_threadpool(work)


@router.delete("/datasets/{ref}/resources/{resource_id}", status_code=204, summary="Remove a resource")
def delete_resource(ref: str, resource_id: str, request: Request, ctx: Context = CtxDep) -> Response:
    """Remove a resource and its stored file."""
    ds = service.get_dataset(ctx.session, ctx.actor, ref)
    key = service.delete_resource(ctx.session, ctx.actor, service.get_resource(ctx.session, ctx.actor, ds,
                                                                               resource_id))
    ctx.session.commit()
    if key:
        request.app.state.storage.delete(key)
    return Response(status_code=204)


@router.get("/organisations", summary="List organisations")
def list_organisations(ctx: Context = CtxDep) -> dict[str, Any]:
    """Every publishing organisation."""
    return {"results": [_org(o, ctx) for o in accounts.list_organisations(ctx.session)]}


@router.get("/organisations/{slug}", summary="Get an organisation")
def get_organisation(slug: str, ctx: Context = CtxDep) -> dict[str, Any]:
    """An organisation by slug or id."""
    return _org(accounts.get_organisation(ctx.session, slug), ctx)


def _org(org: Any, ctx: Context) -> dict[str, Any]:
    return {"id": org.uuid, "slug": org.slug, "name": org.name, "kind": org.kind, "gss_code": org.gss_code,
            "url": org.url, "description": org.description, "page": f"{ctx.base_url}/organisation/{org.slug}"}


@router.get("/licences", summary="The licence register")
def list_licences(ctx: Context = CtxDep) -> dict[str, Any]:
    """Every licence a dataset may use; OGL v3 is the default."""
    return {"results": [{"id": lic.id, "title": lic.title, "url": lic.url, "is_open": lic.is_open}
                        for lic in service.licences(ctx.session)]}


@router.get("/me", summary="Who am I")
def me(ctx: Context = CtxDep) -> dict[str, Any]:
    """The account the request is made as, and its roles."""
    accounts.require_authenticated(ctx.actor)
    user = ctx.actor.user
    roles = {m.organisation.slug: m.role for m in user.memberships} if user else {}
    return {"username": ctx.actor.label, "sysadmin": ctx.actor.is_sysadmin, "via": ctx.actor.via,
            "roles": roles}



