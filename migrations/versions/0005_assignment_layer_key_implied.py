"""assignment layer key implied

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 20:09:47.070855

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Drop the assignment's own layer key: the composite key to its territory implies it."""
    op.drop_constraint(op.f("assignments_layer_id_fkey"), "assignments", type_="foreignkey")


def downgrade() -> None:
    """Put the layer key back."""
    op.create_foreign_key(
        op.f("assignments_layer_id_fkey"),
        "assignments",
        "layers",
        ["layer_id"],
        ["id"],
        ondelete="CASCADE",
    )
