"""The demo loader: London's organisations and a catalogue built from real London open data.

Idempotent: datasets already present (by slug) are left alone, so running it twice changes nothing.
Everything goes through the catalogue service, so the demo is indexed, audited and validated
exactly like data a publisher adds.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from rich.progress import Progress
from sqlalchemy import select

from ..catalogue import service
from ..catalogue.models import Dataset
from ..core import accounts, reference
from ..core.accounts import COMMAND_LINE
from ..core.db import Database
from ..core.models import User
from ..core.storage import LocalStorage
from ..settings import Settings
from .plan import demo_datasets, resource_file

DATA_DIR = Path(__file__).with_name("data")
FEATURED = {"london-borough-boundaries", "laqn-hourly-readings-2023-01", "tfl-stations-2022",
            "english-indices-of-deprivation-2019-london-lsoas", "fuel-poverty-by-lsoa-2020",
            "laqn-monitoring-sites"}
ADMIN = "demo-admin"


def ensure_admin(db: Database, settings: Settings) -> str | None:
    """Create the demo sysadmin once; return its password (kept in ``var/demo-admin-password``)."""
    secret_file = settings.data_dir / "demo-admin-password"
    with db.session() as session:
        if session.scalar(select(User.id).where(User.username == ADMIN)) is not None:
            return secret_file.read_text().strip() if secret_file.exists() else None
        password = secrets.token_urlsafe(12)
        accounts.create_user(session, username=ADMIN, email="demo-admin@example.org", password=password,
                             display_name="Demo administrator", sysadmin=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return password


def load_dataset(db: Database, storage: LocalStorage, settings: Settings, plan: dict[str, Any]) -> int:
    """Create one planned dataset with its resources in one transaction; returns files stored."""
    stored_keys: list[str] = []
    try:
        with db.session() as session:
            fields = {k: v for k, v in plan.items() if k != "resources"}
            fields["featured"] = plan["slug"] in FEATURED
            ds = service.create_dataset(session, COMMAND_LINE, fields)
            for res in plan["resources"]:
                data = {"title": res["title"], "description": res.get("description") or "",
                        "format": res.get("format")}
                if res.get("file"):
                    path = resource_file(DATA_DIR, res["file"])
                    stored = storage.store_file(path, settings.max_upload_bytes)
                    stored_keys.append(stored.key)
                    service.add_resource(session, COMMAND_LINE, ds, data, stored=stored, filename=path.name)
                else:
                    service.add_resource(session, COMMAND_LINE, ds, {**data, "url": res["url"]})
    except BaseException:
        for key in stored_keys:
            storage.delete(key)
        raise
    return len(stored_keys)


def load_demo(db: Database, settings: Settings, progress: Progress | None = None) -> dict[str, Any]:
    """Load the whole demo; returns counts and the admin password (if known)."""
    with db.session() as session:
        reference.seed(session)
        organisations = len(accounts.list_organisations(session))
        existing = set(session.scalars(select(Dataset.slug)))
    password = ensure_admin(db, settings)
    storage = LocalStorage(settings.files_dir)
    plans = demo_datasets(DATA_DIR)
    task = progress.add_task("Loading demo datasets", total=len(plans)) if progress else None
    created = files = 0
    for plan in plans:
        if plan["slug"] not in existing:
            files += load_dataset(db, storage, settings, plan)
            created += 1
        if progress is not None and task is not None:
            progress.advance(task)
    from ..sensors.laqn import load_demo_network  # the real LAQN network in the sensor hub (docs/sensors-web.md)
    load_demo_network(db, progress, settings.base_url.rstrip("/") + "/sta/v1.1")
    from ..sensors.fleet import load_demo_fleet  # the simulated smart lampposts, calibrated (docs/sensors-fleet.md)
    load_demo_fleet(db, progress, settings.base_url.rstrip("/") + "/sta/v1.1")
    from ..places.importer import load_demo as load_places  # the register's areas, stations and sites (docs/places.md)

    with db.session() as session:
        load_places(session)
    from ..insights.airquality.nowcast import load_demo as load_nowcast  # the latest hour's map + 47 hours of areas (docs/insights-airquality.md)

    nowcast = load_nowcast(db, settings, progress)  # and its self-updating catalogue dataset
    from ..sharing.demo import load_demo as load_sharing  # LODA: home fire safety visits, synthetic people (docs/sharing-privacy.md)

    with db.session() as session:
        shared = load_sharing(session, settings)  # one restricted catalogue dataset (metadata only, no files)
    created += (1 if shared["created"] else 0) + (1 if nowcast["dataset_created"] else 0)
    return {"datasets": len(plans) + 2, "created": created, "files": files, "organisations": organisations,
            "password": password}
