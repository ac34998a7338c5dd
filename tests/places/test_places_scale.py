"""The name index follows the register change by change, without rebuilding (what keeps a register of
millions of places searchable while it is edited)."""

from __future__ import annotations

from sqlalchemy import delete

from smartlondon.places import matching, service
from smartlondon.places.matching import IndexCache, MatchIndex, register_index
from smartlondon.places.models import Place
from smartlondon.places.records import MatchRecord

POINT = {"type": "Point", "coordinates": [-0.1246, 51.5308]}


def names(index: MatchIndex, query: str, kind: str | None = None) -> list[str]:
    return [c.record.name for c in index.search(query, kind=kind)]


def add(session, name: str, key: str, **extra) -> Place:  # type: ignore[no-untyped-def]
    return service.create_place(session, kind="cultural-venue", name=name, key=key, source="GLA Culture",
                                geometry=POINT, **extra)


def test_edits_update_the_index_in_place(db) -> None:
    cache = IndexCache()
    with db.session() as session:
        add(session, "Roundhouse", "roundhouse", identifiers={"osm": "123"})
        add(session, "Jazz Cafe", "jazz")
    with db.session() as session:
        index = register_index(session, cache)
        assert names(index, "Roundhose") == ["Roundhouse"] and len(index) == 2
    with db.session() as session:
        service.update_place(session, "ldn:cultural-venue:roundhouse", {"name": "The Roundhouse Camden"},
                             source="GLA Culture")
        add(session, "Koko", "koko")
    with db.session() as session:
        same = register_index(session, cache)
        assert same is index and cache.rebuilds == 1
        assert names(same, "Roundhouse Camden")[0] == "The Roundhouse Camden"
        assert same.search("Roundhouse")[0].how == "alt"  # the former name is still found
        assert names(same, "koko") == ["Koko"] and len(same) == 3
        assert [r.uid for r in same.lookup_identifier("osm:123")] == ["ldn:cultural-venue:roundhouse"]
    with db.session() as session:
        service.retire_place(session, "ldn:cultural-venue:jazz", source="GLA Culture")
    with db.session() as session:
        index = register_index(session, cache)
        assert cache.rebuilds == 1 and names(index, "Jazz Cafe") == [] and len(index) == 2
        assert "cultural-venue" in index.kinds and index.record("ldn:cultural-venue:jazz") is None


def test_an_emptied_and_refilled_register_is_rebuilt(db) -> None:
    cache = IndexCache()
    with db.session() as session:
        add(session, "Roundhouse", "roundhouse")
    with db.session() as session:
        assert names(register_index(session, cache), "Roundhouse") == ["Roundhouse"]
    with db.session() as session:
        session.execute(delete(Place))
        add(session, "Barbican Centre", "barbican")
    with db.session() as session:
        index = register_index(session, cache)
        assert cache.rebuilds == 2
        assert names(index, "Roundhouse") == [] and names(index, "Barbican") == ["Barbican Centre"]


def test_search_over_http_sees_an_edit_at_once(db, client) -> None:
    with db.session() as session:
        add(session, "Roundhouse", "roundhouse")
    assert client.get("/places/search.json", params={"q": "Roundhouse"}).json()["count"] == 1
    with db.session() as session:
        service.update_place(session, "ldn:cultural-venue:roundhouse", {"alt_names": ["Chalk Farm Roundhouse"]},
                             source="GLA Culture")
    body = client.get("/places/search.json", params={"q": "Chalk Farm Roundhouse"}).json()
    assert body["results"][0]["uid"] == "ldn:cultural-venue:roundhouse" and body["results"][0]["how"] == "alt"
    assert client.app.state.place_match_cache.rebuilds == 1


def test_many_removals_compact_the_index() -> None:
    records = [MatchRecord(uid=f"ldn:building:{n}", kind="building", name=f"{n} High Street") for n in range(3000)]
    index = MatchIndex(records)
    index.apply([r.uid for r in records[:1500]], [MatchRecord(uid="ldn:building:new", kind="building",
                                                              name="New Court")])
    assert len(index) == 1501 and index.removed == 0 and len(index.entries) == 1501  # compacted
    assert names(index, "New Court") == ["New Court"] and "10 High Street" not in names(index, "10 High Street")
    assert names(index, "2999 High Street")[0] == "2999 High Street"
    assert matching.MAX_INCREMENTAL >= 10_000
