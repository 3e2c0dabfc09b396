"""layer assigned_at

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 19:49:36.793025

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """When a layer was first bulk-assigned: edits keep its assignments current from then on."""
    op.add_column("layers", sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop the column."""
    op.drop_column("layers", "assigned_at")
