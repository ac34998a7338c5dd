"""The link checker: does every resource still work? Results are stored per resource.

A link is asked with ``HEAD`` first; servers that refuse or mishandle ``HEAD`` get a ranged
``GET`` (``Range: bytes=0-0``) whose body is never read. Every request has a timeout and the whole
check of one link a deadline, so a server that hangs or trickles bytes cannot stall the job. At most
``concurrency`` links are checked at once, only one request at a time goes to any one host, and
requests to the same host are ``host_delay`` seconds apart. Redirects are followed by hand (up to
``max_redirects``), and by default addresses on private networks (this server's own, the cloud
metadata service) are never requested: such links are recorded as "could not be checked".

An uploaded file is alive if storage still holds it at the size that was uploaded. RDF resources
are also read (up to ``rdf_max_bytes``) to see whether they link to other people's data, which is
the fifth openness star.

Results go to ``link_check`` (status code, error, method, time taken, when), batch by batch, and
the scorecards of the datasets checked are recomputed in the same transaction.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from ... import __version__
from ...core.db import Database, utcnow
from ..models import Dataset, Resource
from . import scores
from .models import LinkCheck

RDF_PARSERS = {"TTL": "turtle", "TURTLE": "turtle", "RDF": "xml", "RDF+XML": "xml", "OWL": "xml",
               "JSON-LD": "json-ld", "JSONLD": "json-ld", "NT": "nt", "N-TRIPLES": "nt", "N3": "n3",
               "NQ": "nquads", "TRIG": "trig"}


@dataclass
class LinkCheckOptions:
    """How the link checker behaves."""

    timeout: float = 10.0  # seconds for connecting, and between bytes
    concurrency: int = 10  # links checked at once
    host_delay: float = 1.0  # seconds between two requests to the same host
    max_redirects: int = 5
    recheck_after: timedelta = timedelta(hours=20)  # a link checked more recently is not due
    allow_private: bool = False  # check links to private network addresses (tests, intranets)
    rdf_max_bytes: int = 5 * 1024 * 1024
    batch: int = 200  # resources stored (and datasets rescored) per transaction
    user_agent: str = f"smartlondon-linkcheck/{__version__}"

    @property
    def deadline(self) -> float:
        """The most one request may take, whatever the server does (a trickle of bytes included)."""
        return self.timeout * 2


@dataclass
class LinkResult:
    """What checking one link or file found."""

    alive: bool | None
    status_code: int | None = None
    error: str = ""
    method: str = ""
    elapsed_ms: int | None = None
    links_out: bool | None = None


@dataclass
class Due:
    """A resource to check."""

    resource_id: int
    dataset_id: int
    kind: str
    url: str | None
    storage_key: str | None
    format: str
    byte_size: int | None

    @property
    def target(self) -> str:
        """What is checked: the URL, or the stored file."""
        return f"file:{self.storage_key}" if self.kind == "upload" else (self.url or "")


@dataclass
class LinkCheckReport:
    """What a run of the link checker did."""

    checked: int = 0
    alive: int = 0
    broken: int = 0
    unchecked: int = 0
    datasets: int = 0
    broken_examples: list[str] = field(default_factory=list)


class NotChecked(Exception):
    """The link was deliberately not requested (a private address)."""


# --- politeness -----------------------------------------------------------------------------------

class HostGate:
    """At most ``concurrency`` requests at once; one at a time per host, ``delay`` seconds apart.

    A request waits for its host's turn before it takes one of the shared slots, so links queued
    behind a slow host never hold up other hosts.
    """

    def __init__(self, delay: float, concurrency: int) -> None:
        self.delay = delay
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._locks: dict[str, asyncio.Lock] = {}
        self._last: dict[str, float] = {}

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        """Wait for this host's turn and a free slot, and hold both while the request runs."""
        lock = self._locks.setdefault(host, asyncio.Lock())
        async with lock:
            wait = self._last.get(host, float("-inf")) + self.delay - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                async with self._slots:
                    yield
            finally:
                self._last[host] = time.monotonic()


async def _guard(url: str, allow_private: bool) -> None:
    """Refuse URLs that are not http(s), and (unless allowed) hosts on private networks."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise httpx.InvalidURL("not an http or https address")
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, parts.port or 0,
                                                              type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpx.ConnectError(f"the host name {parts.hostname} does not resolve") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise NotChecked(f"{parts.hostname} is a private network address, which the link checker does not visit")


# --- checking one link ----------------------------------------------------------------------------

async def _status(client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str]) -> tuple[int, str | None]:
    async with client.stream(method, url, headers=headers) as response:
        return response.status_code, response.headers.get("location")


async def _ask(client: httpx.AsyncClient, method: str, url: str, options: LinkCheckOptions,
               gate: HostGate) -> tuple[int, str]:
    """(status, final URL) of one request, following redirects by hand; the body is never read."""
    headers = {"Range": "bytes=0-0"} if method == "GET" else {}
    for _ in range(options.max_redirects + 1):
        await _guard(url, options.allow_private)
        async with gate.slot(urlsplit(url).netloc.lower()):
            status, location = await asyncio.wait_for(_status(client, method, url, headers), options.deadline)
        if status in (301, 302, 303, 307, 308) and location:
            url = urljoin(url, location)
            continue
        return status, url
    raise httpx.TooManyRedirects(f"redirected more than {options.max_redirects} times")


def _reason(status: int) -> str:
    try:
        from http import HTTPStatus

        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _describe(exc: BaseException, options: LinkCheckOptions) -> str:
    if isinstance(exc, (httpx.TimeoutException, asyncio.TimeoutError)):
        return f"did not answer within {options.timeout:g} second{'' if options.timeout == 1 else 's'}"
    if isinstance(exc, httpx.TooManyRedirects):
        return str(exc)
    if isinstance(exc, httpx.InvalidURL):
        return f"is not a valid web address ({exc})"
    if isinstance(exc, httpx.ConnectError):
        return f"could not be reached: {exc or 'the connection failed'}"
    return f"failed ({type(exc).__name__}: {exc})" if str(exc) else f"failed ({type(exc).__name__})"


async def check_url(client: httpx.AsyncClient, url: str, options: LinkCheckOptions, gate: HostGate,
                    fmt: str = "") -> LinkResult:
    """Check one link: HEAD, then a ranged GET if HEAD is refused or breaks."""
    started = time.monotonic()
    method = "HEAD"

    def done(**values: Any) -> LinkResult:
        values.setdefault("method", method)
        return LinkResult(elapsed_ms=int((time.monotonic() - started) * 1000), **values)

    async def attempt() -> tuple[LinkResult, str]:
        nonlocal method
        head_error: BaseException | None = None
        try:
            status, final = await _ask(client, "HEAD", url, options, gate)
            if status < 400:
                return done(alive=True, status_code=status, method="HEAD"), final
        except (NotChecked, httpx.TimeoutException, asyncio.TimeoutError, httpx.ConnectError, httpx.InvalidURL,
                httpx.TooManyRedirects):
            raise
        except httpx.HTTPError as exc:  # a server that breaks on HEAD may still serve GET
            head_error = exc
        method = "GET"
        try:
            status, final = await _ask(client, "GET", url, options, gate)
        except httpx.HTTPError:
            if head_error is not None:
                raise head_error from None
            raise
        if status < 400:
            return done(alive=True, status_code=status, method="GET"), final
        return done(alive=False, status_code=status, method="GET", error=f"answered {_reason(status)}"), final

    try:
        result, final = await attempt()
    except NotChecked as exc:
        return done(alive=None, error=str(exc))
    except (httpx.HTTPError, asyncio.TimeoutError, OSError) as exc:
        return done(alive=False, error=_describe(exc, options))
    if result.alive and fmt.upper() in RDF_PARSERS:
        result.links_out = await _remote_links_out(client, final, fmt, options, gate)
    return result


def check_file(storage: Any, key: str | None, expected_size: int | None, fmt: str = "",
               rdf_max_bytes: int = 5 * 1024 * 1024) -> LinkResult:
    """Check an uploaded file: storage still holds it, at the size that was uploaded."""
    started = time.monotonic()
    if not key:
        return LinkResult(alive=False, error="no file was stored for it", method="FILE")
    try:
        size = storage.size(key)
    except (OSError, ValueError):
        return LinkResult(alive=False, error="its stored file is missing", method="FILE")
    elapsed = int((time.monotonic() - started) * 1000)
    if expected_size is not None and size != expected_size:
        return LinkResult(alive=False, error=f"its stored file has {size:,} bytes, but {expected_size:,} were "
                                             "uploaded", method="FILE", elapsed_ms=elapsed)
    result = LinkResult(alive=True, method="FILE", elapsed_ms=elapsed)
    if fmt.upper() in RDF_PARSERS and size <= rdf_max_bytes:
        data = b"".join(storage.open_range(key))
        result.links_out = links_out(data, fmt, f"file:{key}")
    return result


# --- linked data: the fifth star ---------------------------------------------------------------------

def links_out(data: bytes, fmt: str, base: str) -> bool | None:
    """True if RDF data links to things on other hosts (beyond naming their types); None if unreadable."""
    from rdflib import Graph, URIRef
    from rdflib.namespace import RDF

    graph = Graph()
    try:
        graph.parse(data=data, format=RDF_PARSERS.get(fmt.upper(), "turtle"), publicID=base)
    except Exception:  # any parse failure: the file is not readable RDF
        return None
    hosts = {urlsplit(str(s)).netloc for s in graph.subjects() if isinstance(s, URIRef)}
    for _, predicate, obj in graph:
        if predicate == RDF.type or not isinstance(obj, URIRef):
            continue
        parts = urlsplit(str(obj))
        if parts.scheme in ("http", "https") and parts.netloc and parts.netloc not in hosts:
            return True
    return False


async def _remote_links_out(client: httpx.AsyncClient, url: str, fmt: str, options: LinkCheckOptions,
                            gate: HostGate) -> bool | None:
    try:
        await _guard(url, options.allow_private)
        async with gate.slot(urlsplit(url).netloc.lower()):
            body = await asyncio.wait_for(_body(client, url, options.rdf_max_bytes), options.deadline)
        return links_out(body, fmt, url) if body is not None else None
    except (NotChecked, httpx.HTTPError, asyncio.TimeoutError, OSError):
        return None


async def _body(client: httpx.AsyncClient, url: str, max_bytes: int) -> bytes | None:
    async with client.stream("GET", url) as response:
        if response.status_code >= 400:
            return None
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body.extend(chunk)
            if len(body) > max_bytes:
                return None
        return bytes(body)


# --- the job ------------------------------------------------------------------------------------------

def due(session: Session, options: LinkCheckOptions, everything: bool = False,
        dataset_ids: list[int] | None = None, now: datetime | None = None, limit: int | None = None) -> list[Due]:
    """The resources due a check: never checked, changed since, or checked longest ago; oldest first."""
    now = now or utcnow()
    query = (select(Resource.id, Resource.dataset_id, Resource.kind, Resource.url, Resource.storage_key,
                    Resource.format, Resource.byte_size, LinkCheck.target, LinkCheck.checked_at)
             .join(Dataset, Dataset.id == Resource.dataset_id)
             .outerjoin(LinkCheck, LinkCheck.resource_id == Resource.id)
             .where(Dataset.state != "deleted"))
    if dataset_ids is not None:
        query = query.where(Dataset.id.in_(dataset_ids))
    cutoff = now - options.recheck_after
    found: list[tuple[datetime | None, Due]] = []
    for rid, dataset_id, kind, url, key, fmt, size, target, checked_at in session.execute(query):
        item = Due(rid, dataset_id, kind, url, key, fmt or "", size)
        fresh = checked_at is not None and target == item.target and checked_at > cutoff
        if everything or not fresh:
            found.append((checked_at if target == item.target else None, item))
    found.sort(key=lambda pair: (pair[0] is not None, pair[0] or now, pair[1].resource_id))
    items = [item for _, item in found]
    return items[:limit] if limit is not None else items


def store_results(session: Session, results: list[tuple[Due, LinkResult]], now: datetime | None = None) -> int:
    """Write link check results and rescore their datasets; returns how many datasets were rescored."""
    now = now or utcnow()
    for item, result in results:
        row = session.get(LinkCheck, item.resource_id)
        if row is None:
            row = LinkCheck(resource_id=item.resource_id)
            session.add(row)
        row.target, row.alive, row.status_code = item.target[:2000], result.alive, result.status_code
        row.error, row.method, row.elapsed_ms = result.error[:500], result.method, result.elapsed_ms
        row.links_out, row.checked_at = result.links_out, now
    session.flush()
    return scores.rescore_ids(session, sorted({item.dataset_id for item, _ in results}))


async def _check_batch(client: httpx.AsyncClient, items: list[Due], storage: Any, options: LinkCheckOptions,
                       gate: HostGate) -> list[tuple[Due, LinkResult]]:
    by_url: dict[str, asyncio.Task[LinkResult]] = {}
    results: list[tuple[Due, Any]] = []
    for item in items:
        if item.kind == "upload":
            results.append((item, await asyncio.to_thread(check_file, storage, item.storage_key, item.byte_size,
                                                          item.format, options.rdf_max_bytes)))
            continue
        url = item.url or ""
        key = f"{url}\n{item.format.upper() in RDF_PARSERS}"
        if key not in by_url:
            by_url[key] = asyncio.create_task(check_url(client, url, options, gate, item.format))
        results.append((item, by_url[key]))
    await asyncio.gather(*by_url.values())
    return [(item, r.result() if isinstance(r, asyncio.Task) else r) for item, r in results]


async def _run(db: Database, storage: Any, items: list[Due], options: LinkCheckOptions,
               progress: Callable[[int], None] | None) -> LinkCheckReport:
    report = LinkCheckReport()
    gate = HostGate(options.host_delay, options.concurrency)
    timeout = httpx.Timeout(options.timeout)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False,
                                 headers={"User-Agent": options.user_agent}) as client:
        for start in range(0, len(items), options.batch):
            batch = items[start:start + options.batch]
            results = await _check_batch(client, batch, storage, options, gate)

            def write(results: list[tuple[Due, LinkResult]] = results) -> int:
                with db.session() as session:
                    return store_results(session, results)

            report.datasets += await asyncio.to_thread(write)
            for item, result in results:
                report.checked += 1
                if result.alive:
                    report.alive += 1
                elif result.alive is None:
                    report.unchecked += 1
                else:
                    report.broken += 1
                    if len(report.broken_examples) < 10:
                        report.broken_examples.append(f"{item.target}: {result.error}")
            if progress:
                progress(len(batch))
    return report


def run(db: Database, storage: Any, options: LinkCheckOptions | None = None, *, everything: bool = False,
        dataset_ids: list[int] | None = None, limit: int | None = None,
        progress: Callable[[int], None] | None = None, items: list[Due] | None = None) -> LinkCheckReport:
    """Check the resources that are due (or ``everything``), store the results and rescore their datasets."""
    options = options or LinkCheckOptions()
    if items is None:
        with db.session() as session:
            items = due(session, options, everything, dataset_ids, limit=limit)
    if not items:
        return LinkCheckReport()
    return asyncio.run(_run(db, storage, items, options, progress))


def summary(report: LinkCheckReport) -> str:
    """One line saying what a run found."""
    return (f"Checked {report.checked} resource{'' if report.checked == 1 else 's'}: {report.alive} working, "
            f"{report.broken} broken, {report.unchecked} could not be checked; rescored {report.datasets} "
            f"dataset{'' if report.datasets == 1 else 's'}.")
