"""Settings, migrations, storage, the command line and the platform endpoints."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from smartlondon.app import create_app
from smartlondon.cli import main
from smartlondon.core import migrate
from smartlondon.core.db import Database
from smartlondon.core.errors import PayloadTooLarge
from smartlondon.core.storage import LocalStorage
from smartlondon.settings import Settings, _parse_size


def test_defaults_are_embedded_sqlite_under_var(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("SMARTLONDON_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env()
    assert settings.database_url == "sqlite:///var/smartlondon.db"
    assert settings.max_upload_bytes == 5 * 1024**3
    assert (tmp_path / "var" / "secret_key").exists()  # generated once, kept private
    assert Settings.from_env().secret_key == settings.secret_key
    monkeypatch.setenv("SMARTLONDON_MAX_UPLOAD", "200MB")
    monkeypatch.setenv("SMARTLONDON_SITE_NAME", "Camden Datastore")
    settings = Settings.from_env()
    assert settings.max_upload_bytes == 200 * 1024**2 and settings.site_name == "Camden Datastore"
    with pytest.raises(ValueError, match="byte size"):
        _parse_size("lots")


def test_app_refuses_an_out_of_date_schema(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    settings = Settings(data_dir=tmp_path, database_url=db.url, secret_key="x").resolved()
    with pytest.raises(migrate.SchemaOutOfDate, match="smartlondon db upgrade"):
        create_app(settings, db)
    migrate.upgrade(db)
    create_app(settings, db)  # now it starts


def test_serve_command_says_how_to_fix_an_empty_database(tmp_path):
    env = {**os.environ, "SMARTLONDON_DATA_DIR": str(tmp_path), "SMARTLONDON_DATABASE_URL": ""}
    done = subprocess.run([sys.executable, "-m", "smartlondon.cli", "serve", "--port", "8999"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "smartlondon db upgrade" in done.stderr


def test_any_command_on_an_empty_database_says_to_upgrade_it(tmp_path, monkeypatch):
    """Not a traceback: a message that says what to do."""
    from smartlondon.cli import main

    monkeypatch.setenv("SMARTLONDON_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SMARTLONDON_DATABASE_URL", raising=False)
    for args in (["token", "revoke", "5"], ["places", "show", "ldn:borough:E09000007"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, (args, result.output)
        assert "smartlondon db upgrade" in " ".join(result.output.split()) and "Traceback" not in result.output


def test_storage_streams_hashes_and_limits(tmp_path):
    storage = LocalStorage(tmp_path)
    data = os.urandom(3 * 1024 * 1024 + 17)
    stored = storage.store_stream(iter([data[:1000], data[1000:]]), max_bytes=len(data))
    assert stored.sha256 == hashlib.sha256(data).hexdigest() and stored.byte_size == len(data)
    assert b"".join(storage.open_range(stored.key)) == data
    assert b"".join(storage.open_range(stored.key, 10, 19)) == data[10:20]
    with pytest.raises(PayloadTooLarge):
        storage.store_stream(iter([data]), max_bytes=1024)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files == [storage.path(stored.key)]  # the refused file left nothing behind


def test_cli_creates_users_and_tokens_that_work(tmp_path, client, db, settings, monkeypatch):
    monkeypatch.setenv("SMARTLONDON_DATABASE_URL", db.url)
    monkeypatch.setenv("SMARTLONDON_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()
    made = runner.invoke(main, ["user", "create", "eve", "--email", "eve@example.org",
                                "--password", "a long password", "--org", "hackney:editor"])
    assert made.exit_code == 0, made.output
    token = runner.invoke(main, ["token", "create", "eve", "--name", "script", "--days", "7"])
    assert token.exit_code == 0, token.output
    secret = token.stdout.strip().splitlines()[-1]
    assert secret.startswith("sl_")
    me = client.get("/api/me", headers={"Authorization": f"Bearer {secret}"}).json()
    assert me["roles"] == {"hackney": "editor"}
    bad = runner.invoke(main, ["user", "create", "eve", "--email", "x@example.org", "--password", "another pw 12"])
    assert bad.exit_code == 1 and "already exists" in bad.output
    unknown = runner.invoke(main, ["user", "role", "eve", "atlantis", "editor"])
    assert unknown.exit_code == 1 and "no organisation called 'atlantis'" in unknown.output
    made = runner.invoke(main, ["org", "create", "barts-health", "Barts Health NHS Trust", "--kind", "health"])
    assert made.exit_code == 0, made.output
    assert client.get("/api/organisations/barts-health").json()["name"] == "Barts Health NHS Trust"
    again = runner.invoke(main, ["org", "create", "barts-health", "Barts again"])
    assert again.exit_code == 1 and "already used" in again.output


def test_healthz_reports_the_database(client, db):
    body = client.get("/healthz").json()
    assert body["database"] == db.dialect and body["status"] == "ok"


def test_security_headers_and_request_ids(client):
    res = client.get("/healthz", headers={"X-Request-ID": "abc123"})
    assert res.headers["x-request-id"] == "abc123"
    assert "frame-ancestors 'none'" in res.headers["content-security-policy"]
    assert res.headers["x-content-type-options"] == "nosniff"


def test_bounding_boxes_are_stored_and_searchable(db, client, editor):
    client.post("/api/datasets", json={"title": "Trees", "slug": "trees", "publisher": "camden",
                                       "bbox": [-0.2, 51.5, -0.1, 51.6]}, headers=editor.headers)
    assert client.get("/api/datasets", params={"bbox": "-0.15,51.55,0,51.7"}).json()["count"] == 1
    assert client.get("/api/datasets", params={"bbox": "0.1,51.3,0.2,51.4"}).json()["count"] == 0
    with db.engine.connect() as conn:
        if db.dialect == "postgresql":  # PostGIS keeps the box as a geometry too
            area = conn.execute(text("SELECT ST_Area(footprint) FROM dataset WHERE slug = 'trees'")).scalar()
            assert area == pytest.approx(0.01)
        else:
            box = conn.execute(text("SELECT bbox_west, bbox_north FROM dataset WHERE slug = 'trees'")).one()
            assert tuple(box) == (-0.2, 51.6)
