"""Evaluators (v4 ``/evaluators``), each with a version id that changes on every update, and evaluations the
client runs itself (v4 ``/evaluations``): their evaluators, the log posted per datapoint, and the results.

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
    op.create_table(
        "evaluations",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("org_id", _ID, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("project_id", _ID, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("config_id", _ID, sa.ForeignKey("model_configs.id"), nullable=False),
        sa.Column("dataset_id", _ID, sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("dataset_version", sa.Integer, nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_evaluations_project_created", "evaluations", ["project_id", "created_at", "id"])
    op.create_index("ix_evaluations_dataset", "evaluations", ["dataset_id"])
    op.create_table(
        "evaluation_evaluators",
        sa.Column("evaluation_id", _ID, sa.ForeignKey("evaluations.id"), primary_key=True),
        sa.Column("evaluator_id", _ID, sa.ForeignKey("evaluators.id"), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
    )
    op.create_index("ix_evaluation_evaluators_evaluator", "evaluation_evaluators", ["evaluator_id"])
    op.create_table(
        "evaluation_logs",
        sa.Column("evaluation_id", _ID, sa.ForeignKey("evaluations.id"), primary_key=True),
        sa.Column("datapoint_id", _ID, primary_key=True),
        sa.Column("log_id", _ID, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("evaluation_id", "log_id", name="uq_evaluation_logs_log"),
    )
    op.create_table(
        "evaluation_results",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("evaluation_id", _ID, sa.ForeignKey("evaluations.id"), nullable=False),
        sa.Column("log_id", _ID, nullable=False),
        sa.Column("evaluator_id", _ID, sa.ForeignKey("evaluators.id"), nullable=False),
        sa.Column("evaluator_version_id", _ID, nullable=False),
        sa.Column("value", sa.Text, nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("evaluation_id", "log_id", "evaluator_id", name="uq_evaluation_results_one"),
    )


def downgrade() -> None:
    op.drop_table("evaluation_results")
    op.drop_table("evaluation_logs")
    op.drop_index("ix_evaluation_evaluators_evaluator", table_name="evaluation_evaluators")
    op.drop_table("evaluation_evaluators")
    op.drop_index("ix_evaluations_dataset", table_name="evaluations")
    op.drop_index("ix_evaluations_project_created", table_name="evaluations")
    op.drop_table("evaluations")
    op.drop_index("ix_evaluators_org_created", table_name="evaluators")
    op.drop_table("evaluators")
