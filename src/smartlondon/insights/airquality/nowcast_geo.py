"""Where the nowcast predicts: the 100 m grid over Greater London, the LSOA points, and the map image.

* ``Geography``: the 33 boroughs (footprints, British National Grid) and every LSOA's representative
  point, read from the places register (``place`` kinds ``borough`` and ``lsoa``) or, when the register
  holds none, from the bundled boundary files the places importer loads in the demo.
* ``Frame``: a regular grid of ``cell`` metre squares covering the boroughs; ``borough[i, j]`` is the
  index of the borough holding the centre of cell (row ``i`` from the south, column ``j`` from the
  west), -1 outside London. Built once per geography and cell size, cached as ``.npz``.
* ``render_png``: a grid layer as a PNG regular in longitude/latitude (for a Leaflet ``imageOverlay``),
  transparent outside London, coloured by level on a sequential scale finer than the DAQI (mean) or by a sequential scale (std).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import shape
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import daqi

PLACES_DATA = Path(__file__).resolve().parents[2] / "places" / "data"
TO_BNG = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True)
TO_WGS84 = Transformer.from_crs("EPSG:27700", "EPSG:4326", always_xy=True)

#: the DAQI's conventional colour of each index 1..10 (UK-AIR), within the four bands of ``daqi.BANDS``
#: (the tables' swatches)
INDEX_COLOURS = ("#9cff9c", "#31ff00", "#31cf00", "#ffff00", "#ffcf00", "#ff9a00", "#ff6464", "#ff0000",
                 "#990000", "#ce30ff")
#: the level layer: upper bounds (µg/m³) of each colour of a sequential scale, per species. Finer than the
#: DAQI, whose index 1 alone covers nearly every hour of London's NO2 (0-67 µg/m³), so a map coloured by
#: index would be one colour; each legend label says which DAQI indexes its range falls in.
LEVEL_EDGES = {"NO2": (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 85.0, 100.0, 135.0),
               "PM25": (2.5, 5.0, 7.5, 10.0, 12.5, 15.0, 20.0, 25.0, 35.0, 50.0),
               "PM10": (5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 75.0, 100.0)}
#: changes whenever the images' colours do (cached images carry it in their names)
COLOURS_VERSION = 2
#: light (clean) to dark (polluted): ColorBrewer's YlOrRd, extended with two purples
LEVEL_COLOURS = ("#ffffcc", "#ffeda0", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#bd0026",
                 "#800026", "#5e0040", "#3f007d")
#: the uncertainty layer: upper bounds (µg/m³) of each colour of a sequential scale (viridis, light = sure)
STD_EDGES = (2.0, 4.0, 6.0, 8.0, 10.0, 15.0)
STD_COLOURS = ("#fde725", "#90d743", "#35b779", "#21918c", "#31688e", "#443983", "#440154")


@dataclass
class Geography:
    """Boroughs (GSS code, name, BNG footprint) and LSOA points (GSS code, BNG easting/northing)."""

    borough_codes: list[str]
    borough_names: list[str]
    borough_shapes: list[Any]
    lsoa_codes: list[str]
    lsoa_easting: np.ndarray
    lsoa_northing: np.ndarray
    source: str

    @property
    def key(self) -> str:
        """A fingerprint of the borough footprints (names the cached grid frames)."""
        digest = hashlib.sha1()
        for code, geom in zip(self.borough_codes, self.borough_shapes):
            digest.update(code.encode())
            digest.update(np.round(np.array(geom.bounds + (geom.area,)), 0).tobytes())
        return digest.hexdigest()[:12]


def to_wgs84(geom: Any) -> Any:
    """A BNG geometry in longitude/latitude."""
    return shapely.transform(geom, lambda xy: np.column_stack(TO_WGS84.transform(xy[:, 0], xy[:, 1])))


def _code(uid: str) -> str:
    return uid.rsplit(":", 1)[-1]


_REGISTER: dict[tuple[Any, ...], Geography] = {}


def load_geography(session: Session) -> Geography:
    """The boroughs and LSOAs of the places register, or of the bundled files when it holds none (remembered
    until the register's boroughs or LSOAs change)."""
    from sqlalchemy import func

    from ...places.models import Place

    mark = tuple(session.execute(select(func.count(), func.max(Place.updated_at)).where(
        Place.kind.in_(("borough", "lsoa")))).one())
    if mark in _REGISTER:
        return _REGISTER[mark]
    found = _load_geography(session)
    _REGISTER.clear()
    _REGISTER[mark] = found
    return found


def _load_geography(session: Session) -> Geography:
    from ...places.models import Place

    boroughs = session.execute(select(Place.uid, Place.name, Place.geometry_bng).where(
        Place.kind == "borough", Place.status == "active", Place.geometry_bng.is_not(None))
        .order_by(Place.uid)).all()
    lsoas = session.execute(select(Place.uid, Place.point_lon, Place.point_lat).where(
        Place.kind == "lsoa", Place.status == "active", Place.point_lon.is_not(None)).order_by(Place.uid)).all()
    if boroughs and lsoas:
        shapes = [shape(json.loads(g) if isinstance(g, str) else g) for _, _, g in boroughs]
        east, north = TO_BNG.transform(np.array([r[1] for r in lsoas], dtype=float),
                                       np.array([r[2] for r in lsoas], dtype=float))
        return Geography([_code(r[0]) for r in boroughs], [r[1] for r in boroughs], shapes,
                         [_code(r[0]) for r in lsoas], np.asarray(east), np.asarray(north), "places register")
    return bundled_geography()


_BUNDLED: Geography | None = None


def bundled_geography() -> Geography:
    """The boroughs and LSOAs of the bundled boundary files (GLA statistical GIS boundaries, simplified)."""
    global _BUNDLED
    if _BUNDLED is None:
        def features(name: str) -> list[dict[str, Any]]:
            with gzip.open(PLACES_DATA / name, "rt", encoding="utf-8") as fh:
                return json.load(fh)["features"]

        bor = sorted(features("boroughs.geojson.gz"), key=lambda f: f["properties"]["GSS_CODE"])
        shapes = [shapely.transform(shape(f["geometry"]), lambda xy: np.column_stack(TO_BNG.transform(xy[:, 0], xy[:, 1])))
                  for f in bor]
        shapes = [s if s.is_valid else s.buffer(0) for s in shapes]
        lsoa = sorted(features("lsoas.geojson.gz"), key=lambda f: f["properties"]["LSOA11CD"])
        points = [shape(f["geometry"]).point_on_surface() for f in lsoa]  # as the register's representative point
        east, north = TO_BNG.transform(np.array([p.x for p in points]), np.array([p.y for p in points]))
        _BUNDLED = Geography([f["properties"]["GSS_CODE"] for f in bor], [f["properties"]["NAME"] for f in bor], shapes,
                             [f["properties"]["LSOA11CD"] for f in lsoa], np.asarray(east), np.asarray(north),
                             "bundled boundary files")
    return _BUNDLED


@dataclass
class Frame:
    """A regular grid over the boroughs: which borough holds each cell centre (-1: outside London)."""

    origin_easting: float
    origin_northing: float
    cell: float
    borough: np.ndarray  # int16 [rows, cols], row 0 southernmost
    borough_codes: list[str]

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        return self.borough.shape  # type: ignore[return-value]

    @property
    def inside(self) -> np.ndarray:
        """Boolean [rows, cols]: the cell's centre is in London."""
        return self.borough >= 0

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Easting and northing of the centres of the cells inside London (row-major order)."""
        rows, cols = np.nonzero(self.inside)
        return (self.origin_easting + (cols + 0.5) * self.cell, self.origin_northing + (rows + 0.5) * self.cell)

    @property
    def bounds_wgs84(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """((south, west), (north, east)) of the grid's extent."""
        return bounds_wgs84(self.origin_easting, self.origin_northing, self.cell, self.shape)


def bounds_wgs84(origin_e: float, origin_n: float, cell: float,
                 shape_: tuple[int, int]) -> tuple[tuple[float, float], tuple[float, float]]:
    """The lon/lat box holding a BNG rectangle (its edges sampled: BNG is not aligned to the meridians)."""
    rows, cols = shape_
    e1, n1 = origin_e + cols * cell, origin_n + rows * cell
    t = np.linspace(0.0, 1.0, 101)
    edge_e = np.concatenate([origin_e + t * (e1 - origin_e), np.full(101, e1), e1 - t * (e1 - origin_e), np.full(101, origin_e)])
    edge_n = np.concatenate([np.full(101, origin_n), origin_n + t * (n1 - origin_n), np.full(101, n1), n1 - t * (n1 - origin_n)])
    lon, lat = TO_WGS84.transform(edge_e, edge_n)
    return (round(float(np.min(lat)), 6), round(float(np.min(lon)), 6)), (round(float(np.max(lat)), 6),
                                                                         round(float(np.max(lon)), 6))


def build_frame(geography: Geography, cell: float = 100.0) -> Frame:
    """Assign every cell centre of a grid over the boroughs to the borough holding it."""
    minx = min(s.bounds[0] for s in geography.borough_shapes)
    miny = min(s.bounds[1] for s in geography.borough_shapes)
    maxx = max(s.bounds[2] for s in geography.borough_shapes)
    maxy = max(s.bounds[3] for s in geography.borough_shapes)
    origin_e, origin_n = np.floor(minx / cell) * cell, np.floor(miny / cell) * cell
    cols, rows = int(np.ceil((maxx - origin_e) / cell)), int(np.ceil((maxy - origin_n) / cell))
    borough = np.full((rows, cols), -1, dtype=np.int16)
    for k, geom in enumerate(geography.borough_shapes):
        x0, y0, x1, y1 = geom.bounds
        c0, c1 = int((x0 - origin_e) // cell), int(np.ceil((x1 - origin_e) / cell))
        r0, r1 = int((y0 - origin_n) // cell), int(np.ceil((y1 - origin_n) / cell))
        cc, rr = np.meshgrid(np.arange(c0, c1), np.arange(r0, r1))
        shapely.prepare(geom)
        hit = shapely.contains_xy(geom, origin_e + (cc + 0.5) * cell, origin_n + (rr + 0.5) * cell)
        free = borough[rr[hit], cc[hit]] < 0  # touching boroughs: the first (lowest code) keeps a shared centre
        borough[rr[hit][free], cc[hit][free]] = k
    return Frame(float(origin_e), float(origin_n), float(cell), borough, list(geography.borough_codes))


_FRAMES: dict[str, Frame] = {}


def frame_for(geography: Geography, cache_dir: Path, cell: float = 100.0) -> Frame:
    """The grid frame of this geography and cell size, from memory, the ``.npz`` cache, or built (and cached)."""
    name = f"frame-{int(cell)}m-{geography.key}"
    if name in _FRAMES:
        return _FRAMES[name]
    path = cache_dir / f"{name}.npz"
    if path.is_file():
        with np.load(path) as stored:
            frame = Frame(float(stored["origin"][0]), float(stored["origin"][1]), float(stored["cell"]),
                          stored["borough"], [str(c) for c in stored["codes"]])
    else:
        frame = build_frame(geography, cell)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, origin=np.array([frame.origin_easting, frame.origin_northing]), cell=frame.cell,
                            borough=frame.borough, codes=np.array(frame.borough_codes))
        tmp.replace(path)
    _FRAMES[name] = frame
    return frame


# --- the map image -------------------------------------------------------------------------------

def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def legend(layer: str, species: str) -> list[tuple[str, str]]:
    """(label, colour) of each colour the layer's PNG uses."""
    if layer == "mean":
        key = daqi.species_key(species)
        edges = LEVEL_EDGES[key]
        out = []
        for i, colour in enumerate(LEVEL_COLOURS):
            low = edges[i - 1] if i else 0.0
            if i == len(edges):
                text, first, last = f"{low:g} µg/m³ or more", daqi.index(key, low), 10
            else:
                text = f"under {edges[0]:g} µg/m³" if i == 0 else f"{low:g}–{edges[i]:g} µg/m³"
                first, last = daqi.index(key, low), daqi.index(key, np.nextafter(edges[i], 0.0))
            if first == last:
                note = f"DAQI {first}, {daqi.band(int(first)).name}"
            else:
                note = f"DAQI {first}–{last}"
            out.append((f"{text} ({note})", colour))
        return out
    if layer == "std":
        labels = [f"under {STD_EDGES[0]:g} µg/m³"] + [f"{a:g}–{b:g} µg/m³" for a, b in zip(STD_EDGES, STD_EDGES[1:])] + [
            f"{STD_EDGES[-1]:g} µg/m³ or more"]
        return list(zip(labels, STD_COLOURS))
    raise ValueError(f"unknown layer {layer!r}: use mean or std")


def colour_index(layer: str, species: str, values: np.ndarray) -> np.ndarray:
    """Index into the layer's legend of each value (-1 where NaN)."""
    finite = np.isfinite(values)
    if layer == "mean":
        idx = np.searchsorted(np.asarray(LEVEL_EDGES[daqi.species_key(species)]), np.where(finite, values, 0.0),
                              side="right")
    elif layer == "std":
        idx = np.searchsorted(np.asarray(STD_EDGES), np.where(finite, values, 0.0), side="right")
    else:
        raise ValueError(f"unknown layer {layer!r}: use mean or std")
    return np.where(finite, idx, -1)


def pixel_cells(origin_e: float, origin_n: float, cell: float, shape_: tuple[int, int],
                cache_dir: Path | None = None) -> np.ndarray:
    """For each pixel of the lon/lat-regular image of a grid (one pixel per cell on each axis, north up),
    the flat index of the grid cell under its centre, -1 off the grid."""
    rows, cols = shape_
    name = f"pixels-{int(origin_e)}-{int(origin_n)}-{int(cell)}-{rows}x{cols}.npy"
    path = cache_dir / name if cache_dir is not None else None
    if path is not None and path.is_file():
        return np.load(path)
    (south, west), (north, east) = bounds_wgs84(origin_e, origin_n, cell, shape_)
    lon = west + (np.arange(cols) + 0.5) * (east - west) / cols
    lat = north - (np.arange(rows) + 0.5) * (north - south) / rows
    lon2, lat2 = np.meshgrid(lon, lat)
    e, n = TO_BNG.transform(lon2.ravel(), lat2.ravel())
    j = np.floor((np.asarray(e) - origin_e) / cell).astype(np.int64)
    i = np.floor((np.asarray(n) - origin_n) / cell).astype(np.int64)
    ok = (i >= 0) & (i < rows) & (j >= 0) & (j < cols)
    out = np.where(ok, i * cols + j, -1).astype(np.int32).reshape(rows, cols)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, out)
        tmp.replace(path)
    return out


def render_png(values: np.ndarray, layer: str, species: str, origin_e: float, origin_n: float, cell: float,
               cache_dir: Path | None = None) -> bytes:
    """The grid ``values`` [rows, cols] (row 0 south) as an RGBA PNG, lon/lat-regular, transparent where NaN."""
    pixels = pixel_cells(origin_e, origin_n, cell, values.shape, cache_dir)
    flat = values.ravel()
    sampled = np.where(pixels >= 0, flat[np.maximum(pixels, 0)], np.nan)
    idx = colour_index(layer, species, sampled)
    palette = np.array([_rgb(c) + (255,) for c in (LEVEL_COLOURS if layer == "mean" else STD_COLOURS)] + [(0, 0, 0, 0)],
                       dtype=np.uint8)
    rgba = palette[np.where(idx >= 0, np.minimum(idx, len(palette) - 2), len(palette) - 1)]
    return encode_png(rgba)


def encode_png(rgba: np.ndarray) -> bytes:
    """An RGBA uint8 array [height, width, 4] as PNG bytes (no filter, zlib level 6)."""
    height, width = rgba.shape[:2]
    raw = np.zeros((height, width * 4 + 1), dtype=np.uint8)
    raw[:, 1:] = rgba.reshape(height, width * 4)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(
        b"IEND", b"")
