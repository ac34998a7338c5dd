"""Build the London Datastore demo's data files from the real open data in ``shared/data``.

Run ``python -m smartlondon.demo.prepare /work/shared/data src/smartlondon/demo/data``.
The output is deterministic (same input, same bytes), so regenerating it gives a clean diff.
"""

from __future__ import annotations

import csv
import gzip
import html
import io
import json
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterable, Sequence

Point = tuple[float, float]

# Douglas-Peucker tolerance, metres of British National Grid, applied before reprojecting.
SIMPLIFY_TOLERANCE_M = 20.0
COORD_DECIMALS = 5
AZ_BASE_URL = "https://data.london.gov.uk"

# Real public home pages; None where not known.
BOROUGH_URLS: dict[str, str | None] = {
    "E09000001": "https://www.cityoflondon.gov.uk/",
    "E09000002": "https://www.lbbd.gov.uk/",
    "E09000003": "https://www.barnet.gov.uk/",
    "E09000004": "https://www.bexley.gov.uk/",
    "E09000005": "https://www.brent.gov.uk/",
    "E09000006": "https://www.bromley.gov.uk/",
    "E09000007": "https://www.camden.gov.uk/",
    "E09000008": "https://www.croydon.gov.uk/",
    "E09000009": "https://www.ealing.gov.uk/",
    "E09000010": "https://www.enfield.gov.uk/",
    "E09000011": "https://www.royalgreenwich.gov.uk/",
    "E09000012": "https://hackney.gov.uk/",
    "E09000013": "https://www.lbhf.gov.uk/",
    "E09000014": "https://www.haringey.gov.uk/",
    "E09000015": "https://www.harrow.gov.uk/",
    "E09000016": "https://www.havering.gov.uk/",
    "E09000017": "https://www.hillingdon.gov.uk/",
    "E09000018": "https://www.hounslow.gov.uk/",
    "E09000019": "https://www.islington.gov.uk/",
    "E09000020": "https://www.rbkc.gov.uk/",
    "E09000021": "https://www.kingston.gov.uk/",
    "E09000022": "https://www.lambeth.gov.uk/",
    "E09000023": "https://lewisham.gov.uk/",
    "E09000024": "https://www.merton.gov.uk/",
    "E09000025": "https://www.newham.gov.uk/",
    "E09000026": "https://www.redbridge.gov.uk/",
    "E09000027": "https://www.richmond.gov.uk/",
    "E09000028": "https://www.southwark.gov.uk/",
    "E09000029": "https://www.sutton.gov.uk/",
    "E09000030": "https://www.towerhamlets.gov.uk/",
    "E09000031": "https://www.walthamforest.gov.uk/",
    "E09000032": "https://www.wandsworth.gov.uk/",
    "E09000033": "https://www.westminster.gov.uk/",
}

OTHER_ORGANISATIONS: list[dict[str, Any]] = [
    {"slug": "transport-for-london", "name": "Transport for London", "kind": "transport",
     "gss_code": None, "url": "https://tfl.gov.uk/"},
    {"slug": "metropolitan-police-service", "name": "Metropolitan Police Service", "kind": "police",
     "gss_code": None, "url": "https://www.met.police.uk/"},
    {"slug": "london-fire-brigade", "name": "London Fire Brigade", "kind": "fire",
     "gss_code": None, "url": "https://www.london-fire.gov.uk/"},
    {"slug": "london-ambulance-service", "name": "London Ambulance Service NHS Trust", "kind": "health",
     "gss_code": None, "url": "https://www.londonambulance.nhs.uk/"},
    {"slug": "nhs-england-london", "name": "NHS England London", "kind": "health",
     "gss_code": None, "url": "https://www.england.nhs.uk/london/"},
]

FUEL_POVERTY_COLUMNS = ["lsoa_code", "lsoa_name", "la_code", "la_name", "households",
                        "fuel_poor_households", "proportion_fuel_poor_pct"]

# Source headers of Table 3, in order, as the fuel poverty workbook names them.
FUEL_POVERTY_SOURCE_HEADER = ("LSOA Code", "LSOA Name", "LA Code", "LA Name", "Region", "Number of households",
                              "Number of households in fuel poverty", "Proportion of households fuel poor (%)")


def slugify(text: str) -> str:
    """A lowercase a-z0-9-and-hyphens slug of a text."""
    text = html.unescape(text).lower().replace("&", " and ").replace("'", "").replace("\u2019", "")
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


# --- geometry -------------------------------------------------------------------------------------


def _ring_area(ring: Sequence[Point]) -> float:
    """Signed area (shoelace) of a closed ring: positive when counter-clockwise."""
    return sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(ring, ring[1:])) / 2.0


def _segment_distance(p: Point, a: Point, b: Point) -> float:
    """Distance from p to the segment a-b."""
    (px, py), (ax, ay), (bx, by) = p, a, b
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    if length2 == 0.0:
        return ((px - ax) ** 2 + (py - ay) ** 2) ** 0.5
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / length2))
    cx, cy = ax + t * dx, ay + t * dy
    return ((px - cx) ** 2 + (py - cy) ** 2) ** 0.5


def douglas_peucker(points: Sequence[Point], tolerance: float) -> list[Point]:
    """Simplify an open polyline with Douglas-Peucker, always keeping both end points."""
    n = len(points)
    if n < 3:
        return list(points)
    keep = [False] * n
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        first, last = stack.pop()
        best, best_index = -1.0, -1
        for i in range(first + 1, last):
            d = _segment_distance(points[i], points[first], points[last])
            if d > best:
                best, best_index = d, i
        if best_index >= 0 and best > tolerance:
            keep[best_index] = True
            stack.append((first, best_index))
            stack.append((best_index, last))
    return [p for p, k in zip(points, keep) if k]


def _simplify_closed(ring: Sequence[Point], tolerance: float) -> list[Point]:
    """Simplify a closed ring (first == last) that shares no vertex with another ring."""
    start = ring[0]
    far = max(range(len(ring) - 1), key=lambda i: (ring[i][0] - start[0]) ** 2 + (ring[i][1] - start[1]) ** 2)
    if far == 0:
        return list(ring)
    first = douglas_peucker(ring[: far + 1], tolerance)
    second = douglas_peucker(ring[far:], tolerance)
    return first + second[1:]


def _crosses(p1: Point, p2: Point, p3: Point, p4: Point) -> bool:
    """Whether segments p1-p2 and p3-p4 properly cross (touching at an end point does not count)."""
    def side(a: Point, b: Point, c: Point) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return (side(p3, p4, p1) * side(p3, p4, p2) < 0) and (side(p1, p2, p3) * side(p1, p2, p4) < 0)


def _crossing_pairs(segments: Sequence[tuple[Point, Point]], cell: float = 500.0) -> set[tuple[int, int]]:
    """Index pairs of segments that properly cross, found through a uniform grid."""
    grid: dict[tuple[int, int], list[int]] = {}
    for i, (a, b) in enumerate(segments):
        for gx in range(int(min(a[0], b[0]) // cell), int(max(a[0], b[0]) // cell) + 1):
            for gy in range(int(min(a[1], b[1]) // cell), int(max(a[1], b[1]) // cell) + 1):
                grid.setdefault((gx, gy), []).append(i)
    pairs: set[tuple[int, int]] = set()
    for members in grid.values():
        for x, i in enumerate(members):
            for j in members[x + 1:]:
                if (i, j) not in pairs and _crosses(*segments[i], *segments[j]):
                    pairs.add((i, j))
    return pairs


class _TopologySimplifier:
    """Douglas-Peucker on the shared arcs of a set of rings, so neighbouring polygons stay gap-free.

    A vertex is a junction when it has different neighbours in the rings that use it (the end of a
    shared border, or a three-way meeting point); the rings are cut at junctions into arcs and each
    arc is simplified once, in a canonical direction, so both sides of a border get the same line.
    Arcs whose simplified lines cross another line, or that leave a ring with fewer than 4 points,
    are simplified again with half the tolerance until the result is clean.
    """

    def __init__(self, rings: Iterable[Sequence[Point]], tolerance: float) -> None:
        self.rings = [list(r) for r in rings]
        neighbours: dict[Point, set[frozenset[Point]]] = {}
        for ring in self.rings:
            body = ring[:-1]
            n = len(body)
            for i, p in enumerate(body):
                neighbours.setdefault(p, set()).add(frozenset((body[i - 1], body[(i + 1) % n])))
        self.tolerance: dict[tuple[tuple[Point, ...], bool], float] = {}
        self._done: dict[tuple[tuple[tuple[Point, ...], bool], float], list[Point]] = {}
        self.ring_arcs = [self._cut(ring, neighbours) for ring in self.rings]
        for arcs in self.ring_arcs:
            for key, _ in arcs:
                self.tolerance[key] = tolerance

    @staticmethod
    def _cut(ring: list[Point], neighbours: dict[Point, set[frozenset[Point]]]
             ) -> list[tuple[tuple[tuple[Point, ...], bool], bool]]:
        """The ring as a list of ((canonical arc, is_closed_ring), reversed) pieces."""
        body = ring[:-1]
        junctions = [i for i, p in enumerate(body) if len(neighbours[p]) > 1]
        if not junctions:
            return [((tuple(ring), True), False)]
        start = junctions[0]
        body = body[start:] + body[:start]
        cuts = [i - start for i in junctions] + [len(body)]
        body.append(body[0])
        pieces = []
        for a, b in zip(cuts, cuts[1:]):
            arc = tuple(body[a: b + 1])
            back = arc[::-1]
            pieces.append(((arc, False), False) if arc <= back else ((back, False), True))
        return pieces

    def _arc(self, key: tuple[tuple[Point, ...], bool]) -> list[Point]:
        """One arc simplified with its current tolerance (memoised)."""
        points, closed = key
        tolerance = self.tolerance[key]
        if (key, tolerance) not in self._done:
            self._done[key, tolerance] = (
                list(points) if tolerance <= 0
                else _simplify_closed(points, tolerance) if closed else douglas_peucker(points, tolerance))
        return self._done[key, tolerance]

    def simplify_all(self) -> list[list[Point]]:
        """Every ring simplified, in input order, without crossings and with at least 4 points each."""
        while True:
            rings: list[list[Point]] = []
            segments: list[tuple[Point, Point]] = []
            owners: list[tuple[tuple[Point, ...], bool]] = []
            refine: set[tuple[tuple[Point, ...], bool]] = set()
            for arcs in self.ring_arcs:
                ring: list[Point] = []
                for key, flipped in arcs:
                    simple = self._arc(key)
                    line = simple[::-1] if flipped else simple
                    ring.extend(line if not ring else line[1:])
                    segments.extend(zip(line, line[1:]))
                    owners.extend([key] * (len(line) - 1))
                if len(ring) < 4:
                    refine.update(key for key, _ in arcs)
                rings.append(ring)
            for i, j in _crossing_pairs(segments):
                refine.update((owners[i], owners[j]))
            refine = {key for key in refine if self.tolerance[key] > 0}
            if not refine:
                return rings
            for key in refine:
                self.tolerance[key] = self.tolerance[key] / 2 if self.tolerance[key] > 0.05 else 0.0


def _shape_rings(shape: Any) -> list[list[Point]]:
    """The rings of a shapefile polygon, each a closed list of (x, y)."""
    bounds = list(shape.parts) + [len(shape.points)]
    rings = []
    for a, b in zip(bounds, bounds[1:]):
        ring = [(float(x), float(y)) for x, y in shape.points[a:b]]
        if ring[0] != ring[-1]:
            ring.append(ring[0])
        rings.append(ring)
    return rings


def _point_in_ring(point: Point, ring: Sequence[Point]) -> bool:
    """Ray-casting point-in-polygon test for a closed ring."""
    x, y = point
    inside = False
    for (x1, y1), (x2, y2) in zip(ring, ring[1:]):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _polygons(rings: list[list[Point]]) -> list[list[list[Point]]]:
    """Group shapefile rings into polygons: clockwise rings are exteriors, the others holes."""
    exteriors = [r for r in rings if _ring_area(r) <= 0]
    holes = [r for r in rings if _ring_area(r) > 0]
    polygons = [[r] for r in exteriors]
    for hole in holes:
        owner = next((p for p in polygons if _point_in_ring(hole[0], p[0])), None)
        if owner is None:  # an orphan "hole" is really an exterior drawn the wrong way round
            polygons.append([hole])
        else:
            owner.append(hole)
    return polygons


def _oriented(ring: list[Point], counter_clockwise: bool) -> list[Point]:
    """The ring, reversed if needed so it winds the requested way."""
    return ring if (_ring_area(ring) > 0) == counter_clockwise else ring[::-1]


def _rounded_ring(ring: Sequence[Point]) -> list[list[float]]:
    """Round a lon/lat ring, dropping repeated points; fall back to the unrounded ring if it degenerates."""
    out: list[list[float]] = []
    for x, y in ring:
        p = [round(x, COORD_DECIMALS), round(y, COORD_DECIMALS)]
        if not out or out[-1] != p:
            out.append(p)
    if len(out) < 4:
        return [[x, y] for x, y in ring]
    return out


def build_boroughs(shared_data: Path) -> dict[str, Any]:
    """The 33 London local authorities as a simplified WGS84 RFC 7946 FeatureCollection."""
    import shapefile
    from pyproj import Transformer

    to_wgs84 = Transformer.from_crs("EPSG:27700", "EPSG:4326", always_xy=True)
    reader = shapefile.Reader(str(shared_data / "boundaries" / "London_Borough_Excluding_MHW"))
    items = [(sr.record.as_dict(), _shape_rings(sr.shape)) for sr in reader.iterShapeRecords()]
    simplified = iter(_TopologySimplifier([r for _, rings in items for r in rings], SIMPLIFY_TOLERANCE_M)
                      .simplify_all())
    items = [(record, [(ring, next(simplified)) for ring in rings]) for record, rings in items]

    def project(ring: Sequence[Point]) -> list[Point]:
        xs, ys = to_wgs84.transform([p[0] for p in ring], [p[1] for p in ring])
        return list(zip(xs, ys))

    features = []
    for record, rings in sorted(items, key=lambda item: item[0]["GSS_CODE"]):
        simple = {id(ring): small for ring, small in rings}
        polygons = []
        for polygon in _polygons([ring for ring, _ in rings]):
            out = []
            for index, ring in enumerate(polygon):
                lonlat = _oriented(project(simple[id(ring)]), counter_clockwise=index == 0)
                out.append(_rounded_ring(lonlat))
            polygons.append(out)
        full = [p for ring, _ in rings for p in project(ring)]
        bbox = [round(min(p[0] for p in full), COORD_DECIMALS), round(min(p[1] for p in full), COORD_DECIMALS),
                round(max(p[0] for p in full), COORD_DECIMALS), round(max(p[1] for p in full), COORD_DECIMALS)]
        geometry = ({"type": "Polygon", "coordinates": polygons[0]} if len(polygons) == 1
                    else {"type": "MultiPolygon", "coordinates": polygons})
        features.append({
            "type": "Feature",
            "id": record["GSS_CODE"],
            "bbox": bbox,
            "properties": {
                "name": record["NAME"].strip(),
                "gss_code": record["GSS_CODE"],
                "hectares": float(record["HECTARES"]),
                "inner_outer": "Inner London" if record["ONS_INNER"] == "T" else "Outer London",
            },
            "geometry": geometry,
        })
    return {"type": "FeatureCollection", "features": features}


# --- organisations ----------------------------------------------------------------------------------


def build_organisations(boroughs: dict[str, Any]) -> list[dict[str, Any]]:
    """The GLA, the 33 local authorities and the London-wide public services."""
    orgs: list[dict[str, Any]] = [{"slug": "greater-london-authority", "name": "Greater London Authority",
                                   "kind": "regional", "gss_code": None, "url": "https://www.london.gov.uk/"}]
    for feature in boroughs["features"]:
        props = feature["properties"]
        orgs.append({"slug": slugify(props["name"]), "name": props["name"], "kind": "local-authority",
                     "gss_code": props["gss_code"], "url": BOROUGH_URLS.get(props["gss_code"])})
    orgs.extend(dict(o) for o in OTHER_ORGANISATIONS)
    return orgs


# --- tables -------------------------------------------------------------------------------------------


def london_lsoa_codes(shared_data: Path) -> set[str]:
    """The 4,835 London LSOA (2011) codes of the GLA LSOA boundary file."""
    import shapefile

    reader = shapefile.Reader(str(shared_data / "boundaries" / "LSOA_2011_London_gen_MHW"))
    index = [f[0] for f in reader.fields[1:]].index("LSOA11CD")
    return {rec[index] for rec in reader.iterRecords()}


def _number(text: str) -> int | float | str:
    """A CSV cell as an int or float when it is a number (thousands separators allowed), else unchanged."""
    cleaned = text.replace(",", "").strip()
    if re.fullmatch(r"-?\d+", cleaned):
        return int(cleaned)
    if re.fullmatch(r"-?\d*\.\d+", cleaned):
        return float(cleaned)
    return text


def write_imd(shared_data: Path, out: Path, lsoas: set[str]) -> int:
    """Write the IMD 2019 File 1 rows of London LSOAs (numbers without thousands separators); returns the row count."""
    source = next((shared_data / "deprivation").glob("File_1_-_IMD2019_*.csv.gz"))
    count = 0
    with gzip.open(source, "rt", encoding="utf-8-sig", newline="") as fin, \
            out.open("w", encoding="utf-8", newline="") as fout:
        reader = csv.reader(fin)
        writer = csv.writer(fout, lineterminator="\n")
        writer.writerow(next(reader))
        for row in reader:
            if row and row[0] in lsoas:
                writer.writerow(row[:4] + [_number(v) for v in row[4:]])
                count += 1
    return count


def write_fuel_poverty(shared_data: Path, out: Path, lsoas: set[str]) -> int:
    """Write Table 3 (fuel poverty by LSOA, 2020) for London LSOAs with a clean header; returns the row count."""
    import openpyxl

    workbook = openpyxl.load_workbook(shared_data / "deprivation" / "sub-regional-fuel-poverty-2022-tables.xlsx",
                                      read_only=True, data_only=True)
    try:
        rows = workbook["Table 3"].iter_rows(values_only=True)
        for row in rows:
            if row and row[0] == FUEL_POVERTY_SOURCE_HEADER[0]:
                if tuple(row[:8]) != FUEL_POVERTY_SOURCE_HEADER:
                    raise ValueError(f"unexpected Table 3 header: {row!r}")
                break
        else:
            raise ValueError("Table 3 header row not found")
        count = 0
        with out.open("w", encoding="utf-8", newline="") as fout:
            writer = csv.writer(fout, lineterminator="\n")
            writer.writerow(FUEL_POVERTY_COLUMNS)
            for row in rows:
                if not row or row[0] not in lsoas:
                    continue
                code, name, la_code, la_name, _region, households, poor, share = row[:8]
                writer.writerow([code, name, la_code, la_name, int(households), int(poor), float(share)])
                count += 1
    finally:
        workbook.close()
    return count


def write_laqn_january(shared_data: Path, out: Path) -> int:
    """Write the January 2023 rows of the LAQN Q1 2023 hourly file, gzipped; returns the row count."""
    count = 0
    with gzip.open(shared_data / "air-quality" / "laqn-hourly-2023Q1.csv.gz", "rt", encoding="utf-8",
                   newline="") as fin, out.open("wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz, \
            io.TextIOWrapper(gz, encoding="utf-8", newline="") as fout:
        reader = csv.reader(fin)
        header = next(reader)
        column = header.index("measurement_date_gmt")
        writer = csv.writer(fout, lineterminator="\n")
        writer.writerow(header)
        for row in reader:
            if row[column].startswith("2023-01-"):
                writer.writerow(row)
                count += 1
    return count


# --- the 2010 Datastore A-Z -------------------------------------------------------------------------------


class _AZParser(HTMLParser):
    """Collects the dataset entries (h3 title link, date and categories, description) of the A-Z page."""

    BLOCK_TAGS = {"p", "td", "li", "br", "div", "tr", "h1", "h2", "h3", "h4"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.entries: list[dict[str, Any]] = []
        self._mode: str | None = None  # "title", "date", "category", "content"
        self._in_date = False
        self._text: list[str] = []
        self._blocks: list[str] = []

    def _flush_block(self) -> None:
        """End the current description paragraph."""
        text = normalise_space("".join(self._text))
        if text:
            self._blocks.append(text)
        self._text = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Track where in an entry the parser is."""
        attr = dict(attrs)
        classes = (attr.get("class") or "").split()
        if tag == "h3":
            self._finish_entry()
            self.entries.append({"title": "", "description": "", "categories": [], "publisher": None,
                                 "url": None, "date": None})
            self._mode = "title"
            self._text = []
        elif not self.entries:
            return
        elif tag == "a" and self._mode == "title" and attr.get("href"):
            href = attr["href"] or ""
            self.entries[-1]["url"] = href if href.startswith("http") else AZ_BASE_URL + href
        elif tag == "p" and "date" in classes:
            self._mode, self._in_date, self._text = "date", True, []
        elif tag == "a" and self._in_date:
            self._mode, self._text = "category", []
        elif tag == "div" and "content" in classes:
            self._mode, self._text, self._blocks = "content", [], []
        elif tag == "div" and self._mode == "content" and any(c.startswith("fivestar") for c in classes):
            self._flush_block()
            self.entries[-1]["description"] = "\n\n".join(self._blocks)
            self._mode = None
        elif self._mode == "content" and tag in self.BLOCK_TAGS:
            self._flush_block()

    def handle_endtag(self, tag: str) -> None:
        """Close titles, categories and date lines."""
        if not self.entries:
            return
        entry = self.entries[-1]
        if tag == "h3" and self._mode == "title":
            entry["title"] = normalise_space("".join(self._text))
            self._mode = None
        elif tag == "a" and self._mode == "category":
            name = normalise_space("".join(self._text))
            if name and name not in entry["categories"]:
                entry["categories"].append(name)
            self._mode, self._text = "date", []
        elif tag == "p" and self._in_date:
            if self._mode == "date" and not entry["date"]:
                entry["date"] = _month_year("".join(self._text))
            self._in_date, self._mode = False, None
        elif self._mode == "content" and tag in self.BLOCK_TAGS:
            self._flush_block()

    def handle_data(self, data: str) -> None:
        """Accumulate text of the part being read."""
        if self._mode == "date" and self.entries and not self.entries[-1]["date"]:
            self.entries[-1]["date"] = _month_year(data)
        elif self._mode in ("title", "category", "content"):
            self._text.append(data)

    def _finish_entry(self) -> None:
        """Store the description of the entry being read if the page ended it early."""
        if self._mode == "content" and self.entries:
            self._flush_block()
            self.entries[-1]["description"] = "\n\n".join(self._blocks)
        self._mode = None

    def close(self) -> None:
        """Finish the last entry."""
        super().close()
        self._finish_entry()


_MONTHS = {m: i for i, m in enumerate(["january", "february", "march", "april", "may", "june", "july", "august",
                                         "september", "october", "november", "december"], start=1)}


def _month_year(text: str) -> str | None:
    """'FEBRUARY 2010' as '2010-02', else None."""
    match = re.search(r"([A-Za-z]+)\s+(\d{4})", text)
    if match and match.group(1).lower() in _MONTHS:
        return f"{match.group(2)}-{_MONTHS[match.group(1).lower()]:02d}"
    return None


def normalise_space(text: str) -> str:
    """Collapse runs of whitespace (non-breaking spaces included) to single spaces and trim."""
    return re.sub(r"\s+", " ", text.replace("\xa0", " ")).strip()


def parse_datastore_az(page: str) -> list[dict[str, Any]]:
    """The dataset entries of the 2010 London Datastore A-Z page."""
    parser = _AZParser()
    parser.feed(page)
    parser.close()
    return [e for e in parser.entries if e["title"]]


# --- README ---------------------------------------------------------------------------------------------

README = """\
# Demo data

The demo catalogue's data files: real open data about London, converted and trimmed from the
project's shared data set (`shared/data`, see its README). Regenerate them all with

    python -m smartlondon.demo.prepare /work/shared/data src/smartlondon/demo/data

(`prepare.py` is deterministic, so a rerun on the same input writes identical files.) `plan.py`
turns these files into the demo catalogue's dataset descriptions.

| file | what it is | how it was made | source and licence |
|---|---|---|---|
| `boroughs.geojson` | the 33 London local authorities (32 boroughs + City of London), {n_boroughs} features; properties `name`, `gss_code`, `hectares`, `inner_outer`; each feature has a `bbox` (of the unsimplified boundary) | `boundaries/London_Borough_Excluding_MHW.shp` (EPSG:27700) simplified with a topology-preserving Douglas-Peucker ({tolerance:g} m, shared borders simplified once so neighbours stay gap-free), reprojected to WGS84, rounded to 5 decimals, exterior rings counter-clockwise (RFC 7946) | GLA statistical GIS boundary files. Contains National Statistics data and OS data, Crown copyright and database right. Open Government Licence v3 |
| `organisations.json` | {n_orgs} organisations of London government: the GLA, the 33 local authorities (GSS codes and names from the boundary file) and five London-wide services; `slug`, `name`, `kind`, `gss_code`, `url` | hand-written list plus the boundary file | names and codes as above; home page addresses are public facts |
| `laqn-sites.csv` | London Air Quality Network site list (code, name, borough, site type, opened/closed, position). Note: in this file `@Latitude`/`@Longitude` are the WGS84 degrees; `@LatitudeWGS84`/`@LongitudeWGS84` actually hold Web Mercator metres | copy of `air-quality/laqn-sites.csv` | LAQN, Environmental Research Group, Imperial College London (formerly King's College London). Open Government Licence v2 |
| `laqn-hourly-2023-01.csv.gz` | LAQN hourly measurements for January 2023, {n_laqn:,} rows, long format `site_code,species_code,measurement_date_gmt,value` (µg/m3; CO mg/m3; GMT, start of the hour; empty value = no valid reading). As in the source: there are no rows for 31 January (the quarter's file stops at 23:00 on the 30th of every month), every GR8 PM10 and HG1 NO2 hour appears twice (HG1 with two different values), and a few small negative readings occur | the January rows of `air-quality/laqn-hourly-2023Q1.csv.gz`, unchanged, gzip | as above (Open Government Licence v2) |
| `tfl-stations-2022.csv` | {n_stations} TfL rail stations: NLC code, name, easting/northing, lines, network, zone, lon (`x`)/lat (`y`). NLC 3186 is used by two stations (Headstone Lane and Hayes and Harlington) | copy of `transport/tfl-stations-2022.csv` | Transport for London open data. Powered by TfL Open Data; contains OS data, Crown copyright |
| `tfl-station-entries-exits-2007-2021.csv` | annual entries + exits per station, 2007 to 2021, keyed by NLC (stored as a decimal, e.g. `500.0`), with a leading unnamed index column | copy of `transport/tfl-station-annual-entries-exits-2007-2021.csv` | as above |
| `imd2019-london-lsoa.csv` | English Indices of Deprivation 2019, Index of Multiple Deprivation rank and decile (1 = most deprived in England) for the {n_imd:,} London LSOAs (2011) | the London rows of `deprivation/File_1_-_IMD2019_Index_of_Multiple_Deprivation.csv.gz` (London = LSOA codes of `boundaries/LSOA_2011_London_gen_MHW.dbf`); thousands separators removed from the ranks, byte order mark dropped | Ministry of Housing, Communities and Local Government, Open Government Licence v3 |
| `fuel-poverty-2020-london-lsoa.csv` | fuel poverty (LILEE) in 2020 for the {n_fuel:,} London LSOAs: `lsoa_code, lsoa_name, la_code, la_name, households, fuel_poor_households, proportion_fuel_poor_pct` (a percentage, 0-100) | Table 3 of `deprivation/sub-regional-fuel-poverty-2022-tables.xlsx`, London LSOAs only (the constant Region column dropped) | Department for Business, Energy and Industrial Strategy, Open Government Licence v3 |
| `datastore-a-z-2010.json` | the {n_az} dataset entries of the original London Datastore "datasets A-Z" page (2010): `title`, `description`, `categories`, `publisher` (never given on that page, so null), `url` (the entry's 2010 address on data.london.gov.uk), `date` (month listed, `YYYY-MM`) | parsed from `catalogue-fixtures/london-datastore-a-z-2010.html.gz` with `html.parser`: entities decoded, whitespace normalised, paragraphs separated by a blank line | Greater London Authority, London Datastore |

When you reuse these files, keep the attribution in the last column with them.
"""


def prepare(shared_data: Path, out_dir: Path, organisations_file: Path | None = None) -> None:
    """Write the demo data files (see the README written alongside) from shared_data into out_dir.

    The organisations go to the platform's reference list (``core/organisations.json``), which
    every installation seeds from and the demo also publishes.
    """
    from ..core.reference import ORGANISATIONS_FILE

    shared_data, out_dir = Path(shared_data), Path(out_dir)
    organisations_file = Path(organisations_file or ORGANISATIONS_FILE)
    out_dir.mkdir(parents=True, exist_ok=True)

    boroughs = build_boroughs(shared_data)
    (out_dir / "boroughs.geojson").write_text(
        json.dumps(boroughs, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")

    organisations = build_organisations(boroughs)
    organisations_file.write_text(
        json.dumps(organisations, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    shutil.copyfile(shared_data / "air-quality" / "laqn-sites.csv", out_dir / "laqn-sites.csv")
    n_laqn = write_laqn_january(shared_data, out_dir / "laqn-hourly-2023-01.csv.gz")
    shutil.copyfile(shared_data / "transport" / "tfl-stations-2022.csv", out_dir / "tfl-stations-2022.csv")
    shutil.copyfile(shared_data / "transport" / "tfl-station-annual-entries-exits-2007-2021.csv",
                    out_dir / "tfl-station-entries-exits-2007-2021.csv")

    lsoas = london_lsoa_codes(shared_data)
    n_imd = write_imd(shared_data, out_dir / "imd2019-london-lsoa.csv", lsoas)
    n_fuel = write_fuel_poverty(shared_data, out_dir / "fuel-poverty-2020-london-lsoa.csv", lsoas)

    with gzip.open(shared_data / "catalogue-fixtures" / "london-datastore-a-z-2010.html.gz", "rt",
                   encoding="utf-8") as f:
        entries = parse_datastore_az(f.read())
    (out_dir / "datastore-a-z-2010.json").write_text(
        json.dumps(entries, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    with (out_dir / "tfl-stations-2022.csv").open(encoding="utf-8", newline="") as f:
        n_stations = sum(1 for _ in csv.DictReader(f))
    (out_dir / "README.md").write_text(README.format(
        n_boroughs=len(boroughs["features"]), tolerance=SIMPLIFY_TOLERANCE_M, n_orgs=len(organisations),
        n_laqn=n_laqn, n_stations=n_stations, n_imd=n_imd, n_fuel=n_fuel, n_az=len(entries)), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: prepare SHARED_DATA OUT_DIR."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m smartlondon.demo.prepare SHARED_DATA OUT_DIR", file=sys.stderr)
        return 2
    prepare(Path(args[0]), Path(args[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
