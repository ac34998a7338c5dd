"""The demo catalogue's plan: the datasets the London Datastore demo is seeded with.

``demo_datasets(data_dir)`` builds plain-dict dataset descriptions from the demo data files that
``prepare.py`` writes: about ten datasets whose resources are those real files, plus one dataset
per entry of the original 2010 London Datastore A-Z (real titles, descriptions and categories,
with a link to the entry's 2010 address). The result is deterministic.
"""

from __future__ import annotations

import calendar
import csv
import json
import re
from pathlib import Path
from typing import Any

from ..core import reference
from ..core.reference import ORGANISATIONS_FILE, load_organisations

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
THEMES = tuple(reference.THEMES)
FREQUENCIES = tuple(reference.FREQUENCIES)
GEOGRAPHIES = tuple(reference.GEOGRAPHIES)
DATASTORE_HOME = "https://data.london.gov.uk/"

GLA = "greater-london-authority"
TFL = "transport-for-london"
MET = "metropolitan-police-service"
LFB = "london-fire-brigade"
LAS = "london-ambulance-service"
NHS = "nhs-england-london"

# The 2010 Datastore categories, as this platform's themes.
CATEGORY_THEMES: dict[str, tuple[str, ...]] = {
    "art and culture": ("society",),
    "business and economy": ("economy",),
    "championing london": ("government",),
    "crime and community safety": ("crime-and-justice",),
    "demographics": ("population",),
    "education": ("education",),
    "employment and skills": ("economy",),
    "environment": ("environment",),
    "health": ("health",),
    "housing": ("housing",),
    "planning": ("planning",),
    "sport": ("society",),
    "transparency": ("government",),
    "transport": ("transport",),
    "young people": ("society",),
}

# Further themes suggested by words of a title.
TEXT_THEMES: tuple[tuple[str, str], ...] = (
    (r"\benerg|\bfuel\b|electricity|carbon dioxide|\bco2\b", "energy"),
    (r"school|pupil|qualification|students?\b|\bpe\b", "education"),
    (r"boundar|constituenc|sub-regions", "boundaries"),
    (r"\btraffic\b|\broad\b|underground|\btfl\b|cycle hire|river boat|transport police", "transport"),
    (r"housing|homeless|house prices|dwellings|\brents?\b", "housing"),
    (r"air quality|\bno2\b|\bpm10\b|emission|recycl|waste|floodplain|green belt", "environment"),
    (r"hospitals?\b|mortality|life expectancy|obesity|immunisation|illness|disability", "health"),
    (r"\bcrime|offen|police|theft|robbery|assault", "crime-and-justice"),
    (r"population|ethnic|migration|census|births|nationals?\b", "population"),
    (r"election|expenses|expenditure|budget|register of interests|gifts and hospitality|mayor's decisions",
     "government"),
    (r"employment|unemployment|earnings|claimants?|business", "economy"),
)

STOPWORDS = frozenset("""a an and are as at be by for from in into is it its of on or per the to with within
    over under since than that this those these all any each their there which who whom whose was were has have
    had not no non only out up via data dataset datasets number numbers rate rates count counts total values
    value recorded incidents based london due use""".split())

MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})


def demo_datasets(data_dir: Path) -> list[dict[str, Any]]:
    """Every dataset of the demo catalogue, as plain dicts (see the module docstring)."""
    data_dir = Path(data_dir)
    context = _Context(data_dir)
    datasets = _real_datasets(context) + _az_datasets(context)
    seen: set[str] = set()
    for dataset in datasets:
        slug = base = dataset["slug"][:100].strip("-")
        n = 2
        while slug in seen:
            suffix = f"-{n}"
            slug = base[: 100 - len(suffix)].strip("-") + suffix
            n += 1
        seen.add(slug)
        dataset["slug"] = slug
    return datasets


def resource_file(data_dir: Path, name: str) -> Path:
    """Where a planned resource's file is: the demo data folder, or the platform's organisations list."""
    path = Path(data_dir) / name
    return ORGANISATIONS_FILE if name == ORGANISATIONS_FILE.name and not path.exists() else path


def validate_dataset(dataset: dict[str, Any], data_dir: Path) -> list[str]:
    """The problems of one planned dataset (an empty list when it is valid)."""
    problems = []
    slug = dataset.get("slug", "")
    if not (3 <= len(slug) <= 100 and SLUG_RE.match(slug)):
        problems.append(f"bad slug {slug!r}")
    if not dataset.get("title"):
        problems.append("no title")
    if not set(dataset.get("themes", [])) <= set(THEMES):
        problems.append(f"unknown theme in {dataset.get('themes')}")
    if dataset.get("frequency") not in FREQUENCIES:
        problems.append(f"bad frequency {dataset.get('frequency')!r}")
    if dataset.get("geography") not in GEOGRAPHIES:
        problems.append(f"bad geography {dataset.get('geography')!r}")
    if any(k != k.lower() for k in dataset.get("keywords", [])):
        problems.append("keywords must be lowercase")
    for resource in dataset.get("resources", []):
        if resource.get("file") and not resource_file(data_dir, resource["file"]).is_file():
            problems.append(f"missing file {resource['file']}")
        if not resource.get("file") and not resource.get("url"):
            problems.append(f"resource {resource.get('title')!r} has neither file nor url")
    return problems


# --- shared look-ups -----------------------------------------------------------------------------------


class _Context:
    """What the plan reads from the demo data directory: organisations, borough names and extents."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.organisations = load_organisations()
        self.org_slugs = {o["slug"] for o in self.organisations}
        boroughs = json.loads((data_dir / "boroughs.geojson").read_text(encoding="utf-8"))
        self.borough_bbox: dict[str, list[float]] = {}
        self.borough_name: dict[str, str] = {}
        for feature in boroughs["features"]:
            code = feature["properties"]["gss_code"]
            self.borough_name[code] = feature["properties"]["name"]
            self.borough_bbox[code] = feature.get("bbox") or _bbox(_coordinates(feature["geometry"]))
        self.london_bbox = _union(self.borough_bbox.values())
        self.org_by_gss = {o["gss_code"]: o["slug"] for o in self.organisations if o.get("gss_code")}
        # Longest names first, so "City of London" wins over any shorter match.
        self.borough_patterns = sorted(
            ((re.compile(r"\b" + re.escape(name) + r"\b", re.I), code) for code, name in self.borough_name.items()),
            key=lambda item: -len(item[0].pattern))

    def boroughs_named_in(self, text: str) -> list[str]:
        """GSS codes of the boroughs whose names appear in a text, in code order."""
        return sorted({code for pattern, code in self.borough_patterns if pattern.search(text)})

    def bbox_of(self, codes: list[str]) -> list[float]:
        """The bounding box of some boroughs, or of London when there are none."""
        return _union(self.borough_bbox[c] for c in codes) if codes else list(self.london_bbox)


def _coordinates(geometry: dict[str, Any]) -> list[tuple[float, float]]:
    """All positions of a Polygon or MultiPolygon."""
    polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    return [(p[0], p[1]) for polygon in polygons for ring in polygon for p in ring]


def _bbox(points: Any) -> list[float]:
    """[minlon, minlat, maxlon, maxlat] of some (lon, lat) points, rounded to 5 decimals."""
    points = list(points)
    return [round(min(p[0] for p in points), 5), round(min(p[1] for p in points), 5),
            round(max(p[0] for p in points), 5), round(max(p[1] for p in points), 5)]


def _union(boxes: Any) -> list[float]:
    """The bounding box of some bounding boxes."""
    boxes = list(boxes)
    return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]


def _inside(lon: float, lat: float, bbox: list[float], margin: float = 0.0) -> bool:
    """Whether a point lies in a bounding box grown by a margin (degrees)."""
    return bbox[0] - margin <= lon <= bbox[2] + margin and bbox[1] - margin <= lat <= bbox[3] + margin


def _contact(publisher: str) -> str:
    """The demo's (non-deliverable, example.org) contact address of a publisher."""
    return f"{publisher}.data@example.org"


def _dataset(**fields: Any) -> dict[str, Any]:
    """A dataset dict with every key of the plan's schema, defaults filled in."""
    dataset: dict[str, Any] = {
        "slug": "", "title": "", "description": "", "publisher": GLA, "licence": "OGL-UK-3.0",
        "keywords": [], "themes": [], "frequency": "irregular", "temporal_start": None, "temporal_end": None,
        "boroughs": [], "bbox": None, "geography": "london", "contact_email": "", "resources": [],
    }
    dataset.update(fields)
    if not dataset["contact_email"]:
        dataset["contact_email"] = _contact(dataset["publisher"])
    return dataset


def _resource(title: str, description: str, fmt: str, file: str | None = None,
              url: str | None = None) -> dict[str, Any]:
    """A resource dict: a file of the demo data directory or an external link."""
    return {"title": title, "description": description, "file": file, "url": url, "format": fmt}


# --- the datasets built on the real demo files --------------------------------------------------------------

OS_ATTRIBUTION = ("Contains National Statistics data © Crown copyright and database right; contains OS data © "
                  "Crown copyright and database right.")
LAQN_ATTRIBUTION = ("Source: London Air Quality Network (LAQN), Environmental Research Group, Imperial College "
                    "London (formerly King's College London). Licensed under the Open Government Licence v2.0.")
TFL_ATTRIBUTION = "Powered by TfL Open Data. Contains OS data © Crown copyright and database rights."


def _csv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a small CSV file as dicts."""
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _real_datasets(ctx: _Context) -> list[dict[str, Any]]:
    """The datasets whose resources are the real files of the demo data directory."""
    d = ctx.data_dir
    london = ctx.london_bbox
    sites = _csv_rows(d / "laqn-sites.csv")
    site_points = [(float(s["@Longitude"]), float(s["@Latitude"])) for s in sites
                   if s["@Longitude"] and s["@Latitude"]]
    # One site (AZ99) has coordinates on the south coast; keep the box to the sites around London.
    sites_bbox = _bbox(p for p in site_points if _inside(p[0], p[1], london, margin=0.1))
    stations = _csv_rows(d / "tfl-stations-2022.csv")
    stations_bbox = _bbox((float(s["x"]), float(s["y"])) for s in stations if s["x"] and s["y"])
    n_az = len(json.loads((d / "datastore-a-z-2010.json").read_text(encoding="utf-8")))
    n_orgs = len(ctx.organisations)

    return [
        _dataset(
            slug="london-borough-boundaries",
            title="London borough boundaries",
            description=(
                "The boundaries of the 33 London local authorities: the 32 London boroughs and the City of "
                "London, with their GSS codes, area in hectares and whether ONS counts them as Inner or Outer "
                "London. The boundaries exclude the Thames below the mean high water mark.\n\n"
                "Simplified (about 20 m) and reprojected to WGS84 from the GLA's statistical GIS boundary files "
                "for this demo. " + OS_ATTRIBUTION),
            keywords=["boroughs", "boundaries", "local authorities", "gss codes", "inner london", "outer london",
                      "geojson"],
            themes=["boundaries", "government"], frequency="irregular", bbox=list(london), geography="borough",
            resources=[
                _resource("London borough boundaries (GeoJSON)",
                          "33 features in WGS84 (RFC 7946); properties name, gss_code, hectares, inner_outer.",
                          "GeoJSON", file="boroughs.geojson"),
                _resource("Statistical GIS boundary files for London",
                          "The full-resolution boundary files this dataset is derived from.", "HTML",
                          url="https://data.london.gov.uk/dataset/statistical-gis-boundary-files-london"),
            ]),
        _dataset(
            slug="laqn-monitoring-sites",
            title="London Air Quality Network monitoring sites",
            description=(
                f"The {len(sites)} air quality monitoring sites of the London Air Quality Network (LAQN), open and "
                "closed: site code and name, local authority, site type (Roadside, Kerbside, Urban Background, "
                "Suburban, Industrial), dates opened and closed, and position.\n\n"
                "In this file `@Latitude` and `@Longitude` hold the WGS84 position; the `@LatitudeWGS84` and "
                "`@LongitudeWGS84` columns actually hold Web Mercator metres.\n\n" + LAQN_ATTRIBUTION),
            licence="OGL-UK-2.0",
            keywords=["air quality", "laqn", "monitoring sites", "pollution", "sensors"],
            themes=["environment", "health"], frequency="irregular", bbox=sites_bbox, geography="point",
            resources=[
                _resource("LAQN sites (CSV)", "One row per monitoring site.", "CSV", file="laqn-sites.csv"),
                _resource("londonair.org.uk", "The London Air Quality Network's own website.", "HTML",
                          url="https://www.londonair.org.uk/"),
            ]),
        _dataset(
            slug="laqn-hourly-readings-2023-01",
            title="LAQN hourly air quality readings, January 2023",
            description=(
                "Hourly measurements from the London Air Quality Network's sites for January 2023, every "
                "species measured (NO2, PM10, PM2.5, O3, SO2, CO, ...), in long format "
                "`site_code,species_code,measurement_date_gmt,value`. Values are µg/m³ (CO mg/m³), timestamps "
                "GMT marking the start of the hour; an empty value means no valid reading.\n\n"
                "The extract has no readings for 31 January, and the GR8 PM10 and HG1 NO2 series appear twice "
                "for every hour, as in the source.\n\n" + LAQN_ATTRIBUTION),
            licence="OGL-UK-2.0",
            keywords=["air quality", "laqn", "no2", "pm10", "pm2.5", "ozone", "hourly", "sensors"],
            themes=["environment", "health"], frequency="hourly",
            temporal_start="2023-01-01", temporal_end="2023-01-30", bbox=sites_bbox, geography="point",
            resources=[
                _resource("LAQN hourly readings, January 2023 (gzipped CSV)",
                          "Gzip-compressed CSV, one row per site, species and hour.", "CSV",
                          file="laqn-hourly-2023-01.csv.gz"),
                _resource("LAQN sites (CSV)", "The site list, to join on site_code.", "CSV", file="laqn-sites.csv"),
            ]),
        _dataset(
            slug="tfl-stations-2022",
            title="TfL station locations",
            description=(
                f"The {len(stations)} rail stations of Transport for London's networks (London Underground, "
                "Elizabeth line, London Overground, DLR and Tram) in 2022: NLC code, name, Ordnance Survey "
                "easting and northing, longitude and latitude, lines, networks, fare zone and Night Tube "
                "service.\n\n" + TFL_ATTRIBUTION),
            publisher=TFL,
            keywords=["stations", "tube", "underground", "elizabeth line", "overground", "dlr", "tram", "zones"],
            themes=["transport"], frequency="irregular", temporal_start="2022-01-01", temporal_end="2022-12-31",
            bbox=stations_bbox, geography="point",
            resources=[
                _resource("TfL stations 2022 (CSV)", "One row per station; x is longitude and y latitude.", "CSV",
                          file="tfl-stations-2022.csv"),
                _resource("TfL open data", "Transport for London's open data portal.", "HTML",
                          url="https://tfl.gov.uk/info-for/open-data-users/"),
            ]),
        _dataset(
            slug="tfl-station-entries-exits-2007-2021",
            title="Station entries and exits 2007-2021",
            description=(
                "Annual entries plus exits at each TfL station from 2007 to 2021, keyed by NLC station code, "
                "with the station's lines and networks. The drop in 2020 and 2021 reflects the pandemic.\n\n"
                + TFL_ATTRIBUTION),
            publisher=TFL,
            keywords=["stations", "entries", "exits", "passengers", "ridership", "tube", "underground"],
            themes=["transport"], frequency="annual", temporal_start="2007-01-01", temporal_end="2021-12-31",
            bbox=stations_bbox, geography="point",
            resources=[
                _resource("Annual station entries and exits 2007-2021 (CSV)",
                          "One row per station; columns En/Ex 2007 to En/Ex 2021.", "CSV",
                          file="tfl-station-entries-exits-2007-2021.csv"),
                _resource("TfL stations 2022 (CSV)", "Station locations, to join on NLC.", "CSV",
                          file="tfl-stations-2022.csv"),
            ]),
        _dataset(
            slug="english-indices-of-deprivation-2019-london-lsoas",
            title="English Indices of Deprivation 2019, London LSOAs",
            description=(
                "The Index of Multiple Deprivation 2019 rank (1 = most deprived of England's 32,844 LSOAs) and "
                "decile of each of London's 4,835 lower layer super output areas (2011 boundaries), with their "
                "local authority.\n\nSource: Ministry of Housing, Communities and Local Government, English "
                "Indices of Deprivation 2019 (File 1). Open Government Licence v3.0."),
            keywords=["deprivation", "imd", "indices of deprivation", "lsoa", "poverty", "inequality"],
            themes=["society", "economy", "housing"], frequency="irregular", temporal_start="2019-01-01",
            temporal_end="2019-12-31", bbox=list(london), geography="lsoa",
            resources=[
                _resource("IMD 2019, London LSOAs (CSV)", "One row per London LSOA.", "CSV",
                          file="imd2019-london-lsoa.csv"),
                _resource("English indices of deprivation 2019 (GOV.UK)", "The full release for England.", "HTML",
                          url="https://www.gov.uk/government/statistics/english-indices-of-deprivation-2019"),
                _resource("London borough boundaries (GeoJSON)", "To map LSOAs by their local authority.",
                          "GeoJSON", file="boroughs.geojson"),
            ]),
        _dataset(
            slug="fuel-poverty-by-lsoa-2020",
            title="Fuel poverty by LSOA, 2020",
            description=(
                "Households, fuel-poor households and the percentage of households in fuel poverty (Low Income "
                "Low Energy Efficiency metric) in 2020, for each of London's 4,835 LSOAs.\n\nSource: Department "
                "for Business, Energy and Industrial Strategy, Sub-regional fuel poverty 2022 (Table 3). Open "
                "Government Licence v3.0. Estimates are meant for general trends and for finding areas of "
                "particularly high or low fuel poverty."),
            keywords=["fuel poverty", "energy", "households", "lsoa", "lilee", "poverty"],
            themes=["energy", "housing", "society"], frequency="annual", temporal_start="2020-01-01",
            temporal_end="2020-12-31", bbox=list(london), geography="lsoa",
            resources=[
                _resource("Fuel poverty 2020, London LSOAs (CSV)",
                          "Columns lsoa_code, lsoa_name, la_code, la_name, households, fuel_poor_households, "
                          "proportion_fuel_poor_pct (0-100).", "CSV", file="fuel-poverty-2020-london-lsoa.csv"),
                _resource("Sub-regional fuel poverty 2022 (GOV.UK)", "The full release for England.", "HTML",
                          url="https://www.gov.uk/government/statistics/sub-regional-fuel-poverty-2022"),
            ]),
        _dataset(
            slug="organisations-of-london-government",
            title="Organisations of London government",
            description=(
                f"The {n_orgs} organisations that publish on this demo: the Greater London Authority, the 33 "
                "London local authorities with their GSS codes, and London's transport, police, fire, ambulance "
                "and NHS bodies, with their websites."),
            keywords=["organisations", "local authorities", "boroughs", "gss codes", "public bodies"],
            themes=["government"], frequency="irregular", bbox=list(london), geography="borough",
            resources=[
                _resource("Organisations (JSON)", "A list of {slug, name, kind, gss_code, url} objects.", "JSON",
                          file="organisations.json"),
            ]),
        _dataset(
            slug="london-datastore-a-z-2010",
            title="London Datastore datasets A-Z, 2010",
            description=(
                f"The {n_az} datasets listed on the original London Datastore's \"Datasets A-Z\" page in 2010, "
                "the year the Datastore opened: title, description, categories and address of each.\n\n"
                "Source: Greater London Authority, London Datastore."),
            keywords=["london datastore", "catalogue", "open data", "metadata", "history"],
            themes=["government"], frequency="never", temporal_start="2010-01-01", temporal_end="2010-04-30",
            bbox=list(london), geography="london",
            resources=[
                _resource("Datasets A-Z, 2010 (JSON)",
                          "A list of {title, description, categories, publisher, url, date} objects.", "JSON",
                          file="datastore-a-z-2010.json"),
                _resource("London Datastore", "Today's London Datastore.", "HTML", url=DATASTORE_HOME),
            ]),
    ]


# --- the datasets of the 2010 A-Z ---------------------------------------------------------------------------


def _text_of(entry: dict[str, Any]) -> str:
    """Title and description of an A-Z entry, for pattern matching."""
    return f"{entry['title']} {entry['description']}"


def _publisher(entry: dict[str, Any], ctx: _Context, boroughs: list[str]) -> str:
    """The most plausible publishing organisation of an A-Z entry."""
    title, text = entry["title"], _text_of(entry)
    categories = [c.lower() for c in entry["categories"]]
    if boroughs and boroughs[0] in ctx.org_by_gss:
        return ctx.org_by_gss[boroughs[0]]
    if re.search(r"\btfl\b", title, re.I):
        return TFL
    if re.search(r"\bfire\b|fire brigade|fire & emergency", text, re.I):
        return LFB
    if re.search(r"ambulance", text, re.I):
        return LAS
    if re.search(r"\b(gla|mayor'?s?|assembly|london plan|census)\b", title, re.I):
        return GLA
    if "crime and community safety" in categories or re.search(r"\bcrime\b|police", text, re.I):
        return MET
    if "transport" in categories:
        return TFL
    if categories and categories[0] == "health":
        return NHS
    return GLA


def _themes(entry: dict[str, Any]) -> list[str]:
    """Themes of an A-Z entry: its categories' themes, then up to three in all suggested by its title."""
    themes: list[str] = []
    for category in entry["categories"]:
        for theme in CATEGORY_THEMES.get(category.lower(), ()):
            if theme not in themes:
                themes.append(theme)
    text = entry["title"].lower()
    for pattern, theme in TEXT_THEMES:
        if len(themes) >= 3:
            break
        if theme not in themes and re.search(pattern, text):
            themes.append(theme)
    return themes or ["government"]


def _keywords(entry: dict[str, Any]) -> list[str]:
    """Lowercase keywords of an A-Z entry: its categories, then the significant words of its title."""
    keywords: list[str] = []
    for category in entry["categories"]:
        if category.lower() not in keywords:
            keywords.append(category.lower())
    for word in re.findall(r"[a-z][a-z0-9'-]*[a-z0-9]", entry["title"].lower()):
        word = word.strip("'-")
        if len(word) >= 3 and word not in STOPWORDS and word not in keywords and not word.isdigit():
            keywords.append(word)
    return keywords[:8]


def _month_end(year: int, month: int) -> str:
    """The ISO date of the last day of a month."""
    return f"{year:04d}-{month:02d}-{calendar.monthrange(year, month)[1]:02d}"


def _period_in(text: str) -> tuple[str | None, str | None]:
    """The period spanned by the month-and-year names, else by the years, in a text."""
    months = [(int(y), MONTHS[m.lower()]) for m, y in
              re.findall(r"\b([A-Za-z]{3,9})[ -]((?:18|19|20)\d{2})\b", text) if m.lower() in MONTHS]
    if months:
        return f"{min(months)[0]:04d}-{min(months)[1]:02d}-01", _month_end(*max(months))
    years: list[int] = []
    for first, second in re.findall(r"\b((?:18|19|20)\d{2})(?:\s*[-/]\s*(\d{2}|\d{4})\b)?", text):
        years.append(int(first))
        if second:  # "2009/10", "2001-31", "2002-2003"
            years.append(int(second) if len(second) == 4 else int(first[:2] + second))
    years = [y for y in years if 1800 <= y <= 2050]
    if not years:
        return None, None
    return f"{min(years):04d}-01-01", f"{max(years):04d}-12-31"


def _temporal(entry: dict[str, Any]) -> tuple[str | None, str | None]:
    """The period an A-Z entry covers: from its title's dates if it has any, else its description's."""
    match = re.search(r"\b((?:19|20)\d{2})-(0[1-9]|1[0-2])$", entry["title"])
    if match:  # "... Model Output 2009-03": one month
        year, month = int(match.group(1)), int(match.group(2))
        return f"{year:04d}-{month:02d}-01", _month_end(year, month)
    period = _period_in(entry["title"])
    return period if period[0] else _period_in(entry["description"])


def _frequency(entry: dict[str, Any], temporal: tuple[str | None, str | None]) -> str:
    """A plausible update frequency of an A-Z entry."""
    title, text = entry["title"].lower(), _text_of(entry).lower()
    if re.search(r"(19|20)\d\d-(0[1-9]|1[0-2])$|claimant count", title):
        return "monthly"
    if "census" in title:
        return "never"
    if re.search(r"per month|monthly|selected months", text):
        return "monthly"
    if "quarterly" in text:
        return "quarterly"
    if re.search(r"weekly rate|per week", text):
        return "weekly"
    if re.search(r"\bdaily\b|per day", text):
        return "daily"
    if re.search(r"projection|consultation|register|time-tables|locations|cameras|openstreetmap", text):
        return "irregular"
    if re.search(r"year end|by year|each year|mid-year|tax year|\bannual\b(?! mean)", text):
        return "annual"
    if temporal[0] and temporal[0][:4] != (temporal[1] or "")[:4]:
        return "annual"
    return "irregular"


def _geography(entry: dict[str, Any], boroughs: list[str]) -> str:
    """The smallest geography an A-Z entry is likely broken down by."""
    text = _text_of(entry).lower()
    if re.search(r"\blsoa|lower (layer )?super output", text):
        return "lsoa"
    if re.search(r"\bmsoa|middle (layer )?super output", text):
        return "msoa"
    if re.search(r"locations?\b|points\b|grid points|polling stations|cameras|time-tables|openstreetmap", text):
        return "point"
    if re.search(r"\bward\b|\bpct\b|constituenc|boundar|sub-regions", text):
        return "other"
    if boroughs or re.search(r"borough|local authorit", text):
        return "borough"
    return "london"


def _az_slug(entry: dict[str, Any]) -> str:
    """The slug of an A-Z entry: the last part of its 2010 address, else its title slugified."""
    from .prepare import slugify

    if entry.get("url"):
        candidate = entry["url"].rstrip("/").rsplit("/", 1)[-1].lower()
        if SLUG_RE.match(candidate) and len(candidate) >= 3:
            return candidate[:100].strip("-")
    return slugify(entry["title"])[:100].strip("-") or "dataset"


def _az_datasets(ctx: _Context) -> list[dict[str, Any]]:
    """One dataset per entry of the 2010 London Datastore A-Z."""
    entries = json.loads((ctx.data_dir / "datastore-a-z-2010.json").read_text(encoding="utf-8"))
    datasets = []
    for entry in entries:
        boroughs = ctx.boroughs_named_in(entry["title"])
        publisher = _publisher(entry, ctx, boroughs)
        temporal = _temporal(entry)
        listed = ""
        if entry.get("date"):
            year, month = entry["date"].split("-")
            listed = f" in {calendar.month_name[int(month)]} {year}"
        description = (entry["description"] or entry["title"]) + (
            f"\n\nThis dataset was listed on the original London Datastore{listed}; its description and "
            "categories are those of the 2010 Datastore A-Z.")
        licence = "OGL-UK-2.0" if re.search(r"\blaqn\b|air quality network", _text_of(entry), re.I) else "OGL-UK-3.0"
        if entry.get("url"):
            resource = _resource(f"{entry['title']} on the London Datastore (2010)",
                                 "The dataset's page on the 2010 London Datastore; the address may no longer "
                                 "resolve.", "HTML", url=entry["url"])
        else:
            resource = _resource("London Datastore", "Search the London Datastore for this dataset.", "HTML",
                                 url=DATASTORE_HOME)
        datasets.append(_dataset(
            slug=_az_slug(entry), title=entry["title"], description=description, publisher=publisher,
            licence=licence, keywords=_keywords(entry), themes=_themes(entry),
            frequency=_frequency(entry, temporal), temporal_start=temporal[0], temporal_end=temporal[1],
            boroughs=boroughs, bbox=ctx.bbox_of(boroughs), geography=_geography(entry, boroughs),
            resources=[resource]))
    return datasets
