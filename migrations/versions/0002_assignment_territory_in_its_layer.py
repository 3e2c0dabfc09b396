"""assignment territory in its layer

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 19:30:31.824120

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Tie an assignment's territory to the assignment's layer (composite foreign key)."""
    op.create_unique_constraint("uq_territories_id_layer", "territories", ["id", "layer_id"])
    op.drop_constraint("assignments_territory_id_fkey", "assignments", type_="foreignkey")
    op.create_foreign_key(
        "fk_assignments_territory_layer",
        "assignments",
        "territories",
        ["territory_id", "layer_id"],
        ["id", "layer_id"],
        ondelete="CASCADE",
    )


def downgrade() -> None:
    """Back to a foreign key on the territory alone."""
    op.drop_constraint("fk_assignments_territory_layer", "assignments", type_="foreignkey")
    op.drop_constraint("uq_territories_id_layer", "territories", type_="unique")
    op.create_foreign_key(
        "assignments_territory_id_fkey",
        "assignments",
        "territories",
        ["territory_id"],
        ["id"],
        ondelete="CASCADE",
    )
