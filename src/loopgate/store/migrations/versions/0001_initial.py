"""Organizations, API keys, projects, model configs, sessions, logs and content blobs.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.String(40)
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("org_id", _ID, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "projects",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("org_id", _ID, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("org_id", "name", name="uq_projects_org_name"),
    )
    op.create_table(
        "model_configs",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("org_id", _ID, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("project_id", _ID, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("project_id", "config_hash", name="uq_model_configs_project_hash"),
    )
    op.create_table(
        "sessions",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("org_id", _ID, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("reference_id", sa.String(255), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("org_id", "reference_id", name="uq_sessions_org_reference"),
    )
    op.create_table(
        "logs",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("org_id", _ID, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("project_id", _ID, sa.ForeignKey("projects.id"), nullable=True),
        sa.Column("session_id", _ID, sa.ForeignKey("sessions.id"), nullable=True),
        sa.Column("parent_id", _ID, nullable=True),
        sa.Column("reference_id", sa.String(255), nullable=True),
        sa.Column("config_id", _ID, sa.ForeignKey("model_configs.id"), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("source", sa.String(255), nullable=True),
        sa.Column("source_datapoint_id", sa.String(64), nullable=True),
        sa.Column("environment", sa.String(255), nullable=True),
        sa.Column("user", sa.String(255), nullable=True),
        sa.Column("save", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sample_index", sa.Integer, nullable=False),
        sa.Column("output", sa.Text, nullable=True),
        sa.Column("finish_reason", sa.String(32), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("prompt_tokens", sa.Integer, nullable=True),
        sa.Column("output_tokens", sa.Integer, nullable=True),
        sa.Column("provider_latency", sa.Float, nullable=True),
        sa.Column("metadata", sa.Text, nullable=True),
        sa.Column("payload", sa.Text, nullable=True),
    )
    op.create_index("ix_logs_project_created", "logs", ["project_id", "created_at"])
    op.create_index("ix_logs_session", "logs", ["session_id"])
    op.create_index("ix_logs_parent", "logs", ["parent_id"])
    op.create_index("ix_logs_org_reference", "logs", ["org_id", "reference_id"])
    op.create_index("ix_logs_config", "logs", ["config_id"])
    op.create_table(
        "blobs",
        sa.Column("hash", sa.String(32), primary_key=True),
        sa.Column("data", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("blobs", "logs", "sessions", "model_configs", "projects", "api_keys", "organizations"):
        op.drop_table(table)
