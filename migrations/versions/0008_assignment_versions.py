"""assignment versions

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 09:40:00.000000

A counter per layer that every write of the layer's assignments moves, so a coverage map's
ETag changes exactly when the layer or its assignments do. In a table of its own rather than
on the layer's row: customer writes hold the layers' rows shared while they re-assign, and
bumping a counter there would make two of them deadlock.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The assignment_versions table."""
    op.create_table(
        "assignment_versions",
        sa.Column("layer_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(["layer_id"], ["layers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("layer_id"),
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_table("assignment_versions")
