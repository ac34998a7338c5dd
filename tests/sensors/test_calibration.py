"""Extension: calibration of low-cost sensors against co-located reference monitors (sensors/calibration)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from smartlondon.cli import main
from smartlondon.core.db import Database
from smartlondon.sensors import service
from smartlondon.sensors.calibration.estimators import (
    LinearHumidityTemperature, Pairs, RobustLinearHumidityTemperature,
)
from smartlondon.sensors.calibration.service import TEMPERATURE_DEFINITION
from smartlondon.sensors.models import Datastream, Observation

ROOT = "http://testserver/sta/v1.1"
EXT = "/sta/v1.1/ext/calibrations"
START = datetime(2023, 3, 18, tzinfo=timezone.utc)
UG = {"name": "microgram per cubic metre", "symbol": "µg/m³", "definition": "http://qudt.org/vocab/unit/MicroGM-PER-M3"}
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
# the truth the synthetic low-cost sensor hides: reference = A + B·raw + D·T
A, B, D = 4.0, 0.8, -0.6


def _synthetic(n: int = 400, seed: int = 1, outliers: int = 0) -> tuple[Pairs, dict[str, float]]:
    rng = np.random.default_rng(seed)
    raw = rng.uniform(5, 90, n)
    humidity = rng.uniform(40, 95, n)
    temperature = rng.uniform(-2, 18, n)
    reference = 3.0 + 0.7 * raw - 0.05 * humidity + 0.4 * temperature + rng.normal(0, 0.2, n)
    if outliers:
        reference[:outliers] += 200.0
    return Pairs.of(raw, reference, humidity, temperature), {"intercept": 3.0, "raw": 0.7, "humidity": -0.05,
                                                              "temperature": 0.4}


def test_linear_model_recovers_known_coefficients_and_reports_before_and_after() -> None:
    pairs, truth = _synthetic()
    model = LinearHumidityTemperature().fit(pairs)
    for name, value in truth.items():  # the intercept is the least certain (noise sd 0.2)
        assert model.params["coefficients"][name] == pytest.approx(value, abs=0.2 if name == "intercept" else 0.01)
    stats = model.fit_stats
    assert stats["n"] == 400
    assert stats["after"]["r2"] > 0.99 and stats["after"]["rmse"] < 0.3 and abs(stats["after"]["bias"]) < 1e-6
    assert stats["before"]["rmse"] > stats["after"]["rmse"] * 10
    # stored params restore the same model
    again = LinearHumidityTemperature.from_params(model.params)
    assert again.predict([50.0], [60.0], [10.0])[0] == pytest.approx(3.0 + 35.0 - 3.0 + 4.0, abs=0.3)
    # a missing covariate is taken at its fit mean instead of breaking the prediction
    assert math.isfinite(float(again.predict([50.0], [float("nan")], None)[0]))


def test_robust_model_resists_glitches_that_pull_least_squares_off() -> None:
    pairs, truth = _synthetic(outliers=20)
    plain = LinearHumidityTemperature().fit(pairs).params["coefficients"]
    robust = RobustLinearHumidityTemperature().fit(pairs).params["coefficients"]
    assert abs(robust["intercept"] - truth["intercept"]) < 0.5
    assert abs(plain["intercept"] - truth["intercept"]) > abs(robust["intercept"] - truth["intercept"]) * 5


def test_a_covariate_that_is_unknown_is_left_out_of_the_model() -> None:
    rng = np.random.default_rng(3)
    raw = rng.uniform(5, 90, 100)
    model = LinearHumidityTemperature().fit(Pairs.of(raw, 2 + 0.5 * raw))
    assert model.params["terms"] == ["intercept", "raw"]
    assert model.params["coefficients"]["humidity"] == 0.0
    assert model.params["coefficients"]["raw"] == pytest.approx(0.5)


# --- on the database, through the API ----------------------------------------------------------------

def _point(lon: float, lat: float) -> dict:
    return {"type": "Point", "coordinates": [lon, lat]}


def _site(db: Database, hours: int = 72, lamppost_offset: float = 0.0002) -> dict[str, int]:
    """A reference NO2 monitor and, about 20 m away, a lamppost with a low-cost NO2 sensor and a temperature stream."""
    with db.session() as session:
        def make(path: str, body: dict) -> int:
            return service.create_from_path(session, path, body, ROOT)["@iot.id"]

        sensor = make("Sensors", {"name": "Analyser", "description": "d", "encodingType": "text/html", "metadata": "m"})
        no2 = make("ObservedProperties", {"name": "Nitrogen dioxide", "description": "NO2",
                                           "definition": "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/8"})
        air = make("ObservedProperties", {"name": "Air temperature", "description": "T", "definition": TEMPERATURE_DEFINITION})
        reference_thing = make("Things", {"name": "Reference site", "description": "LAQN-like", "Locations": [{
            "name": "site", "description": "d", "encodingType": "application/geo+json", "location": _point(-0.1256, 51.5222)}]})
        lamppost = make("Things", {"name": "Lamppost", "description": "low-cost", "Locations": [{
            "name": "lamppost", "description": "d", "encodingType": "application/geo+json",
            "location": _point(-0.1256 + lamppost_offset, 51.5222)}]})

        def stream(name: str, thing: int, prop: int, unit: dict) -> int:
            return make("Datastreams", {"name": name, "description": "d", "observationType": MEASUREMENT,
                                        "unitOfMeasurement": unit, "properties": {"species": "NO2"} if prop == no2 else {},
                                        "Thing": {"@iot.id": thing}, "Sensor": {"@iot.id": sensor},
                                        "ObservedProperty": {"@iot.id": prop}})

        ids = {"reference": stream("NO2 reference", reference_thing, no2, UG),
               "raw": stream("NO2 low-cost", lamppost, no2, UG),
               "temperature": stream("Air temperature", lamppost, air, {"name": "degree Celsius", "symbol": "°C",
                                                                         "definition": "http://qudt.org/vocab/unit/DEG_C"}),
               "lamppost": lamppost, "reference_thing": reference_thing}
        ref_rows, raw_rows, t_rows = [], [], []
        for h in range(hours):
            when = START + timedelta(hours=h)
            temperature = 8 + 6 * math.sin(h / 24 * 2 * math.pi)
            raw = 40 + 25 * math.sin(h / 7) + (h % 5)
            ref_rows.append((when, round(A + B * raw + D * temperature, 4)))
            raw_rows.append((when, raw))
            t_rows.append((when, round(temperature, 4)))
        service.bulk_insert(session, ids["reference"], ref_rows)
        service.bulk_insert(session, ids["raw"], raw_rows)
        service.bulk_insert(session, ids["temperature"], t_rows)
    return ids


@pytest.fixture
def writer(editor) -> dict:  # type: ignore[no-untyped-def]
    return editor.headers


def _fit(client: TestClient, headers: dict, ids: dict, hours: int = 48, status: int = 201, **extra: object) -> dict:
    body = {"lowCost": ids["raw"], "reference": ids["reference"], "from": "2023-03-18T00:00:00Z",
            "to": (START + timedelta(hours=hours)).isoformat().replace("+00:00", "Z"), **extra}
    response = client.post(EXT, json=body, headers=headers)
    assert response.status_code == status, response.text
    return response.json()


def _derived(db: Database, derived_id: int) -> list[Observation]:
    with db.session() as session:
        return list(session.scalars(select(Observation).where(Observation.datastream_id == derived_id)
                                    .order_by(Observation.phenomenon_time_start)))


def test_fit_over_a_window_stores_the_model_and_a_derived_calibrated_datastream(client: TestClient, db: Database,
                                                                                 writer: dict) -> None:
    ids = _site(db)
    made = _fit(client, writer, ids)
    assert made["version"] == 1 and made["active"] is True and made["kind"] == "linear-humidity-temperature"
    coefficients = made["params"]["coefficients"]
    assert coefficients["intercept"] == pytest.approx(A, abs=1e-3)
    assert coefficients["raw"] == pytest.approx(B, abs=1e-4)
    assert coefficients["temperature"] == pytest.approx(D, abs=1e-3)
    assert made["temperatureDatastream@iot.id"] == ids["temperature"]
    assert made["distanceMetres"] == pytest.approx(13.9, abs=1)
    stats = made["fitStatistics"]
    assert stats["n"] == 48 and stats["after"]["r2"] == pytest.approx(1.0) and stats["before"]["r2"] < 0.9
    # the fit statistics are stored: the list and the single resource say the same
    listed = client.get(EXT, params={"datastream": ids["raw"]}).json()
    assert listed["@iot.count"] == 1 and listed["value"][0]["fitStatistics"] == stats
    assert client.get(made["@iot.selfLink"].replace("http://testserver", "")).json()["params"] == made["params"]
    # the derived Datastream says what it is, and is an ordinary STA Datastream
    derived_id = made["derivedDatastream@iot.id"]
    derived = client.get(f"/sta/v1.1/Datastreams({derived_id})").json()
    assert derived["properties"]["derived"] is True
    assert derived["properties"]["derivedFrom"] == {"Datastream@iot.id": ids["raw"]}
    assert derived["properties"]["calibration"]["version"] == 1
    # every raw value (the whole 72 hours, not only the fit window) has its calibrated twin, close to the reference
    observations = client.get(f"/sta/v1.1/Datastreams({derived_id})/Observations",
                              params={"$top": 1000, "$orderby": "phenomenonTime asc"}).json()["value"]
    assert len(observations) == 72
    reference = client.get(f"/sta/v1.1/Datastreams({ids['reference']})/Observations",
                           params={"$top": 1000, "$orderby": "phenomenonTime asc"}).json()["value"]
    for ours, theirs in zip(observations, reference):
        assert ours["phenomenonTime"] == theirs["phenomenonTime"]
        assert ours["result"] == pytest.approx(theirs["result"], abs=0.02)
        assert ours["parameters"]["calibration"]["version"] == 1
        assert "qc" in ours["resultQuality"]
    latest = client.get("/sta/v1.1/ext/latest", params={"datastreams": str(derived_id)}).json()["value"]
    assert latest[0]["Observation"]["phenomenonTime"] == "2023-03-20T23:00:00Z"


def test_new_raw_observations_are_calibrated_as_they_arrive(client: TestClient, db: Database, writer: dict) -> None:
    ids = _site(db)
    made = _fit(client, writer, ids)
    derived_id = made["derivedDatastream@iot.id"]
    when = "2023-03-21T00:00:00Z"
    client.post(f"/sta/v1.1/Datastreams({ids['temperature']})/Observations",
                json={"phenomenonTime": when, "result": 10.0}, headers=writer).raise_for_status()
    response = client.post(f"/sta/v1.1/Datastreams({ids['raw']})/Observations",
                           json={"phenomenonTime": when, "result": 50.0}, headers=writer)
    assert response.status_code == 201
    newest = client.get(f"/sta/v1.1/Datastreams({derived_id})/Observations",
                        params={"$top": 1, "$orderby": "phenomenonTime desc"}).json()["value"][0]
    assert newest["phenomenonTime"] == when
    assert newest["result"] == pytest.approx(A + B * 50.0 + D * 10.0, abs=0.01)
    assert newest["parameters"]["rawObservation@iot.id"] == response.json()["@iot.id"]
    # the bulk path (dataArray) too
    client.post("/sta/v1.1/CreateObservations", headers=writer, json=[{
        "Datastream": {"@iot.id": ids["raw"]}, "components": ["phenomenonTime", "result"],
        "dataArray": [["2023-03-21T01:00:00Z", 60.0], ["2023-03-21T02:00:00Z", 61.0]]}]).raise_for_status()
    assert len(_derived(db, derived_id)) == 75


def test_a_refit_makes_a_new_version_old_values_keep_theirs_unless_recomputed(client: TestClient, db: Database,
                                                                              writer: dict) -> None:
    ids = _site(db)
    first = _fit(client, writer, ids, hours=24)
    second = _fit(client, writer, ids, hours=48, kind="robust-linear-humidity-temperature")
    assert second["version"] == 2 and second["kind"] == "robust-linear-humidity-temperature"
    assert second["derivedDatastream@iot.id"] == first["derivedDatastream@iot.id"]
    listed = client.get(EXT, params={"datastream": ids["raw"]}).json()["value"]
    assert [(c["version"], c["active"]) for c in listed] == [(2, True), (1, False)]
    derived_id = second["derivedDatastream@iot.id"]
    assert {o.parameters["calibration"]["version"] for o in _derived(db, derived_id)} == {1}
    assert client.get(f"/sta/v1.1/Datastreams({derived_id})").json()["properties"]["calibration"]["version"] == 2
    with db.session() as session:
        service.bulk_insert(session, ids["raw"], [(START + timedelta(hours=72), 44.0)])
    labels = [o.parameters["calibration"]["version"] for o in _derived(db, derived_id)]
    assert labels.count(1) == 72 and labels[-1] == 2
    # recompute on request: every value with the active version
    response = client.post(f"{EXT}/{second['@iot.id']}/apply", json={"recompute": True}, headers=writer)
    assert response.status_code == 200, response.text
    recomputed = _derived(db, derived_id)
    assert len(recomputed) == 73 and {o.parameters["calibration"]["version"] for o in recomputed} == {2}
    # going back to version 1 is one request too
    back = client.post(f"{EXT}/{first['@iot.id']}/apply", headers=writer)
    assert back.status_code == 200 and back.json()["active"] is True
    assert client.get(EXT, params={"datastream": ids["raw"], "active": "true"}).json()["value"][0]["version"] == 1


@pytest.mark.parametrize(("change", "message"), [
    ({"from": "2024-01-01T00:00:00Z", "to": "2024-02-01T00:00:00Z"}, "no hour with readings from both"),
    ({"lowCost": 99999}, "does not exist"),
    ({"reference": "three"}, "positive whole number"),
    ({"kind": "neural-net"}, "Unknown calibration model kind"),
    ({"to": "2023-03-17T00:00:00Z"}, "later than its start"),
    ({"from": "yesterday"}, "ISO 8601"),
    ({"colour": "red"}, "Unknown member"),
    ({"apply": "yes"}, "true or false"),
])
def test_bad_fit_requests_are_400_and_store_nothing(client: TestClient, db: Database, writer: dict,
                                                    change: dict, message: str) -> None:
    ids = _site(db, hours=30)
    body = {"lowCost": ids["raw"], "reference": ids["reference"], "from": "2023-03-18T00:00:00Z",
            "to": "2023-03-19T06:00:00Z", **change}
    response = client.post(EXT, json=body, headers=writer)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]
    assert client.get(EXT).json()["@iot.count"] == 0
    with db.session() as session:
        assert session.scalar(select(Datastream.id).where(Datastream.name.like("%(calibrated)"))) is None


def test_sensors_too_far_apart_are_not_co_located(client: TestClient, db: Database, writer: dict) -> None:
    ids = _site(db, hours=30, lamppost_offset=0.01)  # about 700 m east
    response = client.post(EXT, headers=writer, json={"lowCost": ids["raw"], "reference": ids["reference"],
                                                     "from": "2023-03-18T00:00:00Z", "to": "2023-03-19T00:00:00Z"})
    assert response.status_code == 400 and "m apart" in response.json()["message"]
    assert _fit(client, writer, ids, hours=24, maxDistance=1000)["distanceMetres"] > 600


def test_writes_need_a_token_and_unknown_calibrations_are_404(client: TestClient, db: Database) -> None:
    ids = _site(db, hours=30)
    assert client.post(EXT, json={"lowCost": ids["raw"], "reference": ids["reference"], "from": "2023-03-18T00:00:00Z",
                                  "to": "2023-03-19T00:00:00Z"}).status_code == 401
    missing = client.get(f"{EXT}/12345")
    assert missing.status_code == 404 and missing.json()["type"] == "error"
    assert client.get(EXT, params={"thing": "x"}).status_code == 400


def test_the_landing_page_declares_the_calibration_extension(client: TestClient) -> None:
    conformance = client.get("/sta/v1.1").json()["serverSettings"]["conformance"]
    assert "https://smartlondon.example/spec/sta-ext/calibration" in conformance


def test_calibrate_command_fits_and_applies(db: Database, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ids = _site(db, hours=48)
    monkeypatch.setenv("SMARTLONDON_DATABASE_URL", db.url)
    monkeypatch.setenv("SMARTLONDON_DATA_DIR", str(settings.data_dir))
    result = CliRunner().invoke(main, ["sensors", "calibrate", "--low-cost", str(ids["raw"]), "--reference",
                                       str(ids["reference"]), "--from", "2023-03-18T00:00:00Z", "--to",
                                       "2023-03-20T00:00:00Z"])
    assert result.exit_code == 0, result.output
    assert "version 1" in result.output and "48 hourly pairs" in result.output
    bad = CliRunner().invoke(main, ["sensors", "calibrate", "--low-cost", str(ids["raw"]), "--reference",
                                    str(ids["raw"]), "--from", "2023-03-18T00:00:00Z", "--to", "2023-03-20T00:00:00Z"])
    assert bad.exit_code != 0 and "same Datastream" in bad.output
