"""The ASGI application: one app, each capability mounting its routers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from . import __version__
from .core import migrate
from .core.db import Database
from .core.errors import BadRequest, NotFound, PlatformError
from .core.observability import (
    REGISTRY,
    JsonSuffixMiddleware,
    ObservabilityMiddleware,
    SecurityHeadersMiddleware,
    configure_logging,
)
from .core.storage import LocalStorage
from .core.web import error_response
from .settings import Settings
from .web.templating import make_environment
from .sensors.sta import odata as _sta_odata  # noqa: F401  (registers SQLite's $filter functions before any connection opens)
from .places import spatial as _places_spatial  # noqa: F401  (registers SQLite's spatial functions before any connection opens)

STATIC = Path(__file__).parent / "web" / "static"
CAPABILITY_TEMPLATES = ("smartlondon.catalogue", "smartlondon.catalogue.harvest", "smartlondon.core",
                        "smartlondon.places", "smartlondon.sensors", "smartlondon.sharing",
                        "smartlondon.insights")


def create_app(settings: Settings | None = None, db: Database | None = None,
               check_schema: bool = True) -> FastAPI:
    """Build the application for ``settings`` (default: from the environment)."""
    settings = (settings or Settings.from_env()).resolved()
    configure_logging(settings.log_level)
    db = db or Database(settings.database_url)
    if check_schema:
        migrate.check_current(db)
    app = FastAPI(
        title=f"{settings.site_name} API", version=__version__, docs_url=None, redoc_url=None,
        openapi_url="/openapi.json",
        description=("The native JSON API of the platform. Every HTML page also has a JSON twin: add "
                     "`.json` to its address or send `Accept: application/json`. Authenticate writes with "
                     "an API token: `Authorization: Bearer sl_...`."),
    )
    app.state.settings = settings
    app.state.db = db
    app.state.storage = LocalStorage(settings.files_dir)
    loaders: list[jinja2.BaseLoader] = []
    for package in CAPABILITY_TEMPLATES:
        try:
            loaders.append(jinja2.PackageLoader(package, "templates"))
        except ValueError:
            continue
    app.state.templates = make_environment(loaders)
    _install_filters(app.state.templates)

    app.add_middleware(SessionMiddleware, secret_key=settings.secret_key, session_cookie="smartlondon_session",
                       same_site="lax", https_only=settings.secure_cookies, max_age=14 * 24 * 3600)
    app.add_middleware(SecurityHeadersMiddleware)
    from .catalogue.rdf import RdfNegotiationMiddleware

    app.add_middleware(RdfNegotiationMiddleware)  # inside JsonSuffixMiddleware: sees its json_suffix mark
    app.add_middleware(JsonSuffixMiddleware)
    app.add_middleware(ObservabilityMiddleware)
    _install_error_handlers(app)
    _install_platform_routes(app)

    from .catalogue import api as catalogue_api
    from .catalogue import pages as catalogue_pages
    from .core import pages as core_pages

    app.include_router(catalogue_api.router)
    from .catalogue.ckan import router as ckan_router

    app.include_router(ckan_router.router)  # the CKAN Action API: /api/action/<name>, /api/3/action/<name>
    from .sensors import ext_api as sensors_ext_api

    app.include_router(sensors_ext_api.router)  # STA extensions /sta/v1.1/ext/...: before the STA catch-all (docs/sensors-extensions.md)
    from .sensors.calibration import api as sensors_calibration_api

    app.include_router(sensors_calibration_api.router)  # /sta/v1.1/ext/calibrations (docs/sensors-calibration.md)
    from .sensors.calibration import refit as sensors_calibration_refit

    sensors_calibration_refit.install(app)  # refits applied calibrations in `serve` every SMARTLONDON_CALIBRATION_REFIT_DAYS
    from .sensors import ngsi_ld as sensors_ngsi_ld

    app.include_router(sensors_ngsi_ld.router)  # read-only NGSI-LD views /ngsi-ld/v1/entities (docs/sensors-extensions.md)
    from .sensors.sta import router as sta_router

    app.include_router(sta_router.router)  # SensorThings API v1.1 reads: /sta/v1.1 (docs/sensors.md)
    from .sensors.sta import writes as sta_writes

    app.include_router(sta_writes.router)  # SensorThings API v1.1 writes, $batch, CreateObservations (docs/sensors-writes.md)
    app.include_router(core_pages.router)
    from .catalogue import bulk as catalogue_bulk
    from .catalogue import rdf as catalogue_rdf

    app.include_router(catalogue_rdf.router)  # before the pages: /dataset/<slug>.ttl is not a slug
    app.include_router(catalogue_bulk.router)
    app.include_router(catalogue_pages.router)
    from .catalogue.charter import pages as charter_pages
    from .catalogue.charter import scheduler as charter_scheduler

    app.include_router(charter_pages.router)  # /charter league tables, /dataset/<slug>/charter
    charter_scheduler.install(app)  # checks links and rescores in the background when SMARTLONDON_CHARTER_SCHEDULER is on
    from .catalogue.harvest import pages as harvest_pages
    from .catalogue.harvest import scheduler as harvest_scheduler

    app.include_router(harvest_pages.router)  # /harvest: sources, jobs and their reports
    app.include_router(harvest_pages.api)  # /api/harvest
    harvest_scheduler.install(app)  # runs due sources in the background when SMARTLONDON_HARVEST_SCHEDULER is on
    from .catalogue import tabular

    tabular.install(app)  # /datastore/dump, validation reports, the background loader (docs/tabular.md)
    from .places import match_api as places_match_api

    app.include_router(places_match_api.router)  # /places/search, /places/match, /places/reconcile: before /places/{uid}
    from .places import api as places_api
    from .places import ogc as places_ogc

    app.include_router(places_api.router)  # /places/api: place, reverse, nearest, within (docs/places.md)
    app.include_router(places_ogc.router)  # /places/ogc: OGC API - Features (docs/places.md)
    from .places import pages as places_pages

    app.include_router(places_pages.router)  # /places/ldn:...: place and area pages (after places-match's routes)
    from .sensors import mqtt as sensors_mqtt

    sensors_mqtt.install(app)  # the SensorThings MQTT bridge, when SMARTLONDON_MQTT_URL is set (docs/sensors-mqtt.md)
    from .sensors import fleet as sensors_fleet

    sensors_fleet.install(app)  # the simulated lamppost fleet publishes live, when SMARTLONDON_DEMO_FLEET is on (docs/sensors-fleet.md)
    from .sensors import pages as sensors_pages

    app.include_router(sensors_pages.router)  # /sensors map and list, /sensors/things/{id} (docs/sensors-web.md)
    from .insights.airquality import pages as airquality_pages

    app.include_router(airquality_pages.router)  # /insights/airquality: the map, "where you are", the model card (docs/insights-airquality.md)
    from .insights.airquality import nowcast as airquality_nowcast
    from .insights.airquality import nowcast_api as airquality_nowcast_api

    app.include_router(airquality_nowcast_api.router)  # /api/airquality/nowcast: JSON, GeoJSON, CSV, PNG (docs/insights-airquality.md)
    airquality_nowcast.install(app)  # the hourly nowcast scheduler, when SMARTLONDON_NOWCAST is on
    from .sharing.privacy import api as privacy_api
    from .sharing.privacy import pages as privacy_pages

    app.include_router(privacy_api.router)  # /api/sharing: subject requests, opt-outs, trusts (docs/sharing-privacy.md)
    app.include_router(privacy_pages.router)  # /sharing/pseudonymisation, /sharing/trusts, /sharing/your-data ...
    from .sharing import api as sharing_api
    from .sharing import pages as sharing_pages

    app.include_router(sharing_api.router)  # /api/sharing/agreements, the gateway /api/sharing/queries (docs/sharing.md)
    app.include_router(sharing_pages.router)  # /sharing/agreements register, /sharing/uses public record (docs/sharing.md)
    from .sharing.disclosure import api as disclosure_api
    from .sharing.disclosure import pages as disclosure_pages

    app.include_router(disclosure_api.router)  # /api/sharing/reviews, /api/sharing/privacy-budgets (docs/sharing-disclosure.md)
    app.include_router(disclosure_pages.router)  # /sharing/reviews: the two-person output review queue
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _install_filters(env: jinja2.Environment) -> None:
    from .core.storage import human_size
    from .web import filters

    env.filters["human_size"] = human_size
    env.filters["markdown"] = filters.markdown
    env.filters["date"] = filters.format_date
    env.filters["datetime"] = filters.format_datetime


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PlatformError)
    async def platform_error(request: Request, exc: PlatformError) -> Response:
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        fields: dict[str, str] = {}
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
            fields[".".join(loc) or "body"] = err.get("msg", "is not valid")
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return error_response(request, BadRequest("The request body is not valid JSON.", fields))
        message = "The request is not valid: " + "; ".join(f"{k}: {v}" for k, v in fields.items())
        return error_response(request, BadRequest(message, fields))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return error_response(request, NotFound(
                "If you typed the web address, check it is correct. If you pasted it, check you copied "
                "the whole address."))
        err = PlatformError(str(exc.detail))
        err.status = exc.status_code
        err.code = "http_error"
        return error_response(request, err)


def _install_platform_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["platform"], summary="Health check")
    def healthz(request: Request) -> JSONResponse:
        """Whether the database answers and its schema is current."""
        db: Database = request.app.state.db
        try:
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            current = migrate.current_revision(db)
            head = migrate.head_revision()
        except Exception as exc:  # report, never raise, from a health check
            return JSONResponse({"status": "error", "database": db.dialect, "error": str(exc)}, status_code=503)
        ok = current == head
        return JSONResponse({"status": "ok" if ok else "schema out of date", "database": db.dialect,
                             "schema": current, "expected_schema": head, "version": __version__},
                            status_code=200 if ok else 503)

    @app.get("/metrics", tags=["platform"], summary="Prometheus metrics", response_class=PlainTextResponse)
    def metrics() -> Response:
        """Request counts and latencies in the Prometheus text format."""
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/docs", include_in_schema=False)
    def api_docs(request: Request) -> Any:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title=f"{request.app.state.settings.site_name} API",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )
