"""The demo loads real London data through the service, and loading it twice changes nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from smartlondon.catalogue.models import Dataset, Resource
from smartlondon.demo.loader import load_demo


def test_demo_loads_a_real_catalogue_idempotently(db, settings, client):
    summary = load_demo(db, settings)
    assert summary["datasets"] >= 150 and summary["created"] == summary["datasets"]
    assert summary["password"] and (settings.data_dir / "demo-admin-password").read_text().strip() == summary["password"]
    again = load_demo(db, settings)
    assert again["created"] == 0 and again["files"] == 0
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Dataset)) == summary["datasets"]
        uploads = s.scalar(select(func.count()).select_from(Resource).where(Resource.kind == "upload"))
    assert uploads == summary["files"] >= 8

    boundaries = client.get("/api/datasets/london-borough-boundaries").json()
    geojson = next(r for r in boundaries["resources"] if r["format"] == "GeoJSON")
    body = client.get(geojson["download_url"]).json()
    assert len(body["features"]) == 33
    found = [d["slug"] for d in client.get("/api/datasets", params={"q": "air quality"}).json()["results"]]
    assert "laqn-hourly-readings-2023-01" in found
    signed_in = client.post("/api/datasets", json={"title": "x"}, headers={"Authorization": "Bearer nope"})
    assert signed_in.status_code == 401
