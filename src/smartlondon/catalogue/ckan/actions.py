"""The registry of CKAN actions, and what an action is called with.

Any part of the platform adds an action with the decorator::

    @action("datastore_search", read=True)
    def datastore_search(call: ActionCall) -> dict:
        "Search a table (CKAN's datastore_search)."
        ...

An action returns the ``result`` of CKAN's envelope and raises the platform's errors
(``core/errors.py``); the router turns those into CKAN's error envelope and status codes. Read
actions answer GET and POST; the others only POST, as in CKAN. The docstring is what
``help_show`` returns.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from ...core.accounts import Actor
from ...core.errors import BadRequest, PlatformError, ValidationFailed
from ...settings import Settings

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)

# Modules whose import registers actions; optional ones are imported only if they exist.
ACTION_MODULES = ("smartlondon.catalogue.ckan.reads", "smartlondon.catalogue.ckan.writes")
OPTIONAL_ACTION_MODULES = ("smartlondon.catalogue.tabular.actions",)


@dataclass
class ActionCall:
    """One call of an action: the request's session, who asks, and the parameters."""

    session: Session            # the request's session (committed once at the end, rolled back on error)
    actor: Actor                # from Authorization / X-CKAN-API-Key (raw token, or "Bearer <token>")
    params: dict[str, Any]      # merged: query string (GET), JSON body, or form fields (POST)
    settings: Settings
    storage: Any                # app.state.storage
    base_url: str
    upload: tuple[Any, str] | None = None   # (StoredFile, filename) when a multipart 'upload' was sent
    discard_after_commit: list[str] = field(default_factory=list)  # storage keys to delete once committed
    upload_taken: bool = False

    def take_upload(self) -> tuple[Any, str] | None:
        """The uploaded file, marked as used (an unused upload is deleted after the call)."""
        if self.upload is not None:
            self.upload_taken = True
        return self.upload


@dataclass(frozen=True)
class RegisteredAction:
    """An action function and whether it only reads (and so also answers GET)."""

    name: str
    fn: Callable[[ActionCall], Any]
    read: bool

    @property
    def help(self) -> str:
        """The action's documentation, as ``help_show`` returns it."""
        return (self.fn.__doc__ or "").strip()


_registry: dict[str, RegisteredAction] = {}
_loaded = False
_load_lock = threading.Lock()


def action(name: str, *, read: bool) -> Callable[[F], F]:
    """Register fn(call: ActionCall) -> Any (the `result`) under `name`; read actions also answer GET."""
    def register(fn: F) -> F:
        _registry[name] = RegisteredAction(name, fn, read)
        return fn
    return register


def load_actions() -> None:
    """Import every module that registers actions (once)."""
    global _loaded
    if _loaded:
        return
    with _load_lock:
        if _loaded:
            return
        for module in ACTION_MODULES:
            importlib.import_module(module)
        for module in OPTIONAL_ACTION_MODULES:
            try:
                found = importlib.util.find_spec(module) is not None
            except ModuleNotFoundError:  # its package is missing
                found = False
            if found:
                try:
                    importlib.import_module(module)
                except Exception:  # a broken optional part must not take the whole API down
                    log.exception("could not import the CKAN actions of %s", module)
        _loaded = True


def get_action(name: str) -> RegisteredAction | None:
    """The registered action called ``name``, or None."""
    load_actions()
    return _registry.get(name)


def action_names() -> list[str]:
    """The names of every registered action, sorted."""
    load_actions()
    return sorted(_registry)


# --- CKAN's search errors ---------------------------------------------------------------------

class SearchQueryError(BadRequest):
    """A search parameter CKAN refuses before searching, such as a bad sort (400)."""

    code = "search_query_error"


class SearchError(PlatformError):
    """A search the index cannot run, such as an unknown field in ``fq`` (409 in CKAN)."""

    status = 409
    code = "search_error"


# --- parameters, checked the way CKAN's validators check them -----------------------------------

MISSING = "Missing value"
TRUE_WORDS = {"true", "yes", "t", "y", "1", "on"}


def invalid(field_name: str, message: str) -> ValidationFailed:
    """A CKAN validation error for one field."""
    return ValidationFailed(f"{field_name}: {message}", {field_name: [message]})  # type: ignore[dict-item]


def require(params: dict[str, Any], *names: str) -> str:
    """The first of ``names`` present and not empty, as a string; 409 "Missing value" otherwise."""
    for name in names:
        value = params.get(name)
        if value not in (None, ""):
            if isinstance(value, (dict, list)):
                raise invalid(name, "Must be a string")
            return str(value)
    raise invalid(names[0], MISSING)


def as_int(params: dict[str, Any], name: str, default: int | None, *, natural: bool = False) -> int | None:
    """An integer parameter ("Invalid integer"; "Must be a natural number" when negative and ``natural``)."""
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise invalid(name, "Invalid integer")
    try:
        number = int(value) if not isinstance(value, float) or value.is_integer() else None
    except (TypeError, ValueError):
        number = None
    if number is None:
        raise invalid(name, "Invalid integer")
    if natural and number < 0:
        raise invalid(name, "Must be a natural number")
    return number


def as_bool(params: dict[str, Any], name: str, default: bool = False) -> bool:
    """A boolean parameter: true, yes, t, y, 1 or on (any case) mean True."""
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in TRUE_WORDS


def as_list(params: dict[str, Any], name: str) -> list[str] | None:
    """A list of strings: a JSON list, a list, or one string (CKAN's convert_to_json_if_string)."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise invalid(name, "Could not parse as valid JSON") from exc
        else:
            value = [text]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(name, "Not a list of strings")
    return value
