"""Every setting of the platform, read from ``SMARTLONDON_*`` environment variables.

With nothing set, the platform runs embedded: SQLite and files under ``./var``.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

_GB = 1024**3


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(f"SMARTLONDON_{name}")
    return value if value not in (None, "") else default


def _parse_size(text: str) -> int:
    """Parse a byte size such as ``5GB``, ``200MB``, ``1024`` into bytes."""
    units = {"kb": 1024, "mb": 1024**2, "gb": _GB, "tb": 1024**4, "b": 1}
    cleaned = text.strip().lower().replace(" ", "")
    for suffix, factor in units.items():
        if cleaned.endswith(suffix) and cleaned[: -len(suffix)].replace(".", "", 1).isdigit():
            return int(float(cleaned[: -len(suffix)]) * factor)
    if cleaned.isdigit():
        return int(cleaned)
    raise ValueError(f"not a byte size: {text!r} (use e.g. 5GB, 200MB or a number of bytes)")


@dataclass(frozen=True)
class Settings:
    """The platform's configuration; build one with :meth:`from_env`."""

    data_dir: Path = Path("var")
    database_url: str = ""
    secret_key: str = ""
    site_name: str = "London Datastore"
    brand_name: str = "smartlondon"
    feedback_url: str = ""
    base_url: str = "http://127.0.0.1:8000"
    max_upload_bytes: int = 5 * _GB
    preview_rows: int = 100
    page_size: int = 20
    log_level: str = "INFO"
    secure_cookies: bool = False
    token_days: int = 365
    # harvesting (docs/harvest.md): the scheduler runs due sources in `serve`; off unless from_env turns it on
    harvest_scheduler: bool = False
    harvest_tick_seconds: float = 60.0          # how often the scheduler looks for due sources
    harvest_stall_minutes: float = 15.0         # a job with no heartbeat for this long is marked failed
    # the open data charter scorecard (docs/charter.md): its scheduler checks links and rescores in `serve`
    charter_scheduler: bool = False
    charter_tick_seconds: float = 60.0          # how often the scheduler looks for due jobs
    linkcheck_private: bool = False             # let the link checker visit private network addresses
    # the tabular data store (docs/tabular.md)
    analytics_path: Path | None = None          # default: <data_dir>/analytics.duckdb
    datastore_sql_enabled: bool = False         # datastore_search_sql is opt-in
    datastore_sql_timeout: float = 10.0         # seconds before a datastore_search_sql query is interrupted
    datastore_rows_max: int = 32000             # the most rows one search or SQL query returns (CKAN's rows_max)
    datastore_inline_bytes: int = 10 * 1024**2  # files up to this size load before the upload's response
    datastore_workers: int = 1                  # background loader threads per process (0: none)
    catalogue_publisher: str = "greater-london-authority"
    catalogue_description: str = ("Open data about London, published by the Greater London Authority, the 33 "
                                  "boroughs and other public bodies.")
    # the MQTT extension of SensorThings API (docs/sensors-mqtt.md): off unless a broker URL is set
    mqtt_url: str = ""                          # e.g. mqtt://127.0.0.1:1883; empty: no bridge, HTTP serves everything
    mqtt_client_id: str = "smartlondon-sta-bridge"  # the bridge's persistent MQTT session
    mqtt_select: str = ""                       # $select topics to publish to, separated by spaces
    # the simulated smart lamppost fleet (docs/sensors-fleet.md): publishes live in `serve` when on
    demo_fleet: bool = False
    demo_fleet_seconds: float = 10.0            # one simulated hour of readings every this many seconds
    # the hourly air quality nowcast (docs/insights-airquality.md): runs each new hour in `serve` when on
    nowcast_scheduler: bool = False
    nowcast_tick_seconds: float = 300.0         # how often the scheduler looks for new hours
    nowcast_keep_days: int = 7                  # keep area rows and grids of the last N days of run hours
    # sensor observations older than this move to Parquet files (docs/sensors-archive.md); 0: never
    archive_after_days: int = 90                # `smartlondon sensors archive` without --older-than
    archive_path: Path | None = None            # default: <data_dir>/archive
    # calibration refits (docs/sensors-calibration.md): each applied calibration is checked every N days
    calibration_refit_days: float = 7.0         # 0: never refit
    calibration_refit_scheduler: bool = False   # runs the checks inside `serve` (on there unless set to 0)
    # LODA sharing (docs/sharing.md): restricted data and pseudonym keys live apart from everything else
    restricted_path: Path | None = None         # default: <data_dir>/restricted.duckdb
    keys_path: Path | None = None               # default: <data_dir>/keys (pseudonym keys, one file per epoch)

    @classmethod
    def from_env(cls) -> "Settings":
        """Read the settings from the ``SMARTLONDON_*`` environment variables."""
        data_dir = Path(_env("DATA_DIR", "var")).expanduser()
        settings = cls(
            data_dir=data_dir,
            database_url=_env("DATABASE_URL", "") or "",
            secret_key=_env("SECRET_KEY", "") or "",
            site_name=_env("SITE_NAME", cls.site_name) or cls.site_name,
            brand_name=_env("BRAND_NAME", cls.brand_name) or cls.brand_name,
            feedback_url=_env("FEEDBACK_URL", "") or "",
            base_url=(_env("BASE_URL", cls.base_url) or cls.base_url).rstrip("/"),
            max_upload_bytes=_parse_size(_env("MAX_UPLOAD", "5GB") or "5GB"),
            preview_rows=int(_env("PREVIEW_ROWS", "100") or 100),
            page_size=int(_env("PAGE_SIZE", "20") or 20),
            log_level=(_env("LOG_LEVEL", "INFO") or "INFO").upper(),
            secure_cookies=(_env("SECURE_COOKIES", "0") or "0").lower() in {"1", "true", "yes"},
            token_days=int(_env("TOKEN_DAYS", "365") or 365),
            harvest_scheduler=(_env("HARVEST_SCHEDULER", "1") or "1").lower() in {"1", "true", "yes", "on"},
            harvest_tick_seconds=float(_env("HARVEST_TICK_SECONDS", "60") or 60),
            harvest_stall_minutes=float(_env("HARVEST_STALL_MINUTES", "15") or 15),
            charter_scheduler=(_env("CHARTER_SCHEDULER", "1") or "1").lower() in {"1", "true", "yes", "on"},
            charter_tick_seconds=float(_env("CHARTER_TICK_SECONDS", "60") or 60),
            linkcheck_private=(_env("LINKCHECK_PRIVATE", "0") or "0").lower() in {"1", "true", "yes", "on"},
            analytics_path=Path(_env("ANALYTICS_PATH")).expanduser() if _env("ANALYTICS_PATH") else None,  # type: ignore[arg-type]
            datastore_sql_enabled=(_env("DATASTORE_SQL", "0") or "0").lower() in {"1", "true", "yes"},
            datastore_sql_timeout=float(_env("DATASTORE_SQL_TIMEOUT", "10") or 10),
            datastore_rows_max=int(_env("DATASTORE_ROWS_MAX", "32000") or 32000),
            datastore_inline_bytes=_parse_size(_env("DATASTORE_INLINE_SIZE", "10MB") or "10MB"),
            datastore_workers=int(_env("DATASTORE_WORKERS", "1") or 1),
            catalogue_publisher=_env("CATALOGUE_PUBLISHER", cls.catalogue_publisher) or cls.catalogue_publisher,
            catalogue_description=(_env("CATALOGUE_DESCRIPTION", cls.catalogue_description)
                                   or cls.catalogue_description),
            mqtt_url=_env("MQTT_URL", "") or "",
            mqtt_client_id=_env("MQTT_CLIENT_ID", cls.mqtt_client_id) or cls.mqtt_client_id,
            mqtt_select=_env("MQTT_SELECT", "") or "",
            demo_fleet=(_env("DEMO_FLEET", "0") or "0").lower() in {"1", "true", "yes", "on"},
            demo_fleet_seconds=float(_env("DEMO_FLEET_SECONDS", "10") or 10),
            nowcast_scheduler=(_env("NOWCAST", "0") or "0").lower() in {"1", "true", "yes", "on"},
            nowcast_tick_seconds=float(_env("NOWCAST_TICK_SECONDS", "300") or 300),
            nowcast_keep_days=int(_env("NOWCAST_KEEP_DAYS", "7") or 7),
            archive_after_days=int(_env("ARCHIVE_AFTER_DAYS", "90") or 90),
            archive_path=Path(_env("ARCHIVE_PATH")).expanduser() if _env("ARCHIVE_PATH") else None,  # type: ignore[arg-type]
            calibration_refit_days=float(_env("CALIBRATION_REFIT_DAYS", "7") or 0),
            calibration_refit_scheduler=(_env("CALIBRATION_REFIT_SCHEDULER", "1") or "1").lower() in {"1", "true", "yes", "on"},
            restricted_path=Path(_env("RESTRICTED_PATH")).expanduser() if _env("RESTRICTED_PATH") else None,  # type: ignore[arg-type]
            keys_path=Path(_env("KEYS_PATH")).expanduser() if _env("KEYS_PATH") else None,  # type: ignore[arg-type]
        )
        return settings.resolved()

    def resolved(self) -> "Settings":
        """Fill in the defaults that depend on the data directory."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'smartlondon.db').as_posix()}"
        key = self.secret_key or _stored_secret(self.data_dir)
        return replace(self, database_url=url, secret_key=key)

    @property
    def files_dir(self) -> Path:
        """Where uploaded files are stored."""
        return self.data_dir / "files"

    @property
    def analytics_store(self) -> Path:
        """The DuckDB file of the analytics store (tabular data)."""
        return self.analytics_path or self.data_dir / "analytics.duckdb"

    @property
    def archive_dir(self) -> Path:
        """Where archived sensor observations are kept as Parquet files."""
        return self.archive_path or self.data_dir / "archive"

    @property
    def restricted_store(self) -> Path:
        """The DuckDB file of restricted (LODA) data, reachable only through the sharing gateway."""
        return self.restricted_path or self.data_dir / "restricted.duckdb"

    @property
    def keys_dir(self) -> Path:
        """Where the pseudonymisation keys are kept, apart from the data they pseudonymise."""
        return self.keys_path or self.data_dir / "keys"


def _stored_secret(data_dir: Path) -> str:
    """Return the secret key kept in ``<data_dir>/secret_key``, creating it on first use."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key
