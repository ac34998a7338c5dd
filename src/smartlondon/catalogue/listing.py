"""Read-only views of datasets for lists (search results, organisation pages), loaded in bulk.

A page of 20 results needs each dataset's publisher, licence, keywords, themes, boroughs and
resources. Loading those as ORM objects costs more than the search itself, so lists use these
plain views instead, filled by three Core statements whatever the page size. They have the same
attribute names as the ORM classes, so ``service.dataset_dict`` and the templates take either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, literal, select, union_all
from sqlalchemy.orm import Session

from ..core.models import Organisation
from .models import Dataset, DatasetArea, DatasetKeyword, DatasetPlace, DatasetTheme, Licence, Resource


@dataclass(slots=True)
class OrganisationView:
    """The publisher of a listed dataset."""

    id: int
    slug: str
    name: str


@dataclass(slots=True)
class LicenceView:
    """The licence of a listed dataset."""

    id: str
    title: str
    url: str


@dataclass(slots=True)
class KeywordView:
    """A keyword of a listed dataset."""

    keyword: str


@dataclass(slots=True)
class ThemeView:
    """A theme of a listed dataset."""

    theme: str


@dataclass(slots=True)
class AreaView:
    """A borough a listed dataset covers."""

    gss_code: str


@dataclass(slots=True)
class PlaceRefView:
    """A place in the register (ldn: uid) a listed dataset names."""

    place_uid: str


@dataclass(slots=True)
class ResourceView:
    """A resource of a listed dataset."""

    id: int
    uuid: str
    position: int
    title: str
    description: str
    kind: str
    url: str | None
    storage_key: str | None
    filename: str | None
    format: str
    media_type: str
    byte_size: int | None
    sha256: str | None
    table_schema: dict[str, Any] | None
    extras: dict[str, str]
    created: datetime
    modified: datetime


@dataclass(slots=True)
class DatasetView:
    """A listed dataset, with everything a result shows."""

    id: int
    uuid: str
    slug: str
    title: str
    description: str
    organisation_id: int
    licence_id: str
    contact_name: str
    contact_email: str
    frequency: str
    temporal_start: date | None
    temporal_end: date | None
    bbox_west: float | None
    bbox_south: float | None
    bbox_east: float | None
    bbox_north: float | None
    geography: str
    private: bool
    state: str
    featured: bool
    landing_page: str
    version: str
    extras: dict[str, str]
    created: datetime
    modified: datetime
    organisation: OrganisationView
    licence: LicenceView
    keywords: list[KeywordView] = field(default_factory=list)
    themes: list[ThemeView] = field(default_factory=list)
    areas: list[AreaView] = field(default_factory=list)
    resources: list[ResourceView] = field(default_factory=list)
    place_refs: list[PlaceRefView] = field(default_factory=list)


_DATASET_COLUMNS = [c for c in DatasetView.__dataclass_fields__
                    if c not in ("organisation", "licence", "keywords", "themes", "areas", "resources", "place_refs")]
_RESOURCE_COLUMNS = list(ResourceView.__dataclass_fields__)


_IDS = bindparam("ids", expanding=True)
# Built once: constructing statements costs more than running these ones.
_DATASETS = (
    select(*[getattr(Dataset, c) for c in _DATASET_COLUMNS], Organisation.slug, Organisation.name,
           Licence.title, Licence.url)
    .join(Organisation, Organisation.id == Dataset.organisation_id)
    .join(Licence, Licence.id == Dataset.licence_id)
    .where(Dataset.id.in_(_IDS))
)
_TAGS = union_all(
    select(DatasetKeyword.dataset_id, literal("k"), DatasetKeyword.keyword, DatasetKeyword.position)
    .where(DatasetKeyword.dataset_id.in_(_IDS)),
    select(DatasetTheme.dataset_id, literal("t"), DatasetTheme.theme, literal(0))
    .where(DatasetTheme.dataset_id.in_(_IDS)),
    select(DatasetArea.dataset_id, literal("a"), DatasetArea.gss_code, literal(0))
    .where(DatasetArea.dataset_id.in_(_IDS)),
    select(DatasetPlace.dataset_id, literal("p"), DatasetPlace.place_uid, literal(0))
    .where(DatasetPlace.dataset_id.in_(_IDS)),
)
_RESOURCES = (
    select(Resource.dataset_id, *[getattr(Resource, c) for c in _RESOURCE_COLUMNS])
    .where(Resource.dataset_id.in_(_IDS)).order_by(Resource.dataset_id, Resource.position, Resource.id)
)


def load_datasets(session: Session, ids: list[int]) -> list[DatasetView]:
    """The datasets with these ids, in this order, as views (three statements in all)."""
    if not ids:
        return []
    params = {"ids": list(ids)}
    views: dict[int, DatasetView] = {}
    width = len(_DATASET_COLUMNS)
    for row in session.execute(_DATASETS, params):
        values = dict(zip(_DATASET_COLUMNS, row[:width]))
        org_slug, org_name, licence_title, licence_url = row[width:]
        views[values["id"]] = DatasetView(
            **values, organisation=OrganisationView(values["organisation_id"], org_slug, org_name),
            licence=LicenceView(values["licence_id"], licence_title, licence_url))
    for dataset_id, kind, value, _position in sorted(session.execute(_TAGS, params),
                                                     key=lambda r: (r[0], r[1], r[3], r[2])):
        view = views[dataset_id]
        if kind == "k":
            view.keywords.append(KeywordView(value))
        elif kind == "t":
            view.themes.append(ThemeView(value))
        elif kind == "p":
            view.place_refs.append(PlaceRefView(value))
        else:
            view.areas.append(AreaView(value))
    for row in session.execute(_RESOURCES, params):
        views[row[0]].resources.append(ResourceView(*row[1:]))
    return [views[i] for i in ids if i in views]
