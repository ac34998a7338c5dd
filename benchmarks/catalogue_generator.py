"""A synthetic catalogue for benchmarks, calibrated on the real 2010 London Datastore A-Z.

Titles and descriptions recombine the real A-Z entries with real borough names, years and the
kinds of breakdown London datasets are published with, so word frequencies look like a real
city catalogue. The datasets are synthetic; the vocabulary is real.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "src" / "smartlondon" / "demo" / "data"
ORGS = Path(__file__).resolve().parents[1] / "src" / "smartlondon" / "core" / "organisations.json"

CATEGORY_THEMES = {
    "Health": ["health"], "Employment and Skills": ["economy", "education"], "Demographics": ["population"],
    "Crime and Community Safety": ["crime-and-justice"], "Transparency": ["government"], "Housing": ["housing"],
    "Environment": ["environment"], "Transport": ["transport"], "Planning": ["planning"],
    "Business and Economy": ["economy"], "Young People": ["society", "education"], "Sport": ["society"],
    "Art and Culture": ["society"], "Education": ["education"], "Championing London": ["society"],
}
BREAKDOWNS = ["by ward", "by LSOA", "by MSOA", "by borough", "by month", "by age and sex", "by ethnic group",
              "quarterly returns", "annual summary", "time series", "survey results", "locations",
              "register", "indicators", "estimates", "projections", "statistics", "monitoring data"]
SENTENCES = [
    "Figures are published by {org} and cover {place}.",
    "The data covers {start} to {end} and is updated {freq}.",
    "Values are given {breakdown}, with notes on methodology and data quality.",
    "Counts below five are suppressed to protect privacy.",
    "This release replaces the provisional figures published last year.",
    "Use it with the borough boundaries to map change across {place}.",
    "Includes a data dictionary describing every column and code.",
    "Source records come from administrative systems and are checked before publication.",
]
FORMATS = ["CSV", "CSV", "CSV", "XLSX", "XLSX", "PDF", "GEOJSON", "JSON", "HTML", "ZIP"]
FREQUENCIES = ["annual", "annual", "quarterly", "monthly", "irregular", "never", "weekly", "daily"]
LICENCES = ["OGL-UK-3.0"] * 8 + ["OGL-UK-2.0", "CC-BY-4.0"]


def load_vocabulary() -> tuple[list[dict], list[dict]]:
    """The real A-Z entries and London's organisations."""
    entries = json.loads((DATA / "datastore-a-z-2010.json").read_text())
    orgs = json.loads(ORGS.read_text())
    return entries, orgs


def generate(n: int, seed: int = 2018) -> Iterator[dict]:
    """Yield ``n`` synthetic dataset rows (with keywords, themes, areas and resources)."""
    rng = random.Random(seed)
    entries, orgs = load_vocabulary()
    boroughs = [o for o in orgs if o["kind"] == "local-authority"]
    citywide = [o for o in orgs if o["kind"] != "local-authority"]
    start_time = datetime(2012, 1, 1, tzinfo=timezone.utc)
    for i in range(n):
        entry = rng.choice(entries)
        local = rng.random() < 0.6
        org = rng.choice(boroughs) if local else rng.choice(citywide)
        place = org["name"] if local else "London"
        year = rng.randint(2001, 2024)
        breakdown = rng.choice(BREAKDOWNS)
        freq = rng.choice(FREQUENCIES)
        title = f"{entry['title']} {breakdown}, {place} {year}"
        sentences = rng.sample(SENTENCES, 3)
        description = " ".join([entry["description"] or entry["title"] + "."] + [
            s.format(org=org["name"], place=place, start=year, end=year + 1, freq=freq, breakdown=breakdown)
            for s in sentences])
        words = [w.lower().strip(",.()") for w in entry["title"].split() if len(w) > 3]
        keywords = list(dict.fromkeys(
            [c.lower() for c in entry["categories"]] + rng.sample(words, min(len(words), 2)) + [breakdown.split()[-1]]
        ))[:5]
        themes = list(dict.fromkeys(t for c in entry["categories"] for t in CATEGORY_THEMES.get(c, ["society"])))
        modified = start_time + timedelta(minutes=rng.randint(0, 14 * 365 * 24 * 60))
        resources = [{"format": rng.choice(FORMATS), "title": f"{entry['title']} {year} ({k + 1})"}
                     for k in range(rng.randint(1, 3))]
        yield {
            "uuid": str(uuid.UUID(int=rng.getrandbits(128))), "slug": f"{_slug(title)[:80]}-{i}",
            "title": title, "description": description, "org_slug": org["slug"],
            "licence_id": rng.choice(LICENCES), "frequency": freq, "keywords": keywords, "themes": themes,
            "areas": [org["gss_code"]] if local else [], "modified": modified, "resources": resources,
            "geography": rng.choice(["borough", "ward", "lsoa", "msoa", "london", "point"]),
        }


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def queries(n: int, seed: int = 7) -> list[dict[str, str]]:
    """``n`` varied searches: words, pairs, phrases, prefixes, filters, browsing and sorts."""
    rng = random.Random(seed)
    entries, orgs = load_vocabulary()
    words = sorted({w.lower().strip(",.()'") for e in entries for w in e["title"].split() if len(w) > 3})
    boroughs = [o for o in orgs if o["kind"] == "local-authority"]
    out: list[dict[str, str]] = []
    for _ in range(n):
        kind = rng.random()
        entry = rng.choice(entries)
        if kind < 0.30:
            params = {"q": rng.choice(words)}
        elif kind < 0.50:
            params = {"q": f"{rng.choice(words)} {rng.choice(boroughs)['name'].split()[0]}"}
        elif kind < 0.60:
            title_words = entry["title"].split()
            params = {"q": '"' + " ".join(title_words[:2]) + '"'}
        elif kind < 0.68:
            params = {"q": rng.choice(words)[:4] + "*"}
        elif kind < 0.85:
            params = {"q": rng.choice(words), rng.choice(["publisher", "theme", "format"]): ""}
            facet = next(k for k in params if k != "q")
            params[facet] = {"publisher": rng.choice(boroughs)["slug"],
                             "theme": rng.choice(list(CATEGORY_THEMES.values()))[0],
                             "format": rng.choice(["Tables", "Reports", "Geospatial"])}[facet]
        elif kind < 0.95:
            params = {"publisher": rng.choice(boroughs)["slug"]}
        else:
            params = {}
        if rng.random() < 0.15:
            params["sort"] = rng.choice(["updated", "title"])
        if rng.random() < 0.1:
            params["page"] = str(rng.randint(2, 5))
        out.append(params)
    return out
