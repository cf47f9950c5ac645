"""Evaluators (v4 ``/evaluators``), each with a version id that changes on every update.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.String(40)
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "evaluators",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("org_id", _ID, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("version_id", _ID, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("arguments_type", sa.String(16), nullable=False),
        sa.Column("return_type", sa.String(16), nullable=False),
        sa.Column("code", sa.Text, nullable=True),
        sa.Column("model_config", sa.Text, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("version_id", name="uq_evaluators_version"),
    )
    op.create_index("ix_evaluators_org_created", "evaluators", ["org_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_evaluators_org_created", table_name="evaluators")
    op.drop_table("evaluators")
