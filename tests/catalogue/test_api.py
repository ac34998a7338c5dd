"""The native JSON API: what a developer's script sees."""

from __future__ import annotations

import hashlib
import io

from sqlalchemy import func, select, text

from smartlondon.catalogue.models import Dataset, Resource
from smartlondon.core.models import AuditEvent

CAMDEN_AIR = {
    "title": "Nitrogen dioxide diffusion tubes, Camden",
    "slug": "camden-no2-diffusion-tubes",
    "description": "Monthly **NO2** readings from diffusion tubes across Camden.",
    "publisher": "camden",
    "keywords": ["air quality", "NO2"],
    "themes": ["environment", "health"],
    "frequency": "monthly",
    "temporal_start": "2023-01-01",
    "temporal_end": "2023-12-31",
    "boroughs": ["E09000007"],
    "bbox": [-0.2135, 51.5128, -0.1053, 51.5729],
    "geography": "point",
    "contact_email": "air@camden.example.org",
}


def count(db, model) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_create_read_update_delete(client, editor, db):
    created = client.post("/api/datasets", json=CAMDEN_AIR, headers=editor.headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert created.headers["location"] == "http://testserver/dataset/camden-no2-diffusion-tubes"
    assert body["publisher"]["name"] == "Camden"
    assert body["licence"]["id"] == "OGL-UK-3.0"  # the default licence
    assert body["keywords"] == ["air quality", "no2"]
    assert body["boroughs"] == ["E09000007"]

    fetched = client.get(f"/api/datasets/{body['id']}").json()
    assert fetched["slug"] == "camden-no2-diffusion-tubes"

    patched = client.patch("/api/datasets/camden-no2-diffusion-tubes", json={"title": "NO2 tubes in Camden"},
                           headers=editor.headers)
    assert patched.status_code == 200
    assert patched.json()["title"] == "NO2 tubes in Camden"
    assert patched.json()["frequency"] == "monthly"  # PATCH keeps other fields

    replaced = client.put("/api/datasets/camden-no2-diffusion-tubes",
                          json={"title": "NO2 tubes", "publisher": "camden"}, headers=editor.headers)
    assert replaced.status_code == 200
    assert replaced.json()["keywords"] == [] and replaced.json()["frequency"] == "irregular"

    assert client.delete("/api/datasets/camden-no2-diffusion-tubes", headers=editor.headers).status_code == 204
    assert client.get("/api/datasets/camden-no2-diffusion-tubes").status_code == 404
    assert client.get("/api/datasets", params={"q": "tubes"}).json()["count"] == 0


def test_every_write_is_in_the_history_with_before_and_after(client, editor):
    client.post("/api/datasets", json=CAMDEN_AIR, headers=editor.headers)
    client.patch("/api/datasets/camden-no2-diffusion-tubes", json={"frequency": "annual"}, headers=editor.headers)
    history = client.get("/api/datasets/camden-no2-diffusion-tubes/history").json()["events"]
    assert [e["action"] for e in history] == ["dataset.update", "dataset.create"]
    update = history[0]
    assert update["actor"] == "camden-editor"
    assert update["before"]["frequency"] == "monthly" and update["after"]["frequency"] == "annual"


def test_audit_log_is_append_only_in_the_database(client, editor, db):
    client.post("/api/datasets", json=CAMDEN_AIR, headers=editor.headers)
    for statement in ("UPDATE audit_event SET actor = 'someone else'", "DELETE FROM audit_event"):
        try:
            with db.engine.begin() as conn:
                conn.execute(text(statement))
        except Exception as exc:  # the database refuses
            assert "append-only" in str(exc)
        else:
            raise AssertionError(f"the database allowed: {statement}")
    assert count(db, AuditEvent) == 1


def test_upload_is_streamed_hashed_and_downloadable_with_ranges(client, editor, db):
    client.post("/api/datasets", json=CAMDEN_AIR, headers=editor.headers)
    content = b"site,no2\n" + b"".join(f"CD{i},{i % 60}\n".encode() for i in range(20000))
    res = client.post("/api/datasets/camden-no2-diffusion-tubes/resources",
                      files={"upload": ("tubes 2023.csv", content, "text/csv")},
                      data={"title": "Tube readings 2023"}, headers=editor.headers)
    assert res.status_code == 201, res.text
    info = res.json()
    assert info["byte_size"] == len(content)
    assert info["sha256"] == hashlib.sha256(content).hexdigest()
    assert info["format"] == "CSV" and info["media_type"] == "text/csv"

    download = client.get(info["download_url"])
    assert download.status_code == 200
    assert download.content == content
    assert download.headers["content-type"].startswith("text/csv")
    assert 'filename="tubes 2023.csv"' in download.headers["content-disposition"]

    part = client.get(info["download_url"], headers={"Range": "bytes=0-8"})
    assert part.status_code == 206
    assert part.content == b"site,no2\n"
    assert part.headers["content-range"] == f"bytes 0-8/{len(content)}"
    tail = client.get(info["download_url"], headers={"Range": "bytes=-4"})
    assert tail.content == content[-4:]
    assert client.get(info["download_url"], headers={"Range": f"bytes={len(content) + 10}-"}).status_code == 416

    facets = client.get("/api/datasets", params={"publisher": "camden"}).json()["facets"]
    assert {"value": "Tables", "label": "Tables", "count": 1} in facets["format"]


def test_link_resources_redirect(client, editor):
    client.post("/api/datasets", json=CAMDEN_AIR, headers=editor.headers)
    res = client.post("/api/datasets/camden-no2-diffusion-tubes/resources",
                      json={"title": "Council page", "url": "https://www.camden.gov.uk/air-quality"},
                      headers=editor.headers)
    assert res.status_code == 201
    assert res.json()["download_url"] == "https://www.camden.gov.uk/air-quality"
    assert res.json()["format"] == "HTML"


# --- bad input: a clear message, and nothing half written ------------------------------------

def test_invalid_slug_unknown_licence_and_publisher_are_all_reported(client, editor, db):
    bad = {**CAMDEN_AIR, "slug": "Not A Slug!", "licence": "made-up-licence", "themes": ["weather"]}
    res = client.post("/api/datasets", json=bad, headers=editor.headers)
    assert res.status_code == 422
    error = res.json()["error"]
    assert set(error["fields"]) == {"slug", "licence", "themes"}
    assert "OGL-UK-3.0" in error["fields"]["licence"]  # says what to use instead
    assert count(db, Dataset) == 0 and count(db, AuditEvent) == 0


def test_duplicate_slug_is_a_conflict(client, editor, db):
    assert client.post("/api/datasets", json=CAMDEN_AIR, headers=editor.headers).status_code == 201
    again = client.post("/api/datasets", json={**CAMDEN_AIR, "title": "Another"}, headers=editor.headers)
    assert again.status_code == 409
    assert "already used" in again.json()["error"]["message"]
    assert count(db, Dataset) == 1


def test_malformed_json(client, editor, db):
    res = client.post("/api/datasets", content=b'{"title": "half', headers={
        **editor.headers, "Content-Type": "application/json"})
    assert res.status_code == 400
    assert "not valid JSON" in res.json()["error"]["message"]
    assert client.post("/api/datasets", content=b"[1, 2]", headers={
        **editor.headers, "Content-Type": "application/json"}).status_code == 400
    assert count(db, Dataset) == 0


def test_oversize_upload_is_refused_and_leaves_no_file(client, editor, settings, db):
    client.post("/api/datasets", json=CAMDEN_AIR, headers=editor.headers)
    too_big = b"x" * (settings.max_upload_bytes + 1)
    res = client.post("/api/datasets/camden-no2-diffusion-tubes/resources",
                      files={"upload": ("big.csv", too_big, "text/csv")}, headers=editor.headers)
    assert res.status_code == 413
    assert "upload limit" in res.json()["error"]["message"] or "limit" in res.json()["error"]["message"]
    assert count(db, Resource) == 0
    leftovers = [p for p in settings.files_dir.rglob("*") if p.is_file()]
    assert leftovers == []


def test_broken_multipart_is_a_400_and_leaves_no_file(client, editor, settings, db):
    client.post("/api/datasets", json=CAMDEN_AIR, headers=editor.headers)
    body = (b"--XYZ\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"a.csv\"\r\n"
            b"Content-Type: text/csv\r\n\r\nsite,no2\nCD1,40\n")  # no closing boundary
    res = client.post("/api/datasets/camden-no2-diffusion-tubes/resources", content=body,
                      headers={**editor.headers, "Content-Type": "multipart/form-data; boundary=XYZ"})
    assert res.status_code == 400
    assert "incomplete" in res.json()["error"]["message"]
    assert count(db, Resource) == 0
    assert [p for p in settings.files_dir.rglob("*") if p.is_file()] == []


def test_token_of_another_organisation_is_forbidden(client, editor, make_account, db):
    other = make_account("hackney-editor", hackney="editor")
    client.post("/api/datasets", json=CAMDEN_AIR, headers=editor.headers)
    res = client.patch("/api/datasets/camden-no2-diffusion-tubes", json={"title": "Mine now"},
                       headers=other.headers)
    assert res.status_code == 403
    assert "Camden" in res.json()["error"]["message"]
    assert client.post("/api/datasets", json={**CAMDEN_AIR, "slug": "x-camden"},
                       headers=other.headers).status_code == 403
    upload = client.post("/api/datasets/camden-no2-diffusion-tubes/resources",
                         files={"upload": ("a.csv", b"a,b\n1,2\n", "text/csv")}, headers=other.headers)
    assert upload.status_code == 403
    assert client.get("/api/datasets/camden-no2-diffusion-tubes").json()["title"] == CAMDEN_AIR["title"]
    assert count(db, Resource) == 0


def test_expired_revoked_and_unknown_tokens_are_refused(client, make_account, db):
    expired = make_account("old-editor", camden="editor")
    from datetime import timedelta

    from smartlondon.core.db import utcnow
    from smartlondon.core.models import ApiToken

    with db.session() as s:
        for tok in s.scalars(select(ApiToken)):
            tok.expires_at = utcnow() - timedelta(days=1)
    res = client.post("/api/datasets", json=CAMDEN_AIR, headers=expired.headers)
    assert res.status_code == 401
    assert "expired" in res.json()["error"]["message"]
    assert res.headers["www-authenticate"] == "Bearer"
    res = client.get("/api/me", headers={"Authorization": "Bearer sl_not-a-real-token"})
    assert res.status_code == 401 and "not recognised" in res.json()["error"]["message"]
    assert count(db, Dataset) == 0


def test_anonymous_writes_need_a_token(client, db):
    res = client.post("/api/datasets", json=CAMDEN_AIR)
    assert res.status_code == 401
    assert count(db, Dataset) == 0


def test_private_datasets_are_hidden_from_others(client, editor, make_account):
    client.post("/api/datasets", json={**CAMDEN_AIR, "private": True}, headers=editor.headers)
    assert client.get("/api/datasets/camden-no2-diffusion-tubes").status_code == 404
    assert client.get("/api/datasets", params={"q": "diffusion"}).json()["count"] == 0
    assert client.get("/api/datasets/camden-no2-diffusion-tubes", headers=editor.headers).status_code == 200
    member = make_account("camden-member", camden="member")
    assert client.get("/api/datasets", params={"q": "diffusion"}, headers=member.headers).json()["count"] == 1
    outsider = make_account("bexley-editor", bexley="editor")
    assert client.get("/api/datasets/camden-no2-diffusion-tubes", headers=outsider.headers).status_code == 404


def test_organisations_licences_and_me(client, editor):
    orgs = client.get("/api/organisations").json()["results"]
    assert len([o for o in orgs if o["kind"] == "local-authority"]) == 33
    assert {o["gss_code"] for o in orgs if o["slug"] == "camden"} == {"E09000007"}
    assert {"greater-london-authority", "transport-for-london", "metropolitan-police-service",
            "london-fire-brigade", "london-ambulance-service", "nhs-england-london"} <= {o["slug"] for o in orgs}
    licences = {lic["id"] for lic in client.get("/api/licences").json()["results"]}
    assert "OGL-UK-3.0" in licences
    assert client.get("/api/me", headers=editor.headers).json()["roles"] == {"camden": "editor"}


def test_openapi_and_platform_endpoints(client):
    schema = client.get("/openapi.json").json()
    assert "/api/datasets" in schema["paths"]
    assert "requestBody" in schema["paths"]["/api/datasets"]["post"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"  # "Authorize" in /api/docs
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["schema"] == health["expected_schema"]
    client.get("/api/datasets")
    metrics = client.get("/metrics").text
    assert 'smartlondon_http_requests_total{method="GET",route="/api/datasets",status="200"}' in metrics
