"""assignments partitioned by layer

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 08:10:00.000000

A bulk assignment writes a whole layer's assignments at once. Into one shared table each of a
million rows pays two foreign-key checks and three index insertions (15 s per million); into
a partition of its own the layer's rows are loaded bare, then indexed and checked in bulk
(one join per foreign key) when the partition is attached in place of the old one.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "assignments_unpartitioned"
# Relations named in the schema's namespace (indexes): renamed out of the way first.
_INDEXES = ("assignments_pkey", "ix_assignments_customer", "ix_assignments_territory_id")


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("layer_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("territory_id", sa.BigInteger(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("pinned", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "assigned_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    ]


def _create(**table_kw: str) -> None:
    op.create_table(
        "assignments",
        *_columns(),
        sa.CheckConstraint(
            "rule IN ('pinned', 'only', 'priority', 'area', 'id')", name="assignments_rule"
        ),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["territory_id", "layer_id"],
            ["territories.id", "territories.layer_id"],
            ondelete="CASCADE",
            name="fk_assignments_territory_layer",
        ),
        sa.PrimaryKeyConstraint("layer_id", "customer_id"),
        **table_kw,
    )
    op.create_index("ix_assignments_customer", "assignments", ["customer_id"])
    op.create_index(op.f("ix_assignments_territory_id"), "assignments", ["territory_id"])


def _set_aside() -> None:
    op.rename_table("assignments", _OLD)
    for index in _INDEXES:
        op.execute(f"ALTER INDEX {index} RENAME TO {index}_old")


def _move_back() -> None:
    op.execute(f"INSERT INTO assignments SELECT * FROM {_OLD}")
    op.drop_table(_OLD)


def upgrade() -> None:
    """One partition of assignments per layer (created with the layer, dropped with it)."""
    _set_aside()
    _create(postgresql_partition_by="LIST (layer_id)")
    layer_ids = op.get_bind().scalars(sa.text("SELECT id FROM layers ORDER BY id")).all()
    for layer_id in layer_ids:
        op.execute(
            f"CREATE TABLE assignments_layer_{int(layer_id)} PARTITION OF assignments "
            f"FOR VALUES IN ({int(layer_id)})"
        )
    _move_back()


def downgrade() -> None:
    """Back to one plain table."""
    _set_aside()
    _create()
    _move_back()
