"""The real frost-sta-client (FROST's Python client, HTTP Basic with an API token as password)
creates, reads, updates and deletes every entity type against a live server."""

from __future__ import annotations

import frost_sta_client as fsc
import requests
from frost_sta_client.model.ext.unitofmeasurement import UnitOfMeasurement
from geojson import Point

from smartlondon.core.db import Database
from tests.catalogue.live_server import LiveServer, live_server  # noqa: F401

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
COMPLEX = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_ComplexObservation"


def test_frost_client_round_trip(live_server: LiveServer, db: Database) -> None:  # noqa: F811
    token = live_server.token("frost-user", camden="editor")
    service = fsc.SensorThingsService(f"{live_server.url}/sta/v1.1",
                                      auth_handler=fsc.service.auth_handler.AuthHandler("frost-user", token))
    location = fsc.Location(name="Marylebone Road", description="LAQN site MY1", encoding_type="application/geo+json",
                            location=Point((-0.1546, 51.5225)))
    thing = fsc.Thing(name="MY1", description="Westminster - Marylebone Road", properties={"siteType": "Kerbside"},
                      locations=[location])
    service.create(thing)
    assert isinstance(thing.id, int)
    sensor = fsc.Sensor(name="Chemiluminescence", description="NOx analyser", encoding_type="text/html",
                        metadata="https://www.londonair.org.uk/")
    no2 = fsc.ObservedProperty(name="NO2", description="Nitrogen dioxide", definition="urn:no2")
    pm10 = fsc.ObservedProperty(name="PM10", description="Particulates", definition="urn:pm10")
    for entity in (sensor, no2, pm10):
        service.create(entity)
    unit = UnitOfMeasurement(name="microgram per cubic metre", symbol="ug/m3", definition="urn:ugm3")
    datastream = fsc.Datastream(name="NO2 at MY1", description="hourly", observation_type=MEASUREMENT,
                                unit_of_measurement=unit, thing=fsc.Thing(id=thing.id), sensor=fsc.Sensor(id=sensor.id),
                                observed_property=fsc.ObservedProperty(id=no2.id))
    service.create(datastream)
    # frost-sta-client 1.48 serialises a MultiDatastream's unitOfMeasurements as null (it calls
    # list.__getstate__), which the server rightly refuses; post that one as plain JSON with the same credentials
    response = requests.post(f"{live_server.url}/sta/v1.1/MultiDatastreams", auth=("frost-user", token), json={
        "name": "NO2 and PM10", "description": "pairs", "observationType": COMPLEX,
        "unitOfMeasurements": [unit.__getstate__(), unit.__getstate__()],
        "multiObservationDataTypes": [MEASUREMENT, MEASUREMENT], "Thing": {"@iot.id": thing.id},
        "Sensor": {"@iot.id": sensor.id}, "ObservedProperties": [{"@iot.id": no2.id}, {"@iot.id": pm10.id}]})
    assert response.status_code == 201, response.text
    multi = service.multi_datastreams().find(int(response.json()["@iot.id"]))
    feature = fsc.FeatureOfInterest(name="Kerb", description="The kerb", encoding_type="application/geo+json",
                                    feature=Point((-0.1546, 51.5225)))
    service.create(feature)
    obs = fsc.Observation(result=41.5, phenomenon_time="2023-01-01T00:00:00Z", datastream=fsc.Datastream(id=datastream.id),
                          feature_of_interest=fsc.FeatureOfInterest(id=feature.id))
    service.create(obs)
    auto = fsc.Observation(result=40.0, phenomenon_time="2023-01-01T01:00:00Z", datastream=fsc.Datastream(id=datastream.id))
    service.create(auto)
    pair = fsc.Observation(result=[41.5, 20.0], phenomenon_time="2023-01-01T00:00:00Z",
                           multi_datastream=fsc.MultiDatastream(id=multi.id))
    service.create(pair)

    # read every entity type back through the client
    assert service.things().find(thing.id).name == "MY1"
    assert service.locations().find(service.things().find(thing.id).id).name  # the Location (id 1) exists
    assert service.sensors().find(sensor.id).name == "Chemiluminescence"
    assert service.observed_properties().find(pm10.id).name == "PM10"
    assert service.datastreams().find(datastream.id).name == "NO2 at MY1"
    assert service.multi_datastreams().find(multi.id).name == "NO2 and PM10"
    assert service.features_of_interest().find(feature.id).name == "Kerb"
    assert service.observations().find(obs.id).result == 41.5
    assert service.observations().find(pair.id).result == [41.5, 20.0]
    history = service.historical_locations().query().list()
    assert len(history.entities) == 1
    listed = service.observations().query().filter(f"Datastream/id eq {datastream.id}").list()
    assert sorted(o.result for o in listed.entities) == [40.0, 41.5]

    # update (PUT), JSON-Patch and delete
    found = service.things().find(thing.id)
    found.description = "Marylebone Road kerbside site"
    service.update(found)
    service.patch(found, [{"op": "replace", "path": "/name", "value": "MY1 (Marylebone)"}])
    again = service.things().find(thing.id)
    assert again.name == "MY1 (Marylebone)" and again.description == "Marylebone Road kerbside site"
    service.delete(service.observations().find(auto.id))
    assert len(service.observations().query().list().entities) == 2
    service.delete(again)
    assert service.datastreams().query().list().entities == []
