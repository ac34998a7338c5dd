"""HTTP for harvesters: connect and read timeouts, retries with backoff, a size limit and a page cap.

A portal that hangs, answers 5xx or sends too much never hangs a job: every request has a
deadline, is retried a few times with growing pauses, and then fails with a message that
says what happened and where.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from ... import __version__
from .options import SourceOptions

USER_AGENT = f"smartlondon-harvester/{__version__} (+https://github.com/smartlondon)"
RETRY_STATUSES = {429, 500, 502, 503, 504}


class FetchFailed(Exception):
    """The source could not be read: the job fails with this message."""


class PageCapReached(Exception):
    """The job read as many pages as the source allows; what was read is kept."""


@dataclass
class Page:
    """A response body with its address and media type."""

    url: str
    content: bytes
    content_type: str

    def json(self) -> Any:
        """The body parsed as JSON; FetchFailed if it is not JSON."""
        try:
            return json.loads(self.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise FetchFailed(f"The answer from {self.url} is not valid JSON ({exc}).") from None


class Fetcher:
    """Fetches a source's pages within its timeouts, retries and page cap."""

    def __init__(self, options: SourceOptions, headers: dict[str, str] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 on_page: Callable[[], None] | None = None,
                 before_request: Callable[[], None] | None = None) -> None:
        self.options = options
        self.pages = 0
        self.sleep = sleep
        self.on_page = on_page
        self.before_request = before_request  # the runner commits its open batch: no lock is held across I/O
        timeout = httpx.Timeout(connect=options.connect_timeout, read=options.read_timeout,
                                write=options.read_timeout, pool=options.connect_timeout)
        self.client = httpx.Client(timeout=timeout, follow_redirects=True,
                                   headers={"User-Agent": USER_AGENT, **(headers or {})})

    def close(self) -> None:
        """Close the connections."""
        self.client.close()

    def __enter__(self) -> "Fetcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, url: str, params: dict[str, Any] | None = None, accept: str = "application/json") -> Page:
        """One page, counted against the page cap; retried on timeouts, lost connections and 5xx."""
        if self.pages >= self.options.max_pages:
            raise PageCapReached(f"Stopped after {self.pages} pages, the page cap of this source "
                                 "(raise 'max_pages' in its options to read more).")
        self.pages += 1
        if self.before_request:
            self.before_request()
        attempts = self.options.retries + 1
        problem = ""
        for attempt in range(attempts):
            if attempt:
                self.sleep(min(self.options.backoff * 2 ** (attempt - 1), 300))
            try:
                page = self._get_once(url, params, accept)
            except _Retry as retry:
                problem = str(retry)
                continue
            if self.on_page:
                self.on_page()
            return page
        tries = "once" if attempts == 1 else f"{attempts} times"
        raise FetchFailed(f"{problem} (tried {tries}).")

    def _get_once(self, url: str, params: dict[str, Any] | None, accept: str) -> Page:
        address = url if not params else f"{url} with {params}"
        try:
            with self.client.stream("GET", url, params=params, headers={"Accept": accept}) as response:
                if response.status_code in RETRY_STATUSES:
                    raise _Retry(f"The source answered {response.status_code} {response.reason_phrase} "
                                 f"for {address}")
                if response.status_code >= 400:
                    raise FetchFailed(f"The source answered {response.status_code} {response.reason_phrase} "
                                      f"for {address}.")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.options.max_bytes:
                    raise FetchFailed(f"The answer from {address} is {int(declared):,} bytes, over the limit of "
                                      f"{self.options.max_bytes:,} ('max_bytes').")
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self.options.max_bytes:
                        raise FetchFailed(f"The answer from {address} is over the limit of "
                                          f"{self.options.max_bytes:,} bytes ('max_bytes').")
                    chunks.append(chunk)
                return Page(str(response.url), b"".join(chunks), response.headers.get("content-type", ""))
        except httpx.ConnectTimeout:
            raise _Retry(f"Could not connect to {address} within {self.options.connect_timeout:g} s "
                         "(connect timeout)") from None
        except httpx.ReadTimeout:
            raise _Retry(f"The source stopped answering {address} for more than "
                         f"{self.options.read_timeout:g} s (read timeout)") from None
        except httpx.TimeoutException as exc:
            raise _Retry(f"Timed out reading {address} ({type(exc).__name__})") from None
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise _Retry(f"Lost the connection to {address} ({exc or type(exc).__name__})") from None
        except httpx.InvalidURL as exc:
            raise FetchFailed(f"'{url}' is not a web address that can be fetched ({exc}).") from None
        except httpx.HTTPError as exc:
            raise FetchFailed(f"Could not read {address}: {exc or type(exc).__name__}.") from None


class _Retry(Exception):
    """A failure worth trying again."""
