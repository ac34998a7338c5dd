"""Reverse geocoding reads area shapes lazily and caches them by place: a changed boundary is seen at once."""

from __future__ import annotations

from smartlondon.places import service, spatial
from smartlondon.places.models import Place

SQUARE = {"type": "Polygon", "coordinates": [[[-0.13, 51.52], [-0.11, 51.52], [-0.11, 51.54], [-0.13, 51.54],
                                              [-0.13, 51.52]]]}
MOVED = {"type": "Polygon", "coordinates": [[[-0.03, 51.52], [-0.01, 51.52], [-0.01, 51.54], [-0.03, 51.54],
                                             [-0.03, 51.52]]]}


def ward_at(client, lon: float, lat: float):  # type: ignore[no-untyped-def]
    response = client.get("/places/api/reverse", params={"lon": lon, "lat": lat})
    assert response.status_code == 200
    return response.json()["ward"]


def test_a_moved_boundary_is_seen_by_the_next_call(db, client) -> None:
    with db.session() as session:
        service.create_place(session, kind="ward", name="Test Ward", key="E05999999", source="ONS", geometry=SQUARE)
    assert ward_at(client, -0.12, 51.53) == {"uid": "ldn:ward:E05999999", "name": "Test Ward"}
    assert ward_at(client, -0.02, 51.53) is None
    with db.session() as session:
        service.update_place(session, "ldn:ward:E05999999", {"geometry": MOVED}, source="ONS")
    assert ward_at(client, -0.12, 51.53) is None
    assert ward_at(client, -0.02, 51.53) == {"uid": "ldn:ward:E05999999", "name": "Test Ward"}
    with db.session() as session:
        service.retire_place(session, "ldn:ward:E05999999", source="ONS")
    assert ward_at(client, -0.02, 51.53) is None


def test_the_shape_cache_is_bounded_and_loads_only_what_a_point_needs(db) -> None:
    cache = spatial.ShapeCache(max_entries=2)
    with db.session() as session:
        ids = [service.create_place(session, kind="park", name=f"Park {n}", key=f"p{n}", source="GLA",
                                    geometry={"type": "Polygon", "coordinates": [[
                                        [-0.1 + n / 100, 51.5], [-0.095 + n / 100, 51.5], [-0.095 + n / 100, 51.505],
                                        [-0.1 + n / 100, 51.5]]]}).id for n in range(3)]
    with db.session() as session:
        stamps = [(pid, session.get(Place, pid).geometry_asserted_at) for pid in ids]
        shapes = cache.get_many(session, stamps)
        assert sorted(shapes) == ids and all(s.geom_type == "Polygon" for s in shapes.values())
        assert len(cache._shapes) == 2  # bounded: the oldest was dropped
        assert set(cache.get_many(session, stamps[:1])) == {ids[0]}
