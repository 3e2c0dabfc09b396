"""layers make and drop their own partition of assignments

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 08:20:00.000000

A layer inserted or deleted by any path (the API, the CLI, plain SQL) gets or loses its
partition of assignments in the same statement, so "every layer has one" holds in the
database itself. The partition is dropped before the layer's rows cascade away.
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTION = """
CREATE FUNCTION layer_assignment_partition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF assignments FOR VALUES IN (%s)',
            'assignments_layer_' || NEW.id, NEW.id
        );
        RETURN NEW;
    END IF;
    EXECUTE format('DROP TABLE IF EXISTS %I', 'assignments_layer_' || OLD.id);
    RETURN OLD;
END
$$
"""


def upgrade() -> None:
    """Triggers on layers: a partition made after each insert, dropped before each delete."""
    op.execute(_FUNCTION)
    op.execute(
        "CREATE TRIGGER layers_make_partition AFTER INSERT ON layers "
        "FOR EACH ROW EXECUTE FUNCTION layer_assignment_partition()"
    )
    op.execute(
        "CREATE TRIGGER layers_drop_partition BEFORE DELETE ON layers "
        "FOR EACH ROW EXECUTE FUNCTION layer_assignment_partition()"
    )


def downgrade() -> None:
    """Partitions are made by the application again (as in 0006)."""
    op.execute("DROP TRIGGER layers_drop_partition ON layers")
    op.execute("DROP TRIGGER layers_make_partition ON layers")
    op.execute("DROP FUNCTION layer_assignment_partition()")
