"""api keys

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 15:40:00.000000

API keys (issue 6): a public prefix to find the key by, and the SHA-256 of the whole key; the
key itself is shown once, at creation, and never stored. A key has one role (read < write <
admin) and optionally the layers it is limited to (NULL: every layer). Admin keys manage keys
and layers, so they are never limited: a limited admin could mint itself an unlimited key.
Revoking stamps revoked_at (the row stays, for the audit trail).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create api_keys."""
    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("prefix", sa.Text(), nullable=False, unique=True),
        sa.Column("secret_sha256", sa.LargeBinary(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("layers", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("label", sa.Text(), nullable=False, server_default=""),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('read', 'write', 'admin')", name="ck_api_keys_role"),
        sa.CheckConstraint("role <> 'admin' OR layers IS NULL", name="ck_api_keys_admin_unscoped"),
        sa.CheckConstraint("octet_length(secret_sha256) = 32", name="ck_api_keys_sha256"),
    )


def downgrade() -> None:
    """Drop api_keys."""
    op.drop_table("api_keys")
