"""The CKAN Action API, write side: datasets and resources changed by CKAN clients, through the catalogue service."""

from __future__ import annotations

import hashlib
import uuid

from sqlalchemy import func, select

from smartlondon.catalogue.models import Dataset, Resource
from smartlondon.core.models import AuditEvent, Organisation

TUBES = {
    "name": "camden-no2-diffusion-tubes", "title": "Nitrogen dioxide diffusion tubes, Camden",
    "owner_org": "camden", "notes": "Monthly **NO2** readings.", "license_id": "uk-ogl",
    "tags": [{"name": "air quality"}, {"name": "NO2"}], "groups": [{"name": "environment"}],
    "url": "https://www.camden.gov.uk/air-quality", "version": "2023",
    "maintainer": "Air Quality Team", "maintainer_email": "air@camden.example.org",
    "extras": [{"key": "source", "value": "diffusion tubes"}, {"key": "frequency", "value": "monthly"},
               {"key": "temporal_start", "value": "2023-01-01"}, {"key": "boroughs", "value": "E09000007"},
               {"key": "spatial", "value": '{"type": "Polygon", "coordinates": [[[-0.21, 51.51], [-0.1, 51.51], '
                                           '[-0.1, 51.57], [-0.21, 51.57], [-0.21, 51.51]]]}'}],
    "resources": [{"name": "Readings 2023", "url": "https://data.camden.gov.uk/no2-2023.csv", "format": "CSV"},
                  {"name": "About the tubes", "url": "https://www.camden.gov.uk/tubes"}],
}


def call(client, action_name, token=None, **params):  # type: ignore[no-untyped-def]
    """POST a CKAN action with a JSON body and, like ckanapi, the raw token in Authorization."""
    return client.post(f"/api/3/action/{action_name}", json=params, headers={"Authorization": token} if token else {})


def result(response):  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True
    return response.json()["result"]


def error(response, status):  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.json()["success"] is False
    return response.json()["error"]


def count(db, model) -> int:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def stored_files(settings) -> list:  # type: ignore[no-untyped-def]
    return [p for p in settings.files_dir.rglob("*") if p.is_file()]


def extras(pkg) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {e["key"]: e["value"] for e in pkg["extras"]}


def test_create_update_patch_and_delete(client, db, editor):
    created = result(call(client, "package_create", editor.token, **TUBES))
    assert created["name"] == TUBES["name"] and created["organization"]["name"] == "camden"
    assert created["license_id"] == "OGL-UK-3.0"  # CKAN's uk-ogl is the register's OGL v3
    assert [t["name"] for t in created["tags"]] == ["air quality", "no2"]
    assert [g["name"] for g in created["groups"]] == ["environment"]
    assert extras(created)["source"] == "diffusion tubes" and extras(created)["frequency"] == "monthly"
    assert extras(created)["boroughs"] == "E09000007" and extras(created)["temporal_start"] == "2023-01-01"
    assert [r["name"] for r in created["resources"]] == ["Readings 2023", "About the tubes"]
    assert created["resources"][1]["format"] == "HTML"
    # the site shows the same dataset, written through the catalogue's rules
    native = client.get(f"/api/datasets/{TUBES['name']}").json()
    assert native["frequency"] == "monthly" and native["bbox"] == [-0.21, 51.51, -0.1, 51.57]
    assert native["contact_email"] == "air@camden.example.org" and native["landing_page"] == TUBES["url"]
    assert [e["action"] for e in client.get(f"/api/datasets/{TUBES['name']}/history").json()["events"]][-1] == (
        "dataset.create")

    # package_show -> change -> package_update: the CKAN way of editing
    pkg = result(call(client, "package_show", id=TUBES["name"]))
    pkg["title"] = "NO2 diffusion tubes in Camden"
    pkg["tags"].append({"name": "pollution"})
    pkg["resources"][0]["description"] = "One row per tube per month"
    updated = result(call(client, "package_update", editor.token, **pkg))
    assert updated["title"] == "NO2 diffusion tubes in Camden"
    assert [t["name"] for t in updated["tags"]] == ["air quality", "no2", "pollution"]
    assert updated["resources"][0]["description"] == "One row per tube per month"
    assert updated["resources"][0]["id"] == pkg["resources"][0]["id"]  # updated in place, not replaced
    assert extras(updated) == extras(pkg)  # the platform's extras came back unchanged

    # sending back what package_show gave changes nothing: no new history
    events = count(db, AuditEvent)
    result(call(client, "package_update", editor.token, **result(call(client, "package_show", id=TUBES["name"]))))
    assert count(db, AuditEvent) == events

    # package_patch changes only what it is given
    patched = result(call(client, "package_patch", editor.token, id=TUBES["name"], notes="Readings by month."))
    assert patched["notes"] == "Readings by month." and patched["title"] == "NO2 diffusion tubes in Camden"
    assert len(patched["tags"]) == 3 and len(patched["resources"]) == 2

    # package_update replaces: what is not sent is cleared (resources are kept when not sent)
    bare = result(call(client, "package_update", editor.token, id=pkg["id"], name=TUBES["name"], title="Tubes"))
    assert bare["tags"] == [] and bare["notes"] == "" and bare["groups"] == [] and bare["url"] == ""
    assert extras(bare)["frequency"] == "irregular" and "boroughs" not in extras(bare)
    assert bare["organization"]["name"] == "camden" and len(bare["resources"]) == 2

    result(call(client, "package_delete", editor.token, id=TUBES["name"]))
    assert error(call(client, "package_show", id=TUBES["name"]), 404)["__type"] == "Not Found Error"
    assert result(call(client, "package_search", q="tubes"))["count"] == 0


def test_package_update_makes_the_resources_those_listed(client, db, editor, settings):
    result(call(client, "package_create", editor.token, **TUBES))
    upload = client.post("/api/3/action/resource_create", headers={"Authorization": editor.token},
                         data={"package_id": TUBES["name"], "name": "Raw file"},
                         files={"upload": ("raw.csv", b"tube,no2\nCD1,41\n", "text/csv")})
    raw = result(upload)
    assert len(stored_files(settings)) == 1
    pkg = result(call(client, "package_show", id=TUBES["name"]))
    readings, about, _ = pkg["resources"]
    readings["name"] = "Readings (all years)"
    new = {"name": "Sites", "url": "https://data.camden.gov.uk/sites.geojson", "format": "GeoJSON"}
    pkg["resources"] = [new, readings]  # "About the tubes" and the uploaded file are left out
    updated = result(call(client, "package_update", editor.token, **pkg))
    assert [(r["name"], r["position"]) for r in updated["resources"]] == [("Sites", 0), ("Readings (all years)", 1)]
    assert updated["resources"][1]["id"] == readings["id"]
    assert error(call(client, "resource_show", id=raw["id"]), 404)
    assert stored_files(settings) == []  # the removed upload's file went once the change was committed


def test_resource_create_update_patch_delete_with_uploads(client, db, editor, settings):
    result(call(client, "package_create", editor.token, **{**TUBES, "resources": []}))
    content = b"tube,month,no2\n" + b"".join(f"CD{i},2023-{i % 12 + 1:02d},{30 + i % 20}\n".encode()
                                             for i in range(5000))
    created = result(client.post("/api/3/action/resource_create", headers={"X-CKAN-API-Key": editor.token},
                                 data={"package_id": TUBES["name"], "name": "Readings", "description": "Monthly",
                                       "notes_for_users": "provisional"},
                                 files={"upload": ("readings.csv", content, "text/csv")}))
    assert created["url_type"] == "upload" and created["size"] == len(content)
    assert created["hash"] == hashlib.sha256(content).hexdigest() and created["format"] == "CSV"
    assert created["notes_for_users"] == "provisional"  # other fields are kept as resource extras
    assert client.get(created["url"]).content == content  # the url is where to download it
    first_file = stored_files(settings)
    assert len(first_file) == 1

    replaced = result(client.post("/api/3/action/resource_update", headers={"Authorization": f"Bearer {editor.token}"},
                                  data={"id": created["id"], "name": "Readings v2"},
                                  files={"upload": ("readings-v2.csv", b"tube,no2\nCD1,40\n", "text/csv")}))
    assert replaced["name"] == "Readings v2" and replaced["size"] == 16 and replaced["description"] == ""
    assert "notes_for_users" not in replaced  # update replaces the extras too
    assert client.get(replaced["url"]).content == b"tube,no2\nCD1,40\n"
    assert not first_file[0].exists() and len(stored_files(settings)) == 1

    patched = result(call(client, "resource_patch", editor.token, id=created["id"], description="Checked"))
    assert patched["description"] == "Checked" and patched["name"] == "Readings v2"
    link = result(call(client, "resource_create", editor.token, package_id=TUBES["name"],
                       url="https://data.camden.gov.uk/tubes.json", name="API"))
    assert link["url_type"] is None and link["position"] == 1 and link["format"] == "JSON"

    result(call(client, "resource_delete", editor.token, id=created["id"]))
    assert error(call(client, "resource_show", id=created["id"]), 404)["message"] == "Not found: Resource was not found."
    assert stored_files(settings) == []
    assert [r["name"] for r in result(call(client, "package_show", id=TUBES["name"]))["resources"]] == ["API"]


def test_a_bad_resource_leaves_nothing_written(client, db, editor, settings):
    resources = [{"name": "a", "url": "https://example.org/a.csv"}, {"name": "b", "url": "https://example.org/b"},
                 {"name": "c", "url": "ftp://example.org/c.csv"}]
    bad = error(call(client, "package_create", editor.token, **{**TUBES, "resources": resources}), 409)
    assert bad["__type"] == "Validation Error"
    assert bad["resources"][:2] == [{}, {}] and "http" in bad["resources"][2]["url"][0]
    assert count(db, Dataset) == 0 and count(db, Resource) == 0 and count(db, AuditEvent) == 0

    result(call(client, "package_create", editor.token, **TUBES))
    before = result(call(client, "package_show", id=TUBES["name"]))
    events = count(db, AuditEvent)
    broken = error(call(client, "package_update", editor.token, **{**before, "title": "Changed",
                                                                    "extras": [{"key": "spatial", "value": "{oops"}]}),
                   409)
    assert broken["extras"] == ["spatial: Give a GeoJSON geometry, or west,south,east,north."]
    bad_resource = {**before, "title": "Changed", "resources": [*before["resources"], {"name": "no link"}]}
    assert error(call(client, "package_update", editor.token, **bad_resource), 409)["resources"][2] == {
        "url": ["Missing value"]}
    assert result(call(client, "package_show", id=TUBES["name"])) == before and count(db, AuditEvent) == events

    # an upload refused after it was received leaves no file behind
    refused = client.post("/api/3/action/resource_create", headers={"Authorization": editor.token},
                          data={"package_id": "no-such-dataset"}, files={"upload": ("x.csv", b"a\n1\n", "text/csv")})
    assert error(refused, 404)["__type"] == "Not Found Error"
    assert stored_files(settings) == []


def test_validation_errors_list_every_field_with_ckans_names(client, db, editor):
    bad = {**TUBES, "name": "Not A Name!", "license_id": "made-up", "groups": [{"name": "weather"}],
           "maintainer_email": "not-an-email", "extras": [{"key": "frequency", "value": "fortnightly"}],
           "resources": []}
    errors = error(call(client, "package_create", editor.token, **bad), 409)
    assert errors["__type"] == "Validation Error"
    assert set(errors) == {"__type", "name", "license_id", "groups", "maintainer_email", "extras"}
    assert all(isinstance(v, list) and v for k, v in errors.items() if k != "__type")
    assert "OGL-UK-3.0" in errors["license_id"][0] and errors["extras"][0].startswith("frequency: ")
    garbled = error(call(client, "package_create", editor.token, name="garbled", owner_org="camden", tags="[oops",
                         extras=[{"key": "boroughs", "value": "[E09"}]), 409)
    assert set(garbled) == {"__type", "tags", "extras"}
    assert error(call(client, "package_create", editor.token, title="No name", owner_org="camden"), 409) == {
        "__type": "Validation Error", "name": ["Missing value"]}
    assert "owner_org" in error(call(client, "package_create", editor.token, name="no-org"), 409)
    result(call(client, "package_create", editor.token, **TUBES))
    taken = error(call(client, "package_create", editor.token, **{**TUBES, "title": "Again"}), 409)
    assert taken == {"__type": "Validation Error", "name": ["That URL is already in use."]}
    assert count(db, Dataset) == 1


def test_tokens_and_permissions(client, db, editor, make_account, settings):
    result(call(client, "package_create", editor.token, **TUBES))
    outsider = make_account("hackney-editor", hackney="editor")
    member = make_account("camden-reader", camden="member")
    for token in (outsider.token, member.token):
        denied = error(call(client, "package_patch", token, id=TUBES["name"], title="Taken over"), 403)
        assert denied["__type"] == "Authorization Error" and denied["message"].startswith("Access denied: ")
    assert error(call(client, "package_create", outsider.token, **{**TUBES, "name": "hackney-copy"}), 403)
    upload = client.post("/api/3/action/resource_create", headers={"Authorization": outsider.token},
                         data={"package_id": TUBES["name"]}, files={"upload": ("x.csv", b"a\n1\n", "text/csv")})
    assert error(upload, 403)["__type"] == "Authorization Error"
    assert error(call(client, "package_delete", None, id=TUBES["name"]), 403)
    assert error(call(client, "package_delete", "sl_not-a-real-token", id=TUBES["name"]), 403)
    assert result(call(client, "package_show", id=TUBES["name"]))["title"] == TUBES["title"]
    assert stored_files(settings) == [] and count(db, Resource) == 2


def test_organization_create_is_for_sysadmins(client, db, editor, sysadmin):
    body = {"name": "london-fire-brigade-data", "title": "London Fire Brigade (data team)",
            "description": "Incidents and response times.", "extras": [{"key": "kind", "value": "emergency-service"}]}
    assert error(call(client, "organization_create", editor.token, **body), 403)["__type"] == "Authorization Error"
    org = result(call(client, "organization_create", sysadmin.token, **body))
    assert org["name"] == "london-fire-brigade-data" and org["title"] == "London Fire Brigade (data team)"
    assert org["is_organization"] is True and org["package_count"] == 0
    assert result(call(client, "organization_show", id=org["id"]))["description"] == "Incidents and response times."
    assert error(call(client, "organization_create", sysadmin.token, **body), 409)["name"]
    assert error(call(client, "organization_create", sysadmin.token, title="No name"), 409) == {
        "__type": "Validation Error", "name": ["Missing value"]}
    with db.session() as session:
        assert session.scalar(select(func.count()).where(Organisation.slug == body["name"])) == 1


def test_sysadmins_may_choose_ids_and_others_may_not(client, db, editor, sysadmin):
    chosen, resource_id = str(uuid.uuid4()), str(uuid.uuid4())
    resources = [{**TUBES["resources"][0], "id": resource_id}]
    kept = result(call(client, "package_create", sysadmin.token, **{**TUBES, "id": chosen, "resources": resources}))
    assert kept["id"] == chosen and kept["resources"][0]["id"] == resource_id
    other = result(call(client, "package_create", editor.token, **{**TUBES, "name": "copy", "id": str(uuid.uuid4())}))
    assert other["id"] != chosen and uuid.UUID(other["id"])
    again = error(call(client, "package_create", sysadmin.token, **{**TUBES, "name": "third", "id": chosen}), 409)
    assert again["id"] == ["Dataset id already exists"]


def test_writes_as_form_fields(client, db, editor):
    form = {"name": "form-made", "title": "Made with a form", "owner_org": "camden", "notes": "Plain fields"}
    made = result(client.post("/api/3/action/package_create", data=form, headers={"Authorization": editor.token}))
    assert made["title"] == "Made with a form" and made["organization"]["name"] == "camden"
