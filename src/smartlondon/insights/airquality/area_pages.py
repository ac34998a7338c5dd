""""Air quality where you are": find an area by name, then its latest estimates, health advice and last 48 hours.

* ``/insights/airquality/my-area``: a form (a place name, or a borough from a list). A name is looked
  up with the places register's name search (boroughs, MSOAs, wards, LSOAs, stations, air quality
  sites); a place that is not a borough or LSOA resolves to the LSOA containing it. No match, or
  several equally good ones, re-render the form with a GOV.UK error summary (and the choices).
  A confident match redirects (303) to the area's page. JSON twin: ``.json`` (a match is returned,
  not redirected to).
* ``/insights/airquality/my-area/{code}`` (an LSOA or borough GSS code): per species the latest
  estimate, its 90% range, the DAQI index and band (PM2.5 and PM10 on the 24-hour running mean of
  the estimates, as the DAQI defines them), the advice for everyone and for people at risk, a
  server-rendered SVG chart of the last 48 hours with a table of the same values, and how sure we
  are in plain words. JSON twin: ``.json``. An unknown code is a 404 page with the form.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from ...core.web import Context, CtxDep, render, wants_json
from . import daqi
from .presentation import (SPECIES_LONG, SPECIES_NAMES, Z90, area_names, borough_names, hour_label, index_colour,
                           iso, nowcast_module, short_hour, staleness, utc)

router = APIRouter(tags=["pages"], include_in_schema=False)

CODE = re.compile(r"^E0[19]\d{6}$")
#: the kinds of place the form looks up by name
PLACE_KINDS = ("borough", "msoa", "ward", "lsoa", "station", "aq-site")
KIND_LABELS = {"borough": "Borough", "msoa": "MSOA (neighbourhood)", "ward": "Ward", "lsoa": "LSOA (small area)",
               "station": "Station", "aq-site": "Air quality monitoring site"}
MAX_CHOICES = 8
HOURS = 48


# --- finding the area ----------------------------------------------------------------------------

def _index(ctx: Context) -> Any:
    """The places register's name index (shared with /places/search: one cache per app)."""
    from ...places.match_api import index_of

    return index_of(ctx)


def _gss(record: Any) -> str:
    codes = record.identifiers.get("gss") or ()
    return codes[0] if codes else record.uid.rsplit(":", 1)[-1]


def area_of(ctx: Context, index: Any, record: Any) -> str | None:
    """The LSOA or borough GSS code a place stands for: itself, else the LSOA it is in, else its borough."""
    if record.kind in ("lsoa", "borough"):
        return _gss(record)
    lsoa = record.areas.get("lsoa")
    if lsoa:
        return lsoa.rsplit(":", 1)[-1]
    if record.lon is not None and record.lat is not None:
        from ...places import spatial  # the register's point-in-area lookup

        for _id, uid, kind, _name in spatial.areas_at(ctx.session, record.lon, record.lat, kinds=("lsoa",)):
            if kind == "lsoa":
                found = index.record(uid)
                return _gss(found) if found is not None else uid.rsplit(":", 1)[-1]
    borough = record.areas.get("borough")
    return borough.rsplit(":", 1)[-1] if borough else None


def _choice(index: Any, record: Any) -> dict[str, Any]:
    borough = index.record(record.areas.get("borough", "")) if record.areas.get("borough") else None
    where = borough.name if borough is not None and borough.uid != record.uid else ""
    return {"uid": record.uid, "name": record.name, "kind": record.kind, "kindLabel": KIND_LABELS.get(record.kind, record.kind),
            "borough": where}


def _borough_items(selected: str = "") -> list[dict[str, Any]]:
    names = borough_names()
    items = [{"value": "", "text": "Choose a borough"}]
    items += [{"value": code, "text": name, "selected": code == selected}
              for code, name in sorted(names.items(), key=lambda kv: kv[1])]
    return items


def _form_page(ctx: Context, *, q: str = "", borough: str = "", errors: dict[str, str] | None = None,
               choices: list[dict[str, Any]] | None = None, message: str | None = None, status: int = 200) -> Response:
    data = {"query": q or None, "borough": borough or None, "errors": errors or {}, "choices": choices or [],
            "message": message,
            "links": {"self": f"{ctx.base_url}/insights/airquality/my-area", "map": f"{ctx.base_url}/insights/airquality"}}
    page = {"form": data, "borough_items": _borough_items(borough)}
    return render(ctx, "insights/airquality-my-area.html", page, data, status=status)


def _found(ctx: Context, code: str, via: dict[str, Any] | None) -> Response:
    href = f"/insights/airquality/my-area/{code}"
    if wants_json(ctx.request):
        return JSONResponse({"code": code, "place": via, "href": ctx.base_url + href})
    return RedirectResponse(href, status_code=303)


@router.get("/insights/airquality/my-area")
def my_area_form(request: Request, ctx: Context = CtxDep) -> Response:
    """The form: a place name, a choice among several places, or a borough from a list."""
    params = request.query_params
    q = (params.get("q") or "").strip()
    uid = (params.get("place") or "").strip()
    borough = (params.get("borough") or "").strip()
    if borough:
        if borough not in borough_names():
            return _form_page(ctx, q=q, borough="", status=422,
                              errors={"borough": "Choose a London borough from the list."})
        return _found(ctx, borough, None)
    if not (q or uid):
        if "q" in params:
            return _form_page(ctx, status=422, errors={"q": "Enter a place name, such as Camden, Brixton or Euston."})
        return _form_page(ctx)
    index = _index(ctx)
    if uid:
        record = index.record(uid)
        if record is None:
            return _form_page(ctx, q=q, status=422, errors={"q": f"The place {uid} is not in the register. "
                                                                 "Search for it by name."})
        code = area_of(ctx, index, record)
        if code is None:
            return _form_page(ctx, q=q, status=422, errors={"q": f"{record.name} is not inside a London LSOA "
                                                                 "or borough. Try a nearby place."})
        return _found(ctx, code, _choice(index, record))
    found = index.search(q, kind=[k for k in PLACE_KINDS if k in index.kinds] or None, limit=MAX_CHOICES)
    if not found:
        return _form_page(ctx, q=q, status=422, errors={
            "q": f"No place in London matches ‘{q}’. Check the spelling, try a borough, area, street-level "
                 "landmark or station name, or choose a borough from the list."})
    if found[0].match or len(found) == 1:
        code = area_of(ctx, index, found[0].record)
        if code is not None:
            return _found(ctx, code, _choice(index, found[0].record))
    choices = [_choice(index, c.record) for c in found]
    return _form_page(ctx, q=q, status=422, choices=choices, errors={
        "place": f"‘{q}’ matches {len(choices)} places. Choose the one you mean."})


# --- the area's page -----------------------------------------------------------------------------

def _sure(species: str, mean: float, lower: float, upper: float) -> str:
    """How sure we are, in plain words."""
    low_band = daqi.describe(species, lower)["band"]
    high_band = daqi.describe(species, upper)["band"]
    text = (f"We think the level is most likely about {mean:.0f} µg/m³, and 9 times in 10 the true hourly level "
            f"should be between {lower:.0f} and {upper:.0f} µg/m³. ")
    if low_band == high_band:
        text += f"That whole range is in the {low_band} band, so we are confident about the band."
    else:
        text += (f"That range runs from the {low_band} band into the {high_band} band, so treat the band "
                 "as a guide.")
    if upper - lower > max(mean, 1.0) * 1.5:
        text += " The range is wide compared with the level itself: this estimate is rough."
    return text


def _running_mean_text(have: int, hours: int) -> str:
    """What a PM index is computed from, saying so when fewer than 18 of the 24 hours have an estimate."""
    text = f"the mean of the last {have} hourly estimates (the DAQI uses the {hours}-hour running mean)"
    if have < hours * 3 // 4:
        text += f"; only {have} of those {hours} hours have an estimate, so treat the index as a guide"
    return text


def chart(points: list[dict[str, Any]], start: datetime, end: datetime, width: int = 640,
          height: int = 220) -> dict[str, Any]:
    """The SVG geometry of a 48-hour chart: the 90% range as a shaded band, the estimate as a line."""
    left, right, top, bottom = 44, 12, 12, 30
    if not points:
        return {"width": width, "height": height, "bands": [], "lines": [], "ticks": [], "xticks": []}
    high = max(p["upper"] for p in points) * 1.05 or 1.0
    t0, t1 = utc(start).timestamp(), utc(end).timestamp()
    span = max(t1 - t0, 3600.0)

    def x(ts: float) -> float:
        return round(left + (ts - t0) / span * (width - left - right), 1)

    def y(v: float) -> float:
        return round(top + (high - v) / high * (height - top - bottom), 1)

    segments: list[list[dict[str, Any]]] = [[]]
    previous = None
    for p in points:
        ts = p["_ts"]
        if previous is not None and ts - previous > 1.5 * 3600 and segments[-1]:
            segments.append([])  # a missing hour is a gap in the line
        segments[-1].append(p)
        previous = ts
    bands, lines, dots = [], [], []
    for seg in segments:
        if not seg:
            continue
        upper = [f"{x(p['_ts'])},{y(p['upper'])}" for p in seg]
        lower = [f"{x(p['_ts'])},{y(p['lower'])}" for p in reversed(seg)]
        if len(seg) > 1:
            bands.append(" ".join(upper + lower))
            lines.append(" ".join(f"{x(p['_ts'])},{y(p['mean'])}" for p in seg))
        else:
            dots.append({"x": x(seg[0]["_ts"]), "y": y(seg[0]["mean"])})
    ticks = [{"y": y(high * k / 4), "label": f"{high * k / 4:.0f}"} for k in range(5)]
    xticks = []
    tick = utc(start).replace(minute=0, second=0, microsecond=0)
    tick += timedelta(hours=(12 - tick.hour % 12) % 12)
    while tick.timestamp() <= t1:
        xticks.append({"x": x(tick.timestamp()), "label": f"{tick.day} {tick:%b}" if tick.hour == 0 else f"{tick:%H:%M}"})
        tick += timedelta(hours=12)
    return {"width": width, "height": height, "left": left, "right": width - right, "top": top,
            "bottom": height - bottom, "bands": bands, "lines": lines, "dots": dots, "ticks": ticks, "xticks": xticks}


def species_view(ctx: Context, species: str, code: str) -> dict[str, Any]:
    """One species at one area: the latest estimate, its DAQI index and advice, and the last 48 hours."""
    nowcast = nowcast_module()
    out: dict[str, Any] = {"species": species, "speciesName": SPECIES_NAMES[species], "speciesLong": SPECIES_LONG[species],
                           "averaging": daqi.AVERAGING[species], "current": None, "series": []}
    run = nowcast.latest_run(ctx.session, species)
    if run is None:
        return out
    hour = utc(run.hour)
    series = nowcast.area_series(ctx.session, species, code, hours=HOURS, until=hour)
    points = []
    for when, mean, std in series:
        when = utc(when)
        lower, upper = max(0.0, mean - Z90 * std), mean + Z90 * std
        points.append({"hour": iso(when), "label": short_hour(when), "mean": round(float(mean), 1),
                       "std": round(float(std), 1), "lower": round(float(lower), 1), "upper": round(float(upper), 1),
                       "_ts": when.timestamp(), "_raw": float(mean)})
    out["series"] = points
    if not points or points[-1]["hour"] != iso(hour):
        return out
    latest = points[-1]
    hours = daqi.AVERAGING_HOURS[species]
    window = [p for p in points if p["_ts"] > hour.timestamp() - hours * 3600]
    basis = sum(p["_raw"] for p in window) / len(window)
    described = daqi.describe(species, basis)
    described["mapColour"] = index_colour(species, described)
    out["current"] = {
        "hour": iso(hour), "hourLabel": hour_label(hour), "staleness": staleness(hour),
        "mean": latest["mean"], "std": latest["std"], "lower": latest["lower"], "upper": latest["upper"],
        "daqiBasis": {"value": round(basis, 1), "hours": len(window), "of": hours,
                      "what": "the hour's estimate" if hours == 1 else _running_mean_text(len(window), hours)},
        "daqi": described, "sure": _sure(species, latest["mean"], latest["lower"], latest["upper"]),
        "method": run.method, "runId": run.id}
    start = hour - timedelta(hours=HOURS - 1)
    out["chart"] = chart(points, start, hour)
    return out


def area_view(ctx: Context, code: str) -> dict[str, Any] | None:
    """Every species at one LSOA or borough; None when the code is not an area we estimate."""
    if not CODE.match(code):
        return None
    kind = "borough" if code.startswith("E09") else "lsoa"
    name = area_names(ctx.session, [code]).get(code, code)
    species = [species_view(ctx, key, code) for key in SPECIES_NAMES]
    if not any(s["series"] for s in species) and name == code:
        return None
    borough = None
    if kind == "lsoa":
        from ...places.links import place_by_identifier

        place = place_by_identifier(ctx.session, "gss", code)
        if place is not None:
            index = _index(ctx)
            record = index.record(place.uid)
            if record is not None and record.areas.get("borough"):
                borough_code = record.areas["borough"].rsplit(":", 1)[-1]
                borough = {"code": borough_code, "name": area_names(ctx.session, [borough_code])[borough_code],
                           "href": f"/insights/airquality/my-area/{borough_code}"}
    base = ctx.base_url
    for s in species:
        for p in s["series"]:
            p.pop("_ts", None)
            p.pop("_raw", None)
    return {"code": code, "kind": kind, "name": name, "borough": borough, "species": species,
            "advice": [{"band": b.name, "indexes": list(b.indexes), "colour": b.colour, "general": b.general,
                        "atRisk": b.at_risk} for b in daqi.BANDS],
            "links": {"self": f"{base}/insights/airquality/my-area/{code}",
                      "json": f"{base}/insights/airquality/my-area/{code}.json",
                      "place": f"{base}/places/ldn:{kind}:{code}",
                      "map": f"{base}/insights/airquality", "modelCard": f"{base}/insights/airquality/model",
                      **{f"api{k}": f"{base}/api/airquality/nowcast/{k}/areas/{code}?hours={HOURS}" for k in SPECIES_NAMES}}}


@router.get("/insights/airquality/my-area/{code}")
def my_area_page(code: str, request: Request, ctx: Context = CtxDep) -> Response:
    """An area's latest estimates, what they mean for health, and the last 48 hours."""
    view = area_view(ctx, code.strip().upper())
    if view is None:
        message = (f"We have no air quality estimate for ‘{code}’. Use an LSOA code (like E01000001) or a "
                   "borough code (like E09000007), or find your area by name below.")
        return _form_page(ctx, status=404, message=message)
    data = {**view, "species": [{k: v for k, v in s.items() if k != "chart"} for s in view["species"]]}
    return render(ctx, "insights/airquality-area.html", {"area": view}, data)
