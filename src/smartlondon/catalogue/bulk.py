"""Bulk downloads of the whole public catalogue: ``/catalog/dump.jsonl``, ``/catalog/dump.csv`` and
``/catalog/dump-resources.csv``.

Each request checks that the files still show the catalogue as it is (one small query) and has
them rewritten first if not; the file is then streamed with an ``ETag`` (its SHA-256) and
``Last-Modified`` (when it was written), so clients can ask again cheaply with ``If-None-Match``.
"""

from __future__ import annotations

from email.utils import format_datetime, parsedate_to_datetime

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from ..core.web import database, settings_of
from . import dumps

router = APIRouter(tags=["catalogue"])

ROUTES = {"dump.jsonl": "jsonl", "dump.csv": "csv", "dump-resources.csv": "resources.csv"}


async def _serve(request: Request, key: str) -> Response:
    settings = settings_of(request)
    manifest = await run_in_threadpool(dumps.ensure_fresh, database(request).engine, settings.data_dir,
                                       settings.base_url)
    dump = manifest.files[key]
    etag = f'"{dump.sha256}"'
    generated = manifest.generated_at.replace(microsecond=0)
    headers = {"ETag": etag, "Last-Modified": format_datetime(generated, usegmt=True),
               "Cache-Control": "public, no-cache", "X-Dataset-Count": str(manifest.datasets),
               "X-Skipped-Records": str(len(manifest.skipped))}
    if _not_modified(request, etag, generated):
        return Response(status_code=304, headers=headers)
    _, media_type = dumps.FILES[key]
    return FileResponse(dumps.dump_dir(settings.data_dir) / dump.name, media_type=media_type, headers=headers,
                        filename=dump.name, content_disposition_type="attachment")


def _not_modified(request: Request, etag: str, generated: object) -> bool:
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        return etag in [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")] or if_none_match == "*"
    since = request.headers.get("if-modified-since")
    if since:
        try:
            return parsedate_to_datetime(since) >= generated  # type: ignore[operator]
        except (TypeError, ValueError):
            return False
    return False


DESCRIPTION = ("Regenerated when the catalogue has changed since the file was written; served with `ETag` and "
               "`Last-Modified` (send `If-None-Match` to get 304 when nothing changed). Private, draft and deleted "
               "datasets are never included.")


@router.api_route("/catalog/dump.jsonl", methods=["GET", "HEAD"], summary="Every public dataset, as JSON lines",
                  description="One dataset per line, as `GET /api/datasets/{slug}` returns it. " + DESCRIPTION)
async def dump_jsonl(request: Request) -> Response:
    """The whole public catalogue as JSON lines."""
    return await _serve(request, "jsonl")


@router.api_route("/catalog/dump.csv", methods=["GET", "HEAD"], summary="Every public dataset, as CSV",
                  description="One row per dataset, UTF-8 with a byte order mark; lists joined with '; '. "
                              + DESCRIPTION)
async def dump_csv(request: Request) -> Response:
    """The whole public catalogue as CSV, one row per dataset."""
    return await _serve(request, "csv")


@router.api_route("/catalog/dump-resources.csv", methods=["GET", "HEAD"],
                  summary="Every resource of every public dataset, as CSV",
                  description="One row per resource with its dataset's id and slug. " + DESCRIPTION)
async def dump_resources_csv(request: Request) -> Response:
    """Every resource of the public catalogue as CSV."""
    return await _serve(request, "resources.csv")
