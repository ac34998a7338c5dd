"""Per-organisation ownership of Things: who may change a Thing and what hangs off it.

Camden's editor makes a Thing; it belongs to Camden. Hackney's editor may read it but changes
nothing of it (403 in the standard's error body, nothing kept), through any write path: PATCH, PUT,
DELETE, a new Datastream or Observation, CreateObservations, a batch, a shared Sensor in use. A
sysadmin may change anything.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from smartlondon.core.db import Database
from smartlondon.core.models import Organisation
from smartlondon.sensors import ownership
from smartlondon.sensors.models import Datastream, Observation, Sensor, Thing

STA = "/sta/v1.1"


def _thing_body(name: str, **properties: Any) -> dict[str, Any]:
    return {
        "name": name, "description": "A test monitor", "properties": properties,
        "Locations": [{"name": name, "description": "where", "encodingType": "application/geo+json",
                       "location": {"type": "Point", "coordinates": [-0.14, 51.54]}}],
        "Datastreams": [{
            "name": f"NO2 at {name}", "description": "hourly", "observationType":
                "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
            "unitOfMeasurement": {"name": "microgram per cubic metre", "symbol": "ug/m3", "definition": "ugm-3"},
            "Sensor": {"name": f"Sensor of {name}", "description": "x", "encodingType": "text/html", "metadata": "m"},
            "ObservedProperty": {"name": f"NO2 {name}", "definition": "https://example.org/no2", "description": "x"},
            "Observations": [{"phenomenonTime": "2023-01-01T00:00:00Z", "result": 41.5}],
        }],
    }


@pytest.fixture
def camden_thing(client: TestClient, make_account) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    camden = make_account("camden-ed", camden="editor")
    made = client.post(f"{STA}/Things", json=_thing_body("Camden Road"), headers=camden.headers)
    assert made.status_code == 201, made.text
    thing = made.json()["@iot.id"]
    streams = client.get(f"{STA}/Things({thing})/Datastreams?$expand=Sensor,Observations").json()["value"]
    return {"camden": camden, "thing": thing, "stream": streams[0]["@iot.id"],
            "sensor": streams[0]["Sensor"]["@iot.id"], "observation": streams[0]["Observations"][0]["@iot.id"]}


def _state(db: Database) -> tuple[Any, ...]:
    with db.session() as session:
        return (session.scalar(select(func.count()).select_from(Thing)),
                session.scalar(select(func.count()).select_from(Datastream)),
                session.scalar(select(func.count()).select_from(Observation)),
                tuple(session.execute(select(Thing.id, Thing.name, Thing.description).order_by(Thing.id)).all()),
                tuple(session.execute(select(Sensor.id, Sensor.name).order_by(Sensor.id)).all()))


def test_a_new_thing_belongs_to_its_writers_organisation(db: Database, client: TestClient,
                                                          camden_thing: dict[str, Any]) -> None:
    with db.session() as session:
        owner = session.scalar(select(Organisation.slug).join(Thing, Thing.owner_organisation_id == Organisation.id)
                               .where(Thing.id == camden_thing["thing"]))
        assert owner == "camden"
        assert ownership.owner_name(session, camden_thing["thing"]) == "Camden"
    # reads stay public, and the owner is no part of the SensorThings JSON
    body = client.get(f"{STA}/Things({camden_thing['thing']})").json()
    assert body["name"] == "Camden Road" and "owner" not in str(body).lower()
    # the owner changes its own Thing and what hangs off it
    camden = camden_thing["camden"].headers
    assert client.patch(f"{STA}/Things({camden_thing['thing']})", json={"description": "moved"},
                        headers=camden).status_code == 200
    assert client.post(f"{STA}/Datastreams({camden_thing['stream']})/Observations",
                       json={"phenomenonTime": "2023-01-01T01:00:00Z", "result": 40}, headers=camden).status_code == 201


def test_another_organisation_changes_nothing(db: Database, client: TestClient, make_account,  # type: ignore[no-untyped-def]
                                              camden_thing: dict[str, Any]) -> None:
    hackney = make_account("hackney-ed", hackney="editor").headers
    thing, stream, sensor = camden_thing["thing"], camden_thing["stream"], camden_thing["sensor"]
    before = _state(db)
    attempts = [
        ("patch", f"Things({thing})", {"description": "taken"}),
        ("put", f"Things({thing})", {"name": "x", "description": "y"}),
        ("delete", f"Things({thing})", None),
        ("patch", f"Datastreams({stream})", {"name": "renamed"}),
        ("delete", f"Datastreams({stream})", None),
        ("patch", f"Observations({camden_thing['observation']})", {"result": 1}),
        ("delete", f"Observations({camden_thing['observation']})", None),
        ("post", f"Datastreams({stream})/Observations", {"phenomenonTime": "2023-01-01T02:00:00Z", "result": 1}),
        ("post", "Observations", {"phenomenonTime": "2023-01-01T02:00:00Z", "result": 1,
                                  "Datastream": {"@iot.id": stream}}),
        ("post", "Datastreams", {"name": "sneaky", "description": "x", "observationType": "x",
                                 "unitOfMeasurement": {}, "Thing": {"@iot.id": thing},
                                 "Sensor": {"@iot.id": sensor}, "ObservedProperty": {"name": "p", "definition": "d",
                                                                                     "description": "x"}}),
        ("post", f"Things({thing})/Locations", {"name": "l", "description": "x", "encodingType": "application/geo+json",
                                                "location": {"type": "Point", "coordinates": [0, 51]}}),
        ("patch", f"Sensors({sensor})", {"name": "a shared sensor renamed"}),
        ("put", f"Datastreams({stream})/Thing/$ref", {"@iot.id": thing}),
        ("post", "CreateObservations", [{"Datastream": {"@iot.id": stream}, "components": ["phenomenonTime", "result"],
                                         "dataArray": [["2023-01-01T03:00:00Z", 2]]}]),
    ]
    for method, path, body in attempts:
        answer = client.request(method.upper(), f"{STA}/{path}", json=body, headers=hackney)
        assert answer.status_code == 403, (method, path, answer.text)
        error = answer.json()
        assert error["code"] == 403 and error["type"] == "error", (method, path)
        assert f"Thing {thing} belongs to Camden" in error["message"], (method, path, error)
    batch = client.post(f"{STA}/$batch", headers=hackney, json={"requests": [
        {"id": "1", "method": "patch", "url": f"Things({thing})", "body": {"name": "batch"}}]}).json()
    assert batch["responses"][0]["status"] == 403
    assert _state(db) == before
    # Hackney's own Thing is Hackney's, and Camden cannot change that one
    own = client.post(f"{STA}/Things", json=_thing_body("Mare Street"), headers=hackney)
    assert own.status_code == 201
    assert client.patch(f"{STA}/Things({own.json()['@iot.id']})", json={"name": "no"},
                        headers=camden_thing["camden"].headers).status_code == 403


def test_sysadmins_change_anything_and_unowned_things_are_open(db: Database, client: TestClient,  # type: ignore[no-untyped-def]
                                                               make_account, camden_thing: dict[str, Any]) -> None:
    root = make_account("root", sysadmin=True).headers
    assert client.patch(f"{STA}/Things({camden_thing['thing']})", json={"name": "by the sysadmin"},
                        headers=root).status_code == 200
    made = client.post(f"{STA}/Things", json={"name": "unowned", "description": "x"}, headers=root)
    assert made.status_code == 201
    hackney = make_account("hackney-ed", hackney="editor").headers
    assert client.patch(f"{STA}/Things({made.json()['@iot.id']})", json={"name": "open"},
                        headers=hackney).status_code == 200
    # a sysadmin names the owner; so may a writer of several organisations, who must
    named = client.post(f"{STA}/Things", json={"name": "for Camden", "description": "x",
                                               "properties": {"organisation": "camden"}}, headers=root)
    with db.session() as session:
        assert ownership.owner_name(session, named.json()["@iot.id"]) == "Camden"
    both = make_account("two-hats", camden="editor", hackney="admin").headers
    vague = client.post(f"{STA}/Things", json={"name": "whose?", "description": "x"}, headers=both)
    assert vague.status_code == 400 and "properties.organisation" in vague.json()["message"]
    other = client.post(f"{STA}/Things", json={"name": "not mine", "description": "x",
                                               "properties": {"organisation": "westminster"}}, headers=both)
    assert other.status_code == 403
    clear = client.post(f"{STA}/Things", json={"name": "Hackney's", "description": "x",
                                               "properties": {"organisation": "hackney"}}, headers=both)
    assert clear.status_code == 201


def test_set_owner_gives_unowned_things_an_owner(db: Database, client: TestClient, make_account) -> None:  # type: ignore[no-untyped-def]
    root = make_account("root", sysadmin=True).headers
    thing = client.post(f"{STA}/Things", json={"name": "site", "description": "x"}, headers=root).json()["@iot.id"]
    with db.session() as session:
        assert ownership.set_owner(session, [thing], ownership.DEMO_OWNER) == 1
        assert ownership.set_owner(session, [thing], "camden") == 0   # only unowned ones by default
        assert ownership.set_owner(session, [thing], "no-such-organisation") == 0
    with db.session() as session:
        assert ownership.owner_name(session, thing) == "Greater London Authority"
    camden = make_account("camden-ed", camden="editor").headers
    assert client.delete(f"{STA}/Things({thing})", headers=camden).status_code == 403


def test_the_demo_network_and_fleet_belong_to_the_gla(db: Database, client: TestClient, make_account,  # type: ignore[no-untyped-def]
                                                      tmp_path) -> None:
    from smartlondon.sensors import fleet, laqn

    sites = tmp_path / "sites.csv"
    with (laqn.DEMO_DIR / laqn.SITES_FILE).open(encoding="utf-8-sig") as fh:
        lines = fh.read().splitlines()
    sites.write_text("\n".join([lines[0]] + [line for line in lines[1:] if ",BL0," in line]) + "\n", encoding="utf-8")
    laqn.load_laqn(db, sites_path=sites, hourly_path=laqn.DEMO_DIR / laqn.DEMO_HOURLY_FILE, days=1, species={"NO2"})
    fleet.create_fleet(db)
    with db.session() as session:
        owners = {name for (thing_id,) in session.execute(select(Thing.id))
                  for name in [ownership.owner_name(session, thing_id)]}
        site = session.scalar(select(Thing.id).where(Thing.properties["siteCode"].as_string() == "BL0"))
    assert owners == {"Greater London Authority"}
    camden = make_account("camden-ed", camden="editor").headers
    answer = client.patch(f"{STA}/Things({site})", json={"name": "mine now"}, headers=camden)
    assert answer.status_code == 403 and "Greater London Authority" in answer.json()["message"]
    gla = make_account("gla-ed", greater_london_authority="editor").headers
    assert client.patch(f"{STA}/Things({site})", json={"description": "checked"}, headers=gla).status_code == 200
