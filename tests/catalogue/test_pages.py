"""The Datastore's pages: what a person finds, reads, downloads and publishes in a browser."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from smartlondon.catalogue.models import Dataset, Resource

SITES_CSV = Path(__file__).resolve().parents[3] / "shared" / "data" / "air-quality" / "laqn-sites.csv"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

AIR = {"title": "Air quality monitoring sites", "slug": "air-quality-sites", "publisher": "camden",
       "description": "Where the **London Air Quality Network** measures air pollution. " * 8,
       "keywords": ["air quality", "no2"], "themes": ["environment", "health"], "frequency": "monthly",
       "temporal_start": "2023-01-01", "temporal_end": "2023-12-31", "boroughs": ["E09000007"],
       "bbox": [-0.2135, 51.5128, -0.1053, 51.5729], "geography": "point",
       "contact_name": "Air Quality Team", "contact_email": "air@camden.example.org"}
NOISE = {"title": "Air traffic noise complaints", "slug": "air-noise", "publisher": "camden",
         "description": "Complaints about aircraft noise.", "keywords": ["noise"], "themes": ["environment"]}
BUSES = {"title": "Bus stop locations", "slug": "bus-stops", "publisher": "camden",
         "description": "Every bus stop in Camden.", "keywords": ["buses"], "themes": ["transport"]}


def publish(client, account, *datasets):
    for body in datasets:
        response = client.post("/api/datasets", json=body, headers=account.headers)
        assert response.status_code == 201, response.text


def upload(client, account, slug: str, name: str, content: bytes, title: str = "Data file"):
    response = client.post(f"/api/datasets/{slug}/resources", headers=account.headers, data={"title": title},
                           files={"upload": (name, content, "text/csv")})
    assert response.status_code == 201, response.text
    return response.json()


def sign_in(client, account) -> str:
    token = CSRF.search(client.get("/sign-in").text).group(1)
    response = client.post("/sign-in", data={"csrf_token": token, "username": account.username,
                                             "password": account.password}, follow_redirects=False)
    assert response.status_code == 303
    return CSRF.search(client.get("/").text).group(1)


def headings(html: str) -> int:
    return html.count("<h1")


# --- home and search ------------------------------------------------------------------------------

def test_home_page_has_search_featured_datasets_and_browse_links(client, editor):
    publish(client, editor, AIR, BUSES)
    page = client.get("/")
    assert page.status_code == 200
    html = page.text
    assert headings(html) == 1 and ">London Datastore</h1>" in html
    assert '<form method="get" action="/dataset"' in html
    assert '<label class="govuk-label govuk-label--m" for="q">' in html and "Search datasets" in html
    assert "Air quality monitoring sites" in html and "Bus stop locations" in html
    assert 'href="/dataset?theme=transport"' in html
    assert 'href="/organisation/camden"' in html
    assert "Browse all 2 datasets" in html
    data = client.get("/.json").json()
    assert data["dataset_count"] == 2
    assert {d["slug"] for d in data["featured"]} == {"air-quality-sites", "bus-stops"}


def test_search_lists_matching_datasets_with_facet_counts(client, editor):
    publish(client, editor, AIR, NOISE, BUSES)
    page = client.get("/dataset", params={"q": "air"})
    assert page.status_code == 200
    html = page.text
    assert "2 datasets found" in html
    assert "Air quality monitoring sites" in html and "Air traffic noise complaints" in html
    assert "Bus stop locations" not in html
    assert 'value="air"' in html  # the search box keeps what was typed
    # Facets are checkboxes with counts, in a GET form with a button.
    theme_box = re.search(r'<input class="govuk-checkboxes__input" id="filter-theme[^>]*value="environment"', html)
    assert theme_box
    assert re.search(r"Environment <span class=\"app-facets__count\">\(2", html)
    assert re.search(r"Health <span class=\"app-facets__count\">\(1", html)
    assert "Apply filters" in html
    # Results show publisher, a plain-text start of the description and the date.
    assert "Published by" in html and "**" not in html
    assert 'rel="alternate" type="application/json" href="/dataset.json?q=air"' in html
    assert '<select class="govuk-select" id="sort" name="sort">' in html


def test_filters_narrow_the_results_and_can_be_removed(client, editor):
    publish(client, editor, AIR, NOISE, BUSES)
    page = client.get("/dataset", params={"theme": "health"})
    assert "1 dataset found" in page.text
    assert "Air quality monitoring sites" in page.text and "Bus stop locations" not in page.text
    assert re.search(r'value="health" checked', page.text)
    remove = re.search(r'<a class="govuk-link" href="([^"]+)">Remove <span class="govuk-visually-hidden">filter '
                       r'</span>Theme: Health</a>', page.text)
    assert remove
    assert "3 datasets found" in client.get(remove.group(1).replace("&amp;", "&")).text
    two = client.get("/dataset", params=[("theme", "environment"), ("keyword", "noise")])
    assert "1 dataset found" in two.text and "Air traffic noise complaints" in two.text


def test_search_json_twin_is_the_same_by_suffix_and_by_accept_header(client, editor):
    publish(client, editor, AIR, NOISE, BUSES)
    by_suffix = client.get("/dataset.json", params={"q": "air", "sort": "title"})
    by_header = client.get("/dataset", params={"q": "air", "sort": "title"}, headers={"Accept": "application/json"})
    assert by_suffix.headers["content-type"] == "application/json"
    assert by_suffix.json() == by_header.json()
    body = by_suffix.json()
    assert body["count"] == 2
    assert [r["slug"] for r in body["results"]] == ["air-quality-sites", "air-noise"]
    assert {"value": "environment", "label": "Environment", "count": 2} in body["facets"]["theme"]


def test_search_pages_with_govuk_pagination(client, editor):
    publish(client, editor, *[{"title": f"Count {i:02d}", "slug": f"count-{i:02d}", "publisher": "camden"}
                              for i in range(25)])
    first = client.get("/dataset", params={"sort": "title"})
    assert "25 datasets found" in first.text
    assert 'class="govuk-pagination' in first.text
    assert 'href="/dataset?sort=title&amp;page=2" rel="next"' in first.text
    second = client.get("/dataset", params={"sort": "title", "page": "2"})
    assert "Count 20" in second.text and "Count 00" not in second.text
    assert 'aria-current="page"' in second.text


def test_search_never_runs_a_query_per_result(client, editor, db):
    from sqlalchemy import event

    publish(client, editor, *[{"title": f"Dataset {i}", "slug": f"dataset-{i:02d}", "publisher": "camden",
                               "keywords": ["k"], "themes": ["environment"]} for i in range(20)])
    statements: list[str] = []

    def count(*args):  # type: ignore[no-untyped-def]
        statements.append(args[2])

    assert "20 datasets found" in client.get("/dataset").text  # warms any caches
    event.listen(db.engine, "before_cursor_execute", count)
    try:
        client.get("/dataset")
        twenty = len(statements)
        statements.clear()
        client.get("/dataset", params={"page_size": "2"})
        assert len(statements) == twenty  # the same statements for 2 results as for 20
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


# --- a dataset ------------------------------------------------------------------------------------

def test_dataset_page_shows_the_metadata_and_a_working_download(client, editor):
    publish(client, editor, AIR)
    content = SITES_CSV.read_bytes()
    res = upload(client, editor, "air-quality-sites", "laqn-sites.csv", content, "Monitoring sites")
    page = client.get("/dataset/air-quality-sites")
    assert page.status_code == 200
    html = page.text
    assert headings(html) == 1
    assert "<title>Air quality monitoring sites – London Datastore</title>" in html
    assert '<nav class="govuk-breadcrumbs' in html
    assert "<strong>London Air Quality Network</strong>" in html  # the description is Markdown
    for text in ('href="/organisation/camden">Camden</a>', "Open Government Licence v3.0",
                 'href="/dataset?keyword=air%20quality">air quality</a>', "Environment", "Monthly",
                 "1 January 2023 to 31 December 2023", 'href="/dataset?borough=E09000007">Camden</a>',
                 "Point locations", "mailto:air@camden.example.org", "Air Quality Team",
                 'class="govuk-summary-list'):
        assert text in html, text
    download = re.search(r'href="(/dataset/air-quality-sites/resource/[^"]+/download/laqn-sites.csv)"', html)
    assert download and "Monitoring sites" in html and "Preview" in html
    assert "20.6 KB" in html or "KB" in html
    got = client.get(download.group(1))
    assert got.status_code == 200 and got.content == content
    assert got.headers["content-disposition"].startswith("attachment")
    head = client.head(download.group(1))
    assert head.status_code == 200 and head.headers["content-length"] == str(len(content))
    wrong = client.get(f"/dataset/air-quality-sites/resource/{res['id']}/download/other.csv")
    assert wrong.status_code == 404
    assert 'href="/dataset/air-quality-sites/history"' in html
    # Anonymous visitors see no editing buttons.
    assert "/dataset/air-quality-sites/edit" not in html


def test_dataset_json_twin_by_suffix_and_accept_header(client, editor):
    publish(client, editor, AIR)
    by_suffix = client.get("/dataset/air-quality-sites.json").json()
    by_header = client.get("/dataset/air-quality-sites", headers={"Accept": "application/json"}).json()
    assert by_suffix == by_header
    assert by_suffix["title"] == AIR["title"] and by_suffix["publisher"]["slug"] == "camden"
    charter = by_suffix.pop("charter")  # the page also shows its open data charter scorecard
    assert charter["stars"] >= 0 and charter["checks"]
    assert by_suffix == client.get("/api/datasets/air-quality-sites").json()


def test_link_resources_redirect(client, editor):
    publish(client, editor, AIR)
    res = client.post("/api/datasets/air-quality-sites/resources", headers=editor.headers,
                      json={"title": "Live map", "url": "https://www.londonair.org.uk/"}).json()
    response = client.get(f"/dataset/air-quality-sites/resource/{res['id']}/download/x", follow_redirects=False)
    assert response.status_code == 302 and response.headers["location"] == "https://www.londonair.org.uk/"


def test_private_datasets_are_tagged_for_members_and_hidden_from_others(client, editor):
    publish(client, editor, {**AIR, "private": True})
    assert client.get("/dataset/air-quality-sites").status_code == 404
    sign_in(client, editor)
    page = client.get("/dataset/air-quality-sites")
    assert page.status_code == 200 and ">\n  Private\n</strong>" in page.text or "Private" in page.text
    assert "govuk-tag--orange" in page.text


# --- previews -------------------------------------------------------------------------------------

def test_preview_shows_the_rows_of_a_real_csv_as_an_accessible_table(client, editor):
    publish(client, editor, AIR)
    res = upload(client, editor, "air-quality-sites", "laqn-sites.csv", SITES_CSV.read_bytes(), "Sites")
    page = client.get(f"/dataset/air-quality-sites/resource/{res['id']}")
    assert page.status_code == 200
    html = page.text
    with SITES_CSV.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    for name in header:
        assert f'<th scope="col" class="govuk-table__header">{name}</th>' in html
    assert '<div class="app-table-wrapper" tabindex="0" role="region" aria-label="Preview of Sites' in html
    assert "<caption" in html
    table = html[html.index("app-table-wrapper"):]
    assert table.count('<tr class="govuk-table__row">') == 1 + min(len(body), 100)
    assert "Barking and Dagenham - Rush Green" in html
    preview = client.get(f"/dataset/air-quality-sites/resource/{res['id']}.json").json()["preview"]
    assert preview["columns"] == header
    assert preview["rows"] == body[:100]
    assert preview["truncated"] is (len(body) > 100)


def test_preview_stops_after_the_first_100_rows(client, editor):
    publish(client, editor, AIR)
    text = "id,name\n" + "".join(f"{i},row {i}\n" for i in range(1, 251))
    res = upload(client, editor, "air-quality-sites", "many.csv", text.encode(), "Many rows")
    page = client.get(f"/dataset/air-quality-sites/resource/{res['id']}")
    table = page.text[page.text.index("app-table-wrapper"):]
    assert table.count('<tr class="govuk-table__row">') == 101
    assert "row 100<" in table and "row 101<" not in table
    assert "First 100 rows of Many rows" in page.text
    data = client.get(f"/dataset/air-quality-sites/resource/{res['id']}",
                      headers={"Accept": "application/json"}).json()["preview"]
    assert len(data["rows"]) == 100 and data["truncated"] is True


def test_preview_reads_gzipped_csv_and_xlsx(client, editor, tmp_path):
    import gzip

    import openpyxl

    publish(client, editor, AIR)
    gz = upload(client, editor, "air-quality-sites", "sites.csv.gz", gzip.compress(SITES_CSV.read_bytes()), "GZ")
    preview = client.get(f"/dataset/air-quality-sites/resource/{gz['id']}.json").json()["preview"]
    assert preview["columns"][2] == "@SiteCode" and preview["rows"][0][2] == "BG1"

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["borough", "population"])
    sheet.append(["Camden", 210100])
    sheet.append(["Hackney", 259200])
    buffer = io.BytesIO()
    book.save(buffer)
    xl = upload(client, editor, "air-quality-sites", "people.xlsx", buffer.getvalue(), "People")
    preview = client.get(f"/dataset/air-quality-sites/resource/{xl['id']}.json").json()["preview"]
    assert preview["columns"] == ["borough", "population"]
    assert preview["rows"] == [["Camden", "210100"], ["Hackney", "259200"]]


def test_preview_reads_latin1_and_semicolons(tmp_path):
    from smartlondon.catalogue.preview import preview_table

    path = tmp_path / "old.csv"
    path.write_bytes("name;place\nZoë;Kingston upon Thames\nRené;Brent\n".encode("latin-1"))
    preview = preview_table(path, "CSV", "old.csv", rows=100)
    assert preview is not None
    assert preview.columns == ["name", "place"]
    assert preview.rows == [["Zoë", "Kingston upon Thames"], ["René", "Brent"]]
    assert "Latin-1" in preview.note
    assert preview_table(path, "PDF", "report.pdf") is None


# --- history and organisations ------------------------------------------------------------------------

def test_history_lists_who_changed_what_before_and_after(client, editor):
    publish(client, editor, AIR)
    client.patch("/api/datasets/air-quality-sites", json={"frequency": "annual"}, headers=editor.headers)
    page = client.get("/dataset/air-quality-sites/history")
    assert page.status_code == 200
    html = page.text
    assert headings(html) == 1
    assert '<th scope="col" class="govuk-table__header">When</th>' in html
    assert "camden-editor" in html
    assert "<strong>Update frequency</strong> changed from <q>monthly</q> to <q>annual</q>" in html
    events = client.get("/dataset/air-quality-sites/history.json").json()["events"]
    assert [e["action"] for e in events] == ["dataset.update", "dataset.create"]
    assert {"field": "frequency", "before": "monthly", "after": "annual"} in events[0]["changes"]


def test_organisations_list_counts_and_organisation_page(client, editor, sysadmin):
    publish(client, editor, AIR, BUSES)
    publish(client, sysadmin, {"title": "Westminster parking", "slug": "westminster-parking",
                               "publisher": "westminster"})
    page = client.get("/organisation")
    assert page.status_code == 200 and headings(page.text) == 1
    listed = {o["slug"]: o["datasets"] for o in client.get("/organisation.json").json()["results"]}
    assert listed["camden"] == 2 and listed["westminster"] == 1 and listed["hackney"] == 0
    assert len(listed) >= 34
    camden = client.get("/organisation/camden")
    assert "2 datasets" in camden.text and "Bus stop locations" in camden.text
    assert "Westminster parking" not in camden.text
    data = client.get("/organisation/camden.json").json()
    assert data["organisation"]["name"] == "Camden" and data["count"] == 2


# --- publishing through the forms -----------------------------------------------------------------

def test_non_editors_get_a_403_page_and_anonymous_visitors_sign_in(client, editor, make_account):
    publish(client, editor, AIR)
    assert client.get("/dataset/new", follow_redirects=False).headers["location"].startswith("/sign-in?next=")
    reader = make_account("just-a-reader")
    sign_in(client, reader)
    for path in ("/dataset/new", "/dataset/air-quality-sites/edit", "/dataset/air-quality-sites/resource/new",
                 "/dataset/air-quality-sites/delete"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert headings(response.text) == 1


def test_editors_of_one_borough_cannot_edit_anothers_dataset(client, editor, sysadmin):
    publish(client, sysadmin, {"title": "Westminster parking", "slug": "westminster-parking",
                               "publisher": "westminster"})
    token = sign_in(client, editor)
    assert client.get("/dataset/westminster-parking/edit").status_code == 403
    response = client.post("/dataset/westminster-parking/edit",
                           data={"csrf_token": token, "title": "Hijacked", "publisher": "westminster"})
    assert response.status_code == 403
    assert client.get("/api/datasets/westminster-parking").json()["title"] == "Westminster parking"


def test_new_dataset_form_offers_only_the_editors_organisations(client, editor):
    sign_in(client, editor)
    page = client.get("/dataset/new")
    assert page.status_code == 200
    html = page.text
    assert '<option value="camden" selected>Camden</option>' in html
    assert 'value="westminster"' not in html
    assert html.count('name="boroughs"') == 33
    assert 'id="themes"' in html and 'id="boroughs"' in html  # first checkbox ids match the field names
    assert "<title>Publish a dataset – London Datastore</title>" in html


def test_create_dataset_form_errors_link_to_fields_and_keep_values(client, editor, db):
    token = sign_in(client, editor)
    response = client.post("/dataset/new", data={
        "csrf_token": token, "publisher": "camden", "title": "", "description": "Kept *description*",
        "contact_email": "not-an-email", "keywords": "kept, words", "themes": ["transport"],
        "temporal_start": "31/01/2023", "boroughs": ["E09000007"], "bbox": "1,2,3"})
    assert response.status_code == 422
    html = response.text
    assert "<title>Error: Publish a dataset – London Datastore</title>" in html
    summary = html[html.index("govuk-error-summary"):html.index("</h1>")]
    links = re.findall(r'<a href="#([a-z_]+)">', summary)
    assert links == ["title", "contact_email", "temporal_start", "bbox"]  # in the order of the form
    for field in links:
        assert f'id="{field}-error"' in html  # each field shows its own message too
    assert "Kept *description*</textarea>" in html
    assert 'value="not-an-email"' in html and 'value="kept, words"' in html and 'value="31/01/2023"' in html
    assert re.search(r'value="transport" checked', html)
    assert re.search(r'value="E09000007" checked', html)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Dataset)) == 0


def test_create_dataset_with_a_taken_slug_is_a_409_with_the_field_linked(client, editor):
    publish(client, editor, AIR)
    token = sign_in(client, editor)
    response = client.post("/dataset/new", data={"csrf_token": token, "publisher": "camden", "title": "Another",
                                                  "slug": "air-quality-sites"})
    assert response.status_code == 409
    assert '<a href="#slug">' in response.text and "already used by another dataset" in response.text
    assert 'value="Another"' in response.text


def test_create_dataset_through_the_form(client, editor):
    token = sign_in(client, editor)
    response = client.post("/dataset/new", data={
        "csrf_token": token, "publisher": "camden", "title": "Street trees", "description": "Every tree.",
        "licence": "CC-BY-4.0", "keywords": "trees, Environment", "themes": ["environment"],
        "frequency": "annual", "temporal_start": "2020-01-01", "boroughs": ["E09000007", "E09000012"],
        "bbox": "-0.21, 51.51, -0.10, 51.57", "geography": "point", "private": "true"},
        follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/dataset/street-trees"
    page = client.get("/dataset/street-trees")
    assert "Dataset published" in page.text and "govuk-notification-banner--success" in page.text
    data = client.get("/dataset/street-trees.json").json()
    assert data["keywords"] == ["trees", "environment"] and data["licence"]["id"] == "CC-BY-4.0"
    assert data["boroughs"] == ["E09000007", "E09000012"] and data["private"] is True
    assert data["bbox"] == [-0.21, 51.51, -0.10, 51.57]
    assert "Dataset published" not in client.get("/dataset/street-trees").text  # the message shows once


def test_create_without_the_csrf_token_is_refused_and_nothing_is_created(client, editor, db):
    sign_in(client, editor)
    response = client.post("/dataset/new", data={"publisher": "camden", "title": "Sneaky"})
    assert response.status_code == 403
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Dataset)) == 0


def test_edit_form_is_prefilled_and_saves_changes_into_the_history(client, editor):
    publish(client, editor, AIR)
    token = sign_in(client, editor)
    form = client.get("/dataset/air-quality-sites/edit")
    assert form.status_code == 200
    assert 'value="Air quality monitoring sites"' in form.text and 'value="air quality, no2"' in form.text
    assert re.search(r'value="health" checked', form.text)
    assert 'value="-0.2135, 51.5128, -0.1053, 51.5729"' in form.text
    fields = {"csrf_token": token, "publisher": "camden", "title": "LAQN sites", "slug": "air-quality-sites",
              "description": AIR["description"], "licence": "OGL-UK-3.0", "contact_name": "Air Quality Team",
              "contact_email": "air@camden.example.org", "keywords": "air quality, no2",
              "themes": ["environment", "health"], "frequency": "monthly", "temporal_start": "2023-01-01",
              "temporal_end": "2023-12-31", "boroughs": ["E09000007"],
              "bbox": "-0.2135, 51.5128, -0.1053, 51.5729", "geography": "point"}
    saved = client.post("/dataset/air-quality-sites/edit", data=fields, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == "/dataset/air-quality-sites"
    history = client.get("/dataset/air-quality-sites/history.json").json()["events"]
    changes = {c["field"]: (c["before"], c["after"]) for c in history[0]["changes"]}
    assert changes["title"] == ("Air quality monitoring sites", "LAQN sites")
    assert "keywords" not in changes and "bbox" not in changes  # unchanged fields stay unchanged
    bad = client.post("/dataset/air-quality-sites/edit", data={**fields, "temporal_end": "2022-01-01"})
    assert bad.status_code == 422 and '<a href="#temporal_end">' in bad.text


def test_delete_asks_first_then_removes_the_dataset(client, editor):
    publish(client, editor, AIR)
    token = sign_in(client, editor)
    confirm = client.get("/dataset/air-quality-sites/delete")
    assert confirm.status_code == 200 and "Are you sure" in confirm.text
    deleted = client.post("/dataset/air-quality-sites/delete", data={"csrf_token": token}, follow_redirects=False)
    assert deleted.status_code == 303 and deleted.headers["location"] == "/organisation/camden"
    assert "Dataset deleted" in client.get("/organisation/camden").text
    assert client.get("/api/datasets/air-quality-sites").status_code == 404


def test_upload_through_the_form_stores_the_file_and_its_checksum(client, editor, db, settings):
    publish(client, editor, AIR)
    sign_in(client, editor)
    form = client.get("/dataset/air-quality-sites/resource/new")
    assert form.status_code == 200
    html = form.text
    assert 'enctype="multipart/form-data"' in html
    inside = html[html.index('enctype="multipart/form-data"'):]
    assert re.match(r'[^<]*>\s*<input type="hidden" name="csrf_token"', inside)  # the first field
    token = CSRF.search(inside).group(1)
    content = SITES_CSV.read_bytes()
    response = client.post("/dataset/air-quality-sites/resource/new", follow_redirects=False,
                           data={"csrf_token": token, "title": "Sites", "description": "All sites", "format": ""},
                           files={"upload": ("laqn-sites.csv", content, "text/csv")})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/dataset/air-quality-sites"
    res = client.get("/api/datasets/air-quality-sites").json()["resources"][0]
    assert res["sha256"] == hashlib.sha256(content).hexdigest() and res["byte_size"] == len(content)
    assert res["format"] == "CSV" and res["title"] == "Sites"
    assert client.get(res["download_url"].replace("http://testserver", "")).content == content
    assert "Resource added" in client.get("/dataset/air-quality-sites").text
    assert not list((settings.files_dir / "tmp").glob("*"))


def test_upload_with_a_wrong_csrf_token_is_refused_and_leaves_no_file(client, editor, db, settings):
    publish(client, editor, AIR)
    sign_in(client, editor)
    response = client.post("/dataset/air-quality-sites/resource/new",
                           data={"csrf_token": "forged", "title": "Sites"},
                           files={"upload": ("laqn-sites.csv", SITES_CSV.read_bytes(), "text/csv")})
    assert response.status_code == 403
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Resource)) == 0
    stored = [p for p in settings.files_dir.rglob("*") if p.is_file()]
    assert stored == []


def test_resource_form_errors_and_links(client, editor):
    publish(client, editor, AIR)
    sign_in(client, editor)
    token = CSRF.search(client.get("/dataset/air-quality-sites/resource/new").text).group(1)
    empty = client.post("/dataset/air-quality-sites/resource/new",
                        data={"csrf_token": token, "title": "Nothing", "url": ""},
                        files={"upload": ("", b"", "application/octet-stream")})
    assert empty.status_code == 422
    assert '<a href="#upload">' in empty.text and 'value="Nothing"' in empty.text
    bad_link = client.post("/dataset/air-quality-sites/resource/new",
                           data={"csrf_token": token, "title": "Map", "url": "ftp://nope"},
                           files={"upload": ("", b"", "application/octet-stream")})
    assert bad_link.status_code == 422 and '<a href="#url">' in bad_link.text
    link = client.post("/dataset/air-quality-sites/resource/new", follow_redirects=False,
                       data={"csrf_token": token, "title": "Live map", "url": "https://www.londonair.org.uk/"},
                       files={"upload": ("", b"", "application/octet-stream")})
    assert link.status_code == 303
    assert client.get("/api/datasets/air-quality-sites").json()["resources"][0]["url"] == \
        "https://www.londonair.org.uk/"


@pytest.mark.parametrize("path", ["/", "/dataset", "/organisation", "/sign-in", "/accessibility", "/feedback"])
def test_every_page_has_one_h1_and_a_titled_head(client, path):
    html = client.get(path).text
    assert headings(html) == 1
    assert re.search(r"<title>[^<]+ – London Datastore</title>", html)
    assert '<html lang="en-GB"' in html
