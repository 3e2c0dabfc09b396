"""assignments' territory checked per statement, not per row

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 09:00:00.000000

The foreign key (territory_id, layer_id) -> territories checked every written row on its own:
a lookup and a FOR KEY SHARE lock of the same few territory rows, again and again. When an
edit moves 9,000 customers to another territory (a region's new priority), that was ~45 % of
the write (bench/RESULTS.md, "Load"), and edits of a layer run one at a time.

The same rule now holds per statement, with the same guarantees:

- an INSERT or UPDATE of assignments (COPY included) locks the territories its rows name,
  once each (FOR KEY SHARE, as the key did per row, so a concurrent delete of one waits for
  this commit, or this statement sees it gone), then refuses the statement with
  foreign_key_violation if any row names a territory missing from its layer;
- a DELETE of territories deletes their assignments (ON DELETE CASCADE), in one statement;
- a territory's id or layer cannot change while assignments name it (NO ACTION).

A bulk assignment's partition is attached whole (no trigger fires): it is checked with one
join by ``assignments_check_territories`` before the attach, as the key's validation did.
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The message names the old key: what it protected is the same, and so is the error class.
# (Both checks below refuse alike: ``missing`` is the first row naming a missing territory.)
_REFUSE = """\
        RAISE EXCEPTION 'fk_assignments_territory_layer: territory % is not in layer %',
            missing.territory_id, missing.layer_id
            USING ERRCODE = 'foreign_key_violation',
                  CONSTRAINT = 'fk_assignments_territory_layer',
                  TABLE = 'assignments';"""

_CHECK = f"""
CREATE FUNCTION assignments_territory_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing record;
BEGIN
    PERFORM 1 FROM territories t
    WHERE t.id IN (SELECT DISTINCT n.territory_id FROM new_rows n)
    FOR KEY SHARE;
    SELECT n.territory_id, n.layer_id INTO missing FROM new_rows n
    WHERE NOT EXISTS (
        SELECT 1 FROM territories t WHERE t.id = n.territory_id AND t.layer_id = n.layer_id
    )
    LIMIT 1;
    IF FOUND THEN
{_REFUSE}
    END IF;
    RETURN NULL;
END
$$
"""

_CHECK_TABLE = f"""
CREATE FUNCTION assignments_check_territories(rows regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    missing record;
BEGIN
    EXECUTE format(
        'SELECT a.territory_id, a.layer_id FROM %s a WHERE NOT EXISTS ('
        'SELECT 1 FROM territories t WHERE t.id = a.territory_id AND t.layer_id = a.layer_id'
        ') LIMIT 1',
        rows
    ) INTO missing;
    IF missing.territory_id IS NOT NULL THEN
{_REFUSE}
    END IF;
END
$$
"""

_CASCADE = """
CREATE FUNCTION territories_delete_assignments() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM assignments a USING old_rows o
    WHERE a.layer_id = o.layer_id AND a.territory_id = o.id;
    RETURN NULL;
END
$$
"""

_KEEP_KEY = """
CREATE FUNCTION territories_keep_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM assignments a WHERE a.layer_id = OLD.layer_id AND a.territory_id = OLD.id
    ) THEN
        RAISE EXCEPTION 'fk_assignments_territory_layer: assignments name territory %, so its id and layer stay', OLD.id
            USING ERRCODE = 'foreign_key_violation',
                  CONSTRAINT = 'fk_assignments_territory_layer',
                  TABLE = 'territories';
    END IF;
    RETURN NEW;
END
$$
"""

_TRIGGERS = (
    "CREATE TRIGGER assignments_territory_inserted AFTER INSERT ON assignments "
    "REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION assignments_territory_check()",
    "CREATE TRIGGER assignments_territory_updated AFTER UPDATE ON assignments "
    "REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION assignments_territory_check()",
    "CREATE TRIGGER territories_cascade_assignments AFTER DELETE ON territories "
    "REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION territories_delete_assignments()",
    "CREATE TRIGGER territories_keep_key BEFORE UPDATE OF id, layer_id ON territories "
    "FOR EACH ROW WHEN (OLD.id <> NEW.id OR OLD.layer_id <> NEW.layer_id) "
    "EXECUTE FUNCTION territories_keep_key()",
)


def upgrade() -> None:
    """The per-row key replaced by per-statement triggers keeping the same rule."""
    op.drop_constraint("fk_assignments_territory_layer", "assignments", type_="foreignkey")
    for function in (_CHECK, _CHECK_TABLE, _CASCADE, _KEEP_KEY):
        op.execute(function)
    for trigger in _TRIGGERS:
        op.execute(trigger)


def downgrade() -> None:
    """The per-row foreign key again (validated against the rows there)."""
    op.execute("DROP TRIGGER territories_keep_key ON territories")
    op.execute("DROP TRIGGER territories_cascade_assignments ON territories")
    op.execute("DROP TRIGGER assignments_territory_updated ON assignments")
    op.execute("DROP TRIGGER assignments_territory_inserted ON assignments")
    op.execute("DROP FUNCTION territories_keep_key()")
    op.execute("DROP FUNCTION territories_delete_assignments()")
    op.execute("DROP FUNCTION assignments_check_territories(regclass)")
    op.execute("DROP FUNCTION assignments_territory_check()")
    op.create_foreign_key(
        "fk_assignments_territory_layer",
        "assignments",
        "territories",
        ["territory_id", "layer_id"],
        ["id", "layer_id"],
        ondelete="CASCADE",
    )
