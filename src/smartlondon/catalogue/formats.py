"""File formats: names, media types and guesses from a file name."""

from __future__ import annotations

FORMATS: dict[str, str] = {
    "CSV": "text/csv",
    "TSV": "text/tab-separated-values",
    "XLSX": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "XLS": "application/vnd.ms-excel",
    "ODS": "application/vnd.oasis.opendocument.spreadsheet",
    "JSON": "application/json",
    "GEOJSON": "application/geo+json",
    "PARQUET": "application/vnd.apache.parquet",
    "PDF": "application/pdf",
    "HTML": "text/html",
    "TXT": "text/plain",
    "MD": "text/markdown",
    "DOCX": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "DOC": "application/msword",
    "ZIP": "application/zip",
    "SHP": "application/x-shapefile",
    "KML": "application/vnd.google-earth.kml+xml",
    "GPKG": "application/geopackage+sqlite3",
    "XML": "application/xml",
    "RDF": "application/rdf+xml",
    "TTL": "text/turtle",
}

# How formats are written for people (GeoJSON, not GEOJSON).
DISPLAY = {"GEOJSON": "GeoJSON", "PARQUET": "Parquet", "GPKG": "GeoPackage"}

_EXTENSIONS = {
    "csv": "CSV", "tsv": "TSV", "xlsx": "XLSX", "xls": "XLS", "ods": "ODS", "json": "JSON",
    "geojson": "GEOJSON", "parquet": "PARQUET", "pdf": "PDF", "html": "HTML", "htm": "HTML",
    "txt": "TXT", "md": "MD", "docx": "DOCX", "doc": "DOC", "zip": "ZIP", "shp": "SHP",
    "kml": "KML", "gpkg": "GPKG", "xml": "XML", "rdf": "RDF", "ttl": "TTL",
}


def normalise_format(fmt: str | None) -> str:
    """The canonical (upper-case) name of a format: ``geojson`` -> ``GEOJSON``."""
    cleaned = (fmt or "").strip().lstrip(".").upper()
    return {"GEO+JSON": "GEOJSON", "EXCEL": "XLSX", "TEXT": "TXT"}.get(cleaned, cleaned)


def display_format(fmt: str | None) -> str:
    """The format as people write it."""
    key = normalise_format(fmt)
    return DISPLAY.get(key, key)


def guess_format(filename: str | None) -> str:
    """Guess the format from a file name, looking through ``.gz``: ``a.csv.gz`` -> ``CSV``."""
    name = (filename or "").lower().rsplit("/", 1)[-1]
    parts = name.split(".")
    if len(parts) >= 3 and parts[-1] == "gz":
        return _EXTENSIONS.get(parts[-2], "GZ")
    if len(parts) >= 2:
        return _EXTENSIONS.get(parts[-1], parts[-1].upper()[:20])
    return ""


def media_type_for(fmt: str, filename: str | None = None) -> str:
    """The media type to serve a file of this format with."""
    if filename and filename.lower().endswith(".gz"):
        return "application/gzip"
    return FORMATS.get(normalise_format(fmt), "application/octet-stream")
