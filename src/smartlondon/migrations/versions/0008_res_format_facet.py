"""Index each dataset's resource formats as ``res_format`` facet rows (CKAN package_search facets).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from smartlondon.catalogue.formats import display_format

    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT DISTINCT r.dataset_id, r.format FROM resource r JOIN dataset d ON d.id = r.dataset_id "
        "WHERE d.state <> 'deleted' AND r.format <> ''")).all()
    values = {(dataset_id, display_format(fmt)[:100]) for dataset_id, fmt in rows}
    facet = sa.table("dataset_facet", sa.column("facet"), sa.column("value"), sa.column("dataset_id"))
    if values:
        op.bulk_insert(facet, [{"facet": "res_format", "value": v, "dataset_id": i} for i, v in sorted(values)])


def downgrade() -> None:
    op.execute("DELETE FROM dataset_facet WHERE facet = 'res_format'")
