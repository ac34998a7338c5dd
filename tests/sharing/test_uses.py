"""The public record of uses, /sharing/uses: live from the access log, filterable, no personal data."""

from __future__ import annotations

from .conftest import query_body

URL = "/api/sharing/queries"


def _query(client, analyst, where, by=("band",)):  # type: ignore[no-untyped-def]
    body = query_body(query={"dataset": "fire-visits", "measures": [{"op": "count"}], "by": list(by), "where": where})
    return client.post(URL, json=body, headers=analyst.headers)


def test_every_use_is_shown_with_purpose_benefit_and_result(client, agreement, analyst):  # type: ignore[no-untyped-def]
    assert client.get("/sharing/uses.json").json()["count"] == 0
    assert "No uses" in client.get("/sharing/uses").text
    _query(client, analyst, {"borough": ["Hackney"]})
    _query(client, analyst, {}, by=("borough",))
    data = client.get("/sharing/uses.json").json()
    assert data["count"] == 2
    newest, oldest = data["uses"]
    assert oldest["organisation_name"] == "Camden" and oldest["agreement"] == "home-fire-safety"
    assert oldest["purpose_label"] == "Public benefit"
    assert oldest["benefit"] == "Fewer deaths and injuries from fires at home."
    assert oldest["boroughs"] == ["Hackney"]
    assert newest["boroughs"] == ["Brent", "Camden", "Hackney"]
    assert newest["result"].startswith("Released a table")
    page = client.get("/sharing/uses")
    assert page.status_code == 200
    assert "Home fire safety visits for people at risk" in page.text and "Fewer deaths" in page.text
    assert "p050" not in page.text and "p050" not in str(data)  # no pseudonyms, no subject sets


def test_filters_by_dataset_organisation_and_borough(client, agreement, analyst):  # type: ignore[no-untyped-def]
    _query(client, analyst, {"borough": ["Hackney"]})
    _query(client, analyst, {"borough": ["Camden"]})
    assert client.get("/sharing/uses.json?borough=Hackney").json()["count"] == 1
    assert client.get("/sharing/uses.json?borough=Camden").json()["uses"][0]["boroughs"] == ["Camden"]
    assert client.get("/sharing/uses.json?organisation=camden").json()["count"] == 2
    assert client.get("/sharing/uses.json?organisation=brent").json()["count"] == 0
    assert client.get("/sharing/uses.json?dataset=fire-visits").json()["count"] == 2
    assert client.get("/sharing/uses.json?dataset=other").json()["count"] == 0
    page = client.get("/sharing/uses?borough=Hackney")
    assert '<option value="Hackney" selected>' in page.text


def test_refused_queries_read_nothing_and_are_not_uses(client, agreement, analyst):  # type: ignore[no-untyped-def]
    response = client.post(URL, json=query_body(purpose="dpv:LegalCompliance"), headers=analyst.headers)
    assert response.status_code == 403
    assert client.get("/sharing/uses.json").json()["count"] == 0


def test_nav_links_to_data_sharing(client) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/sharing/agreements")
    assert 'href="/sharing/agreements"' in page.text and "Data sharing" in page.text
