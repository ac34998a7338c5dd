"""Fixtures and helpers shared by the tabular data API's tests (``test_tabular*.py``).

Use them with ``from tests.catalogue.tabular_support import ...``. ``tab`` is an application
whose loads run before the upload's response (no background thread, so tests are deterministic),
with ``datastore_search_sql`` switched on, a short SQL time limit and a small row cap.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from smartlondon.app import create_app
from smartlondon.core.db import Database
from smartlondon.settings import Settings

ROWS_MAX = 500


@dataclass
class Tab:
    """A client of an application with the tabular store, and an editor of Camden."""

    client: TestClient
    settings: Settings
    db: Database
    headers: dict[str, str]

    def dataset(self, slug: str = "air-quality-readings", private: bool = False, publisher: str = "camden",
                headers: dict[str, str] | None = None) -> str:
        """Create a dataset; returns its slug."""
        res = self.client.post("/api/datasets", json={"title": slug.replace("-", " ").capitalize(), "slug": slug,
                                                     "publisher": publisher, "private": private},
                               headers=headers or self.headers)
        assert res.status_code == 201, res.text
        return slug

    def upload(self, slug: str, filename: str, content: bytes, schema: dict[str, Any] | None = None,
               headers: dict[str, str] | None = None) -> dict[str, Any]:
        """Upload a file as a new resource; returns the resource as the API gives it."""
        data = {"table_schema": json.dumps(schema)} if schema else {}
        res = self.client.post(f"/api/datasets/{slug}/resources", data=data,
                               files={"upload": (filename, content, "application/octet-stream")},
                               headers=headers or self.headers)
        assert res.status_code == 201, res.text
        return res.json()

    def replace_file(self, slug: str, rid: str, filename: str, content: bytes) -> dict[str, Any]:
        """Replace a resource's file."""
        res = self.client.patch(f"/api/datasets/{slug}/resources/{rid}",
                                files={"upload": (filename, content, "application/octet-stream")}, headers=self.headers)
        assert res.status_code == 200, res.text
        return res.json()

    def action(self, name: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
        """POST a CKAN action with a JSON body; returns the response."""
        return self.client.post(f"/api/3/action/{name}", json=params, headers=headers or {})

    def search(self, **params: Any) -> dict[str, Any]:
        """``datastore_search`` through the CKAN API; asserts success and returns the result."""
        res = self.action("datastore_search", **params)
        assert res.status_code == 200, res.text
        body = res.json()
        assert body["success"] is True
        return body["result"]

    def report(self, slug: str, rid: str) -> dict[str, Any]:
        """The validation page's JSON twin."""
        res = self.client.get(f"/dataset/{slug}/resource/{rid}/validation.json")
        assert res.status_code == 200, res.text
        return res.json()


def tab_settings(settings: Settings, **changes: Any) -> Settings:
    """The test settings with the tabular store's test values."""
    values: dict[str, Any] = {"datastore_sql_enabled": True, "datastore_sql_timeout": 1.0,
                              "datastore_rows_max": ROWS_MAX, "datastore_workers": 0}
    values.update(changes)
    return replace(settings, **values)


@pytest.fixture
def tab(settings: Settings, db: Database, editor: Any) -> Iterator[Tab]:
    """An application with the tabular store (loads inline, SQL on) and an editor's headers."""
    app = create_app(tab_settings(settings), db)
    with TestClient(app) as client:
        yield Tab(client, app.state.settings, db, editor.headers)


def csv_bytes(header: list[str], rows: list[list[Any]]) -> bytes:
    """A CSV file from a header and rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def readings(n: int = 10_000, late_na_at: int | None = 9_000) -> bytes:
    """An LAQN-like CSV of hourly readings; the value of data row ``late_na_at`` (1-based) is "N/A"."""
    sites = ["BG1", "BL0", "CD1", "CT3", "GR4", "HK6", "IS6", "KC1", "MY1", "TH4"]
    species = ["NO2", "PM10", "PM25", "O3"]
    rows = []
    for i in range(1, n + 1):
        value = "N/A" if i == late_na_at else ("" if i % 97 == 0 else f"{(i * 37 % 800) / 10:.1f}")
        rows.append([sites[i % len(sites)], species[i % len(species)],
                     f"2023-01-{1 + (i // 24) % 28:02d} {i % 24:02d}:00:00", value, f"E09{(i % 33) + 1:06d}"])
    return csv_bytes(["site_code", "species_code", "measurement_date_gmt", "value", "borough_gss"], rows)
