"""Environments, deployments, feedback; project feedback types; log fields of POST /logs; unique log
reference ids per organization.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.String(40)
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("feedback_types", sa.Text, nullable=True))
        batch.add_column(sa.Column("directory_id", _ID, nullable=True))
    with op.batch_alter_table("model_configs") as batch:
        batch.add_column(sa.Column("config_type", sa.String(16), nullable=False, server_default="model"))
    with op.batch_alter_table("logs") as batch:
        batch.add_column(sa.Column("judgment", sa.Text, nullable=True))
        batch.add_column(sa.Column("stdout", sa.Text, nullable=True))
        batch.add_column(sa.Column("duration", sa.Float, nullable=True))
        batch.add_column(sa.Column("prompt_cost", sa.Float, nullable=True))
        batch.add_column(sa.Column("output_cost", sa.Float, nullable=True))
    op.drop_index("ix_logs_org_reference", table_name="logs")
    op.create_index("uq_logs_org_reference", "logs", ["org_id", "reference_id"], unique=True)
    op.create_table(
        "environments",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("org_id", _ID, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("tag", sa.String(16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("org_id", "name", name="uq_environments_org_name"),
    )
    op.create_table(
        "deployments",
        sa.Column("project_id", _ID, sa.ForeignKey("projects.id"), primary_key=True),
        sa.Column("environment_id", _ID, sa.ForeignKey("environments.id"), primary_key=True),
        sa.Column("config_id", _ID, sa.ForeignKey("model_configs.id"), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_table(
        "feedback",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("org_id", _ID, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("log_id", _ID, sa.ForeignKey("logs.id"), nullable=False),
        sa.Column("type", sa.String(255), nullable=False),
        sa.Column("value", sa.Text, nullable=True),
        sa.Column("user", sa.String(255), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_feedback_log", "feedback", ["log_id"])
    op.create_index("ix_feedback_org_type", "feedback", ["org_id", "type"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("deployments")
    op.drop_table("environments")
    op.drop_index("uq_logs_org_reference", table_name="logs")
    op.create_index("ix_logs_org_reference", "logs", ["org_id", "reference_id"])
    with op.batch_alter_table("logs") as batch:
        for column in ("output_cost", "prompt_cost", "duration", "stdout", "judgment"):
            batch.drop_column(column)
    with op.batch_alter_table("model_configs") as batch:
        batch.drop_column("config_type")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("directory_id")
        batch.drop_column("feedback_types")
