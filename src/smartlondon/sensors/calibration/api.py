"""``/sta/v1.1/ext/calibrations``: calibration models of low-cost sensors (docs/sensors-calibration.md).

* ``GET  /sta/v1.1/ext/calibrations[?datastream=ID&thing=ID&active=true]``: the calibrations, newest
  version first per low-cost Datastream;
* ``GET  /sta/v1.1/ext/calibrations/{id}``: one;
* ``POST /sta/v1.1/ext/calibrations``: fit one, ``{"lowCost": 12, "reference": 3, "from": "...",
  "to": "...", "kind": "linear-humidity-temperature", "maxDistance": 50, "apply": true,
  "recompute": false}`` -> 201;
* ``POST /sta/v1.1/ext/calibrations/{id}/apply``: make it the active one (``{"recompute": true}``
  recomputes every calibrated value with it).

Writes need an API token, as every SensorThings write does (``sensors/sta/writes.py``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ...core.db import Database
from ...core.errors import BadRequest
from ..sta import PREFIX, StaError, base_url
from ..sta.router import CONFORMANCE
from ..sta.writes import _answer, _read_json, _run
from . import service
from .estimators import DEFAULT_KIND, KINDS

CALIBRATION_CLASS = "https://smartlondon.example/spec/sta-ext/calibration"
if CALIBRATION_CLASS not in CONFORMANCE:
    CONFORMANCE.append(CALIBRATION_CLASS)

PATH = PREFIX + "/ext/calibrations"
BODY_LIMIT = 64 * 1024
FIT_MEMBERS = {"lowCost", "reference", "from", "to", "kind", "maxDistance", "humidity", "temperature", "apply",
               "recompute"}

router = APIRouter(tags=["SensorThings API extensions"])


def _id(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    if not text.strip().isdigit() or int(text) <= 0:
        raise StaError(400, f"{name}={text!r} is not an id (a positive whole number).")
    return int(text)


@router.get(PATH, summary="Calibration models of low-cost sensors")
def list_route(request: Request) -> Response:
    """``?datastream=ID`` (the low-cost Datastream), ``?thing=ID``, ``?active=true``."""
    try:
        allowed = {"datastream", "thing", "active"}
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise StaError(400, f"Unknown parameter {', '.join(unknown)}; use {', '.join(sorted(allowed))}.")
        active = request.query_params.get("active")
        if active not in (None, "true", "false"):
            raise StaError(400, f"active must be true or false; got {active!r}.")
        db: Database = request.app.state.db
        root = base_url(request.app.state.settings.base_url)
        with db.sessions() as session:
            found = service.list_calibrations(
                session, datastream_id=_id(request.query_params.get("datastream"), "datastream"),
                thing_id=_id(request.query_params.get("thing"), "thing"), active_only=active == "true")
            value = [service.calibration_json(c, root) for c in found]
        return JSONResponse({"@iot.count": len(value), "kinds": {k: c.description for k, c in KINDS.items()},
                             "value": value})
    except StaError as exc:
        return exc.response()


@router.get(PATH + "/{calibration_id}", summary="One calibration model")
def one_route(calibration_id: str, request: Request) -> Response:
    """One calibration, with its parameters and fit statistics."""
    try:
        number = _id(calibration_id, "id")
        db: Database = request.app.state.db
        root = base_url(request.app.state.settings.base_url)
        with db.sessions() as session:
            found = session.get(service.Calibration, number)
            if found is None:
                raise StaError(404, f"There is no calibration with id {calibration_id}.")
            return JSONResponse(service.calibration_json(found, root))
    except StaError as exc:
        return exc.response()


def _flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false; got {value!r}.")
    return value


def fit_request(session: Any, body: Any, root: str) -> dict[str, Any]:
    """Validate a fit request body, fit (and apply) the calibration; returns its JSON."""
    if not isinstance(body, dict):
        raise BadRequest("Send a JSON object: {\"lowCost\": <Datastream id>, \"reference\": <Datastream id>, "
                         "\"from\": \"2023-03-18T00:00:00Z\", \"to\": \"2023-03-31T00:00:00Z\"}.")
    unknown = sorted(set(body) - FIT_MEMBERS)
    if unknown:
        raise BadRequest(f"Unknown member(s) {', '.join(unknown)}; allowed: {', '.join(sorted(FIT_MEMBERS))}.")
    for name in ("lowCost", "reference", "from", "to"):
        if name not in body:
            raise BadRequest(f"'{name}' is required.")
    start = service.service.parse_time(body["from"], "from")
    end = service.service.parse_time(body["to"], "to")
    kind = body.get("kind", DEFAULT_KIND)
    if not isinstance(kind, str):
        raise BadRequest(f"kind must be one of {', '.join(KINDS)}.")
    distance = body.get("maxDistance", service.DEFAULT_DISTANCE_M)
    if isinstance(distance, bool) or not isinstance(distance, (int, float)):
        raise BadRequest("maxDistance must be a number of metres.")
    calibration = service.fit_calibration(
        session, body["lowCost"], body["reference"], start, end, kind=kind, max_distance_m=float(distance),
        humidity_id=body.get("humidity"), temperature_id=body.get("temperature"),
        apply=_flag(body, "apply", True), recompute=_flag(body, "recompute", False), base_url=root)
    return service.calibration_json(calibration, root)


@router.post(PATH, status_code=201, summary="Fit a calibration of a low-cost sensor against a reference")
async def fit_route(request: Request) -> Response:
    """Fit over a window; by default apply it (create or refresh the derived calibrated Datastream)."""
    async def make() -> Response:
        body, _ = await _read_json(request, BODY_LIMIT)
        made = _run(request, lambda session, root: fit_request(session, body, root))
        return JSONResponse(made, status_code=201, headers={"Location": made["@iot.selfLink"]})
    return await _answer(request, make)


@router.post(PATH + "/{calibration_id}/apply", summary="Make a calibration the active one")
async def apply_route(calibration_id: str, request: Request) -> Response:
    """``{"recompute": true}`` recomputes every calibrated value with this version."""
    async def make() -> Response:
        if not calibration_id.isdigit():
            raise BadRequest(f"{calibration_id!r} is not a calibration id (a positive whole number).")
        raw = await request.body()
        body: Any = {}
        if raw.strip():
            body, _ = await _read_json(request, BODY_LIMIT)
        if not isinstance(body, dict) or set(body) - {"recompute"}:
            raise BadRequest("The body is optional: {\"recompute\": true|false}.")
        recompute = _flag(body, "recompute", False)

        def work(session: Any, root: str) -> dict[str, Any]:
            return service.calibration_json(
                service.apply_calibration(session, int(calibration_id), recompute=recompute, base_url=root), root)
        return JSONResponse(_run(request, work))
    return await _answer(request, make)
