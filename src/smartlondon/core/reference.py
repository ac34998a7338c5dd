"""Reference data every installation starts with: licences, themes, frequencies, organisations.

``seed`` is idempotent: ``smartlondon db upgrade`` runs it after the migrations.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Organisation

ORGANISATIONS_FILE = Path(__file__).with_name("organisations.json")
DEFAULT_LICENCE = "OGL-UK-3.0"


@dataclass(frozen=True)
class LicenceInfo:
    """A licence of the register."""

    id: str
    title: str
    url: str
    is_open: bool
    spdx: str | None


LICENCES: tuple[LicenceInfo, ...] = (
    LicenceInfo("OGL-UK-3.0", "Open Government Licence v3.0",
                "https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/", True, "OGL-UK-3.0"),
    LicenceInfo("OGL-UK-2.0", "Open Government Licence v2.0",
                "https://www.nationalarchives.gov.uk/doc/open-government-licence/version/2/", True, "OGL-UK-2.0"),
    LicenceInfo("CC-BY-4.0", "Creative Commons Attribution 4.0",
                "https://creativecommons.org/licenses/by/4.0/", True, "CC-BY-4.0"),
    LicenceInfo("CC-BY-SA-4.0", "Creative Commons Attribution Share-Alike 4.0",
                "https://creativecommons.org/licenses/by-sa/4.0/", True, "CC-BY-SA-4.0"),
    LicenceInfo("CC-BY-SA-3.0", "Creative Commons Attribution Share-Alike 3.0",
                "https://creativecommons.org/licenses/by-sa/3.0/", True, "CC-BY-SA-3.0"),
    LicenceInfo("CC0-1.0", "Creative Commons CCZero", "https://creativecommons.org/publicdomain/zero/1.0/",
                True, "CC0-1.0"),
    LicenceInfo("ODbL-1.0", "Open Data Commons Open Database License 1.0",
                "https://opendatacommons.org/licenses/odbl/1-0/", True, "ODbL-1.0"),
    LicenceInfo("OS-OpenData", "OS OpenData Licence (OGL v3 with Ordnance Survey attribution)",
                "https://www.ordnancesurvey.co.uk/customers/public-sector/public-sector-licensing/copyright-acknowledgements",
                True, None),
    LicenceInfo("other-closed", "Other (not open): see the dataset's description", "", False, None),
)

# Themes, and the EU Data Theme each maps to (used by the DCAT-AP views).
THEMES: dict[str, tuple[str, str]] = {
    "environment": ("Environment", "ENVI"),
    "transport": ("Transport", "TRAN"),
    "housing": ("Housing", "SOCI"),
    "health": ("Health", "HEAL"),
    "crime-and-justice": ("Crime and justice", "JUST"),
    "economy": ("Economy and jobs", "ECON"),
    "education": ("Education", "EDUC"),
    "population": ("Population", "SOCI"),
    "planning": ("Planning and land use", "REGI"),
    "energy": ("Energy", "ENER"),
    "government": ("Government and spending", "GOVE"),
    "society": ("Communities and society", "SOCI"),
    "boundaries": ("Boundaries and places", "REGI"),
}

# Update frequencies, and the EU Frequency vocabulary term each maps to.
FREQUENCIES: dict[str, tuple[str, str]] = {
    "hourly": ("Hourly", "HOURLY"),
    "daily": ("Daily", "DAILY"),
    "weekly": ("Weekly", "WEEKLY"),
    "monthly": ("Monthly", "MONTHLY"),
    "quarterly": ("Quarterly", "QUARTERLY"),
    "annual": ("Annually", "ANNUAL"),
    "irregular": ("Irregularly", "IRREG"),
    "never": ("Not updated (historical)", "NEVER"),
}

GEOGRAPHIES: dict[str, str] = {
    "london": "London as a whole",
    "borough": "Borough",
    "ward": "Ward",
    "msoa": "Middle layer super output area (MSOA)",
    "lsoa": "Lower layer super output area (LSOA)",
    "output-area": "Output area",
    "point": "Point locations",
    "other": "Other",
}

# Formats grouped as the search facet shows them.
FORMAT_GROUPS: dict[str, str] = {
    "CSV": "Tables", "TSV": "Tables", "XLSX": "Tables", "XLS": "Tables", "ODS": "Tables",
    "JSON": "Tables", "PARQUET": "Tables", "SQLITE": "Tables",
    "PDF": "Reports", "DOC": "Reports", "DOCX": "Reports", "ODT": "Reports", "HTML": "Reports",
    "PPTX": "Reports", "TXT": "Reports", "MD": "Reports",
    "GEOJSON": "Geospatial", "SHP": "Geospatial", "KML": "Geospatial", "GPKG": "Geospatial",
    "ZIP-SHP": "Geospatial", "GML": "Geospatial", "WMS": "Geospatial", "WFS": "Geospatial",
}


def format_group(fmt: str) -> str:
    """The facet group (Tables, Reports, Geospatial, Other) of a file format."""
    return FORMAT_GROUPS.get((fmt or "").upper(), "Other")


def load_organisations() -> list[dict[str, str | None]]:
    """The organisations every London installation starts with."""
    return json.loads(ORGANISATIONS_FILE.read_text(encoding="utf-8"))


def seed(session: Session) -> dict[str, int]:
    """Add any missing licences and organisations; returns how many of each were added."""
    from ..catalogue.models import Licence

    added = {"licences": 0, "organisations": 0}
    known = set(session.scalars(select(Licence.id)))
    for info in LICENCES:
        if info.id not in known:
            session.add(Licence(id=info.id, title=info.title, url=info.url, is_open=info.is_open, spdx=info.spdx))
            added["licences"] += 1
    slugs = set(session.scalars(select(Organisation.slug)))
    for org in load_organisations():
        if org["slug"] not in slugs:
            session.add(Organisation(uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"smartlondon:org:{org['slug']}")),
                                     slug=org["slug"], name=org["name"], kind=org.get("kind") or "other",
                                     gss_code=org.get("gss_code"), url=org.get("url"),
                                     description=org.get("description") or ""))
            added["organisations"] += 1
    session.flush()
    return added
