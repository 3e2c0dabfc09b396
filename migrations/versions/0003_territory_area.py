"""territory area

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 19:34:13.764605

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Geodesic area (m²) computed by PostGIS: the ownership rule's second tie-break."""
    op.add_column(
        "territories",
        sa.Column(
            "area_m2",
            sa.Double(),
            sa.Computed("ST_Area(geom::geography)", persisted=True),
            nullable=False,
        ),
    )


def downgrade() -> None:
    """Drop the area column."""
    op.drop_column("territories", "area_m2")
