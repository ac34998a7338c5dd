"""The Reconciliation Service API (version 0.2, as OpenRefine speaks it) over the name matcher.

- ``GET /places/reconcile``: the service manifest (name, identifier and schema spaces, the kinds
  of place as default types, view, preview and suggest services);
- ``GET`` or ``POST /places/reconcile`` with ``queries`` (a form field or query parameter holding
  a JSON object, or a JSON body ``{"queries": {...}}``): the candidates for each query key;
- a query: ``{"query": "Kings X", "type": "station", "limit": 3, "properties": [{"pid":
  "borough", "v": "Camden"}]}``. Properties: ``borough`` / ``msoa`` / ``lsoa`` / ``ward`` (a name
  or GSS code; candidates in that area rank higher), ``lon`` and ``lat`` (candidates near the point
  rank higher);
- ``callback`` on a GET wraps the JSON in a JSONP call;
- ``/places/reconcile/preview?id=`` (a small HTML card) and ``/places/reconcile/suggest/entity``;
- data extension: ``extend`` (``{"ids": [...], "properties": [{"id": "borough"}]}``) instead of
  ``queries`` returns each place's GSS code, NLC, LAQN code, containing areas, kind and coordinates;
  ``/places/reconcile/properties?type=`` proposes the properties.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from .matching import AREA_KINDS, MatchIndex
from ..core.errors import BadRequest

MAX_QUERIES = 1000
MAX_LIMIT = 100
DEFAULT_LIMIT = 5
KIND_LABELS = {"borough": "Borough", "ward": "Ward", "msoa": "MSOA (middle layer super output area)",
               "lsoa": "LSOA (lower layer super output area)", "station": "Station", "aq-site": "Air quality site"}
_CALLBACK = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$.]{0,99}$")


def kind_label(kind: str) -> str:
    """A human label for a kind of place."""
    return KIND_LABELS.get(kind, kind.replace("-", " ").capitalize())


def manifest(base_url: str, index: MatchIndex, service_name: str = "London places register") -> dict[str, Any]:
    """The service manifest OpenRefine reads when the service is added."""
    return {
        "versions": ["0.2"],
        "name": service_name,
        "identifierSpace": f"{base_url}/places/",
        "schemaSpace": f"{base_url}/places/kinds",
        "defaultTypes": [{"id": k, "name": kind_label(k)} for k in sorted(index.kinds)],
        "view": {"url": f"{base_url}/places/{{{{id}}}}"},
        "preview": {"url": f"{base_url}/places/reconcile/preview?id={{{{id}}}}", "width": 400, "height": 160},
        "suggest": {"entity": {"service_url": base_url, "service_path": "/places/reconcile/suggest/entity"}},
        "extend": {"propose_properties": {"service_url": base_url, "service_path": "/places/reconcile/properties"},
                   "property_settings": []},
    }


# --- data extension ("Add columns from reconciled values") --------------------------------------------

# id -> (label, how the value is read from a record): an identifier scheme, a containing area, or a field
EXTEND_PROPERTIES: dict[str, tuple[str, str]] = {
    "name": ("Preferred name", "field"), "kind": ("Kind of place", "field"),
    "gss": ("GSS code (ONS)", "scheme"), "nlc": ("TfL NLC (station code)", "scheme"),
    "laqn": ("LAQN site code", "scheme"), "naptan": ("NaPTAN code", "scheme"), "uprn": ("UPRN", "scheme"),
    "usrn": ("USRN", "scheme"), "osm": ("OpenStreetMap id", "scheme"),
    "borough": ("Borough", "area"), "ward": ("Ward", "area"), "msoa": ("MSOA", "area"), "lsoa": ("LSOA", "area"),
    "lon": ("Longitude (WGS84)", "field"), "lat": ("Latitude (WGS84)", "field"),
    "coordinates": ("Coordinates (lat,lon)", "field"),
}
MAX_EXTEND_IDS = 1000


def propose_properties(index: MatchIndex, type_: str | None, limit: int | None = None) -> dict[str, Any]:
    """The properties a place of ``type_`` can be extended with (the propose-properties service's shape)."""
    if type_ and type_ not in index.kinds:
        raise BadRequest(f"No places are of type {type_!r}. Types are: {', '.join(sorted(index.kinds))}.",
                         {"type": "Unknown type."})
    props = [{"id": pid, "name": label} for pid, (label, _) in EXTEND_PROPERTIES.items()]
    if limit is not None:
        if limit < 1:
            raise BadRequest("'limit' must be a whole number of at least 1.", {"limit": "Bad limit."})
        props = props[:limit]
    return {"type": type_ or "", "properties": props, **({"limit": limit} if limit is not None else {})}


def parse_extend(raw: Any) -> dict[str, Any]:
    """The data extension request (``{"ids": [...], "properties": [{"id": ...}]}``); 400 with a message if bad."""
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise BadRequest(f"'extend' is not valid JSON: {exc}. Send an object like "
                             '{"ids": ["ldn:station:625"], "properties": [{"id": "borough"}]}.',
                             {"extend": "Not valid JSON."}) from exc
    if not isinstance(raw, dict):
        raise BadRequest("'extend' must be a JSON object like {\"ids\": [\"ldn:station:625\"], "
                         '"properties": [{"id": "borough"}]}.', {"extend": "Not an object."})
    ids, props = raw.get("ids"), raw.get("properties")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise BadRequest("'extend' needs 'ids': a list of place identifiers (ldn:...).", {"extend": "Bad ids."})
    if len(ids) > MAX_EXTEND_IDS:
        raise BadRequest(f"Send at most {MAX_EXTEND_IDS} ids per request (this one has {len(ids)}).",
                         {"extend": "Too many ids."})
    if not isinstance(props, list) or not props or not all(isinstance(p, dict) and isinstance(p.get("id"), str)
                                                           for p in props):
        raise BadRequest("'extend' needs 'properties': a non-empty list of {\"id\": ...} objects.",
                         {"extend": "Bad properties."})
    unknown = [p["id"] for p in props if p["id"] not in EXTEND_PROPERTIES]
    if unknown:
        raise BadRequest(f"Unknown propert{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}. "
                         f"Properties are: {', '.join(EXTEND_PROPERTIES)}.", {"extend": "Unknown property."})
    return {"ids": ids, "properties": [p["id"] for p in props]}


def extend(request: dict[str, Any], index: MatchIndex) -> dict[str, Any]:
    """The values of the requested properties for each id (the data extension response's shape)."""
    meta = []
    for pid in request["properties"]:
        label, how = EXTEND_PROPERTIES[pid]
        item: dict[str, Any] = {"id": pid, "name": label}
        if how == "area":
            item["type"] = {"id": pid, "name": kind_label(pid)}
        meta.append(item)
    rows: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for uid in request["ids"]:
        record = index.record(uid)
        rows[uid] = {pid: _values(record, pid, index) if record is not None else [] for pid in request["properties"]}
    return {"meta": meta, "rows": rows}


def _values(record: Any, pid: str, index: MatchIndex) -> list[dict[str, Any]]:
    how = EXTEND_PROPERTIES[pid][1]
    if how == "scheme":
        return [{"str": v} for v in record.identifiers.get(pid, ())]
    if how == "area":
        area_uid = record.uid if record.kind == pid else record.areas.get(pid)
        if not area_uid:
            return []
        area = index.record(area_uid)
        return [{"id": area_uid, "name": area.name if area else area_uid}]
    if pid == "name":
        return [{"str": record.name}]
    if pid == "kind":
        return [{"id": record.kind, "name": kind_label(record.kind)}]
    if record.lon is None or record.lat is None:
        return []
    if pid == "coordinates":
        return [{"str": f"{record.lat},{record.lon}"}]
    return [{"float": record.lon if pid == "lon" else record.lat}]


def parse_queries(raw: Any) -> dict[str, dict[str, Any]]:
    """The query batch from a JSON text or an already parsed object; 400 with a message if it is bad."""
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise BadRequest(f"'queries' is not valid JSON: {exc}. Send an object like "
                             '{"q0": {"query": "Kings Cross"}}.', {"queries": "Not valid JSON."}) from exc
    if not isinstance(raw, dict) or not raw:
        raise BadRequest('\'queries\' must be a non-empty JSON object like {"q0": {"query": "Kings Cross"}}.',
                         {"queries": "Not a JSON object of queries."})
    if len(raw) > MAX_QUERIES:
        raise BadRequest(f"Send at most {MAX_QUERIES} queries per request (this batch has {len(raw)}).",
                         {"queries": "Too many queries."})
    for key, query in raw.items():
        if not isinstance(query, dict) or not isinstance(query.get("query", ""), str):
            raise BadRequest(f"Query '{key}' must be an object with a text 'query', like {{\"query\": \"Bank\"}}.",
                             {key: "Not a query object."})
        limit = query.get("limit", DEFAULT_LIMIT)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise BadRequest(f"Query '{key}': 'limit' must be a whole number of at least 1.", {key: "Bad limit."})
        props = query.get("properties", [])
        if not isinstance(props, list) or not all(isinstance(p, dict) and "pid" in p and "v" in p for p in props):
            raise BadRequest(f"Query '{key}': 'properties' must be a list of {{\"pid\": ..., \"v\": ...}} objects.",
                             {key: "Bad properties."})
    return raw


def _types(query: dict[str, Any], index: MatchIndex, key: str) -> list[str] | None:
    value = query.get("type")
    if value in (None, "", []):
        return None
    kinds = [value] if isinstance(value, str) else value
    if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
        raise BadRequest(f"Query '{key}': 'type' must be a kind id or a list of them.", {key: "Bad type."})
    unknown = [k for k in kinds if k not in index.kinds]
    if unknown:
        raise BadRequest(f"Query '{key}': no places are of type {', '.join(repr(k) for k in unknown)}. Types are: "
                         f"{', '.join(sorted(index.kinds))}.", {key: "Unknown type."})
    return kinds


def _properties(query: dict[str, Any], index: MatchIndex, key: str) -> tuple[dict[str, str], tuple[float, float] | None]:
    """Areas to prefer and a point to be near, from the query's properties."""
    areas: dict[str, str] = {}
    coords: dict[str, float] = {}
    for prop in query.get("properties", []):
        pid = str(prop["pid"]).strip().lower()
        values = prop["v"] if isinstance(prop["v"], list) else [prop["v"]]
        value = values[0] if values else ""
        if isinstance(value, dict):  # {"id": ...} as OpenRefine sends reconciled cells
            value = value.get("id") or value.get("name") or ""
        if pid in ("lon", "lat", "longitude", "latitude"):
            try:
                coords[pid[:3]] = float(value)
            except (TypeError, ValueError) as exc:
                raise BadRequest(f"Query '{key}': property '{pid}' must be a number, not {value!r}.",
                                 {key: "Bad coordinate."}) from exc
            continue
        if pid not in AREA_KINDS:
            raise BadRequest(f"Query '{key}': unknown property '{pid}'. Properties are: "
                             f"{', '.join(AREA_KINDS)}, lon, lat.", {key: "Unknown property."})
        text = str(value).strip()
        if not text:
            continue
        found = [r for r in index.lookup_identifier(text) if r.kind == pid]
        if not found:  # a name, perhaps spelt differently: only a confident match counts
            best = index.search(text, kind=pid, limit=2)
            found = [best[0].record] if best and best[0].match else []
        if found:
            areas[pid] = found[0].uid
    near = (coords["lon"], coords["lat"]) if "lon" in coords and "lat" in coords else None
    return areas, near


def run_queries(queries: dict[str, dict[str, Any]], index: MatchIndex) -> dict[str, Any]:
    """The candidates for each query of a batch, in the protocol's shape."""
    out: dict[str, Any] = {}
    for key, query in queries.items():
        kinds = _types(query, index, key)
        areas, near = _properties(query, index, key)
        limit = min(int(query.get("limit", DEFAULT_LIMIT)), MAX_LIMIT)
        found = index.search(query.get("query", ""), kind=kinds, near=near, limit=limit,
                             prefer_areas=areas or None)
        out[key] = {"result": [
            {"id": c.record.uid, "name": c.record.name, "score": round(c.score, 1), "match": c.match,
             "type": [{"id": c.record.kind, "name": kind_label(c.record.kind)}],
             "description": _description(c.record, index)}
            for c in found]}
    return out


def _description(record: Any, index: MatchIndex) -> str:
    parts = [kind_label(record.kind)]
    borough = index.record(record.areas.get("borough", "")) if record.areas.get("borough") else None
    if borough is not None:
        parts.append(borough.name)
    return ", ".join(parts)


def suggest(index: MatchIndex, prefix: str, kind: str | None = None, limit: int = 10) -> dict[str, Any]:
    """Entity suggestions for a typed prefix (the suggest service's shape)."""
    found = index.search(prefix, kind=kind, limit=limit) if prefix.strip() else []
    return {"result": [{"id": c.record.uid, "name": c.record.name, "description": _description(c.record, index)}
                       for c in found]}


def preview_html(index: MatchIndex, uid: str, base_url: str) -> str:
    """A small HTML card about one place, for OpenRefine's preview pop-up."""
    record = index.record(uid)
    if record is None:
        from ..core.errors import NotFound

        raise NotFound(f"No place has the identifier '{uid}'.")
    rows = [("Identifier", record.uid), ("Kind", kind_label(record.kind))]
    for kind, area_uid in sorted(record.areas.items()):
        area = index.record(area_uid)
        rows.append((kind_label(kind), area.name if area else area_uid))
    for scheme, values in sorted(record.identifiers.items()):
        rows.append((scheme.upper(), ", ".join(values)))
    body = "".join(f"<tr><th scope=\"row\">{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(record.name)}"
            f"</title></head><body style=\"font-family: sans-serif; margin: 0.5em\"><h1 style=\"font-size: 1.2em\">"
            f"<a href=\"{html.escape(base_url)}/places/{html.escape(record.uid)}\" target=\"_blank\">"
            f"{html.escape(record.name)}</a></h1><table>{body}</table></body></html>")


def jsonp(callback: str, payload: Any) -> str:
    """``payload`` wrapped in a JSONP call; 400 if the callback is not a plain function name."""
    if not _CALLBACK.match(callback):
        raise BadRequest("'callback' must be a JavaScript function name.", {"callback": "Not a function name."})
    return f"/**/{callback}({json.dumps(payload)});"
