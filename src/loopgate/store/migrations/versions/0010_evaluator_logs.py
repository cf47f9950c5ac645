"""Evaluator logs: each judgment loopgate makes is a log of the evaluator's logging project.

- ``evaluators.logging_project_id``: the project holding the evaluator's own logs (v4's
  ``logging_project``), created on its first judgment. No foreign key: deleting that project keeps the
  evaluator, which then gets a new one on its next judgment.
- ``evaluation_results.evaluator_log_id``: the log of the judgment that gave the result (v4's
  ``evaluator_log``). Null for results the client posts and for those judged before this revision; no
  foreign key, as a deleted log reads as absent.
- ``ix_evaluation_results_evaluator``: an evaluator's results, for ``GET /logs``' ``evaluator-<id>_filter``.
- ``ix_evaluation_results_log``: a log's results, its LogResponse ``evaluation_results``.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evaluators") as table:
        table.add_column(sa.Column("logging_project_id", sa.String(40), nullable=True))
    with op.batch_alter_table("evaluation_results") as table:
        table.add_column(sa.Column("evaluator_log_id", sa.String(40), nullable=True))
    op.create_index("ix_evaluation_results_evaluator", "evaluation_results", ["evaluator_id"])
    op.create_index("ix_evaluation_results_log", "evaluation_results", ["log_id"])


def downgrade() -> None:
    op.drop_index("ix_evaluation_results_log", table_name="evaluation_results")
    op.drop_index("ix_evaluation_results_evaluator", table_name="evaluation_results")
    with op.batch_alter_table("evaluation_results") as table:
        table.drop_column("evaluator_log_id")
    with op.batch_alter_table("evaluators") as table:
        table.drop_column("logging_project_id")
