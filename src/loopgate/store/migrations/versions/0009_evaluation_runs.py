"""Evaluations loopgate runs itself (``hl_generated=true``): which runs it generates, which process is
running one (a lease, as the OTLP export's), and when its generation finished.

- ``hl_generated``: loopgate generates each datapoint's log and runs the ``llm`` evaluators. Runs created
  before this revision were all the client's (false).
- ``owner`` / ``lease_until``: the process running the run, until when (epoch seconds). Another process, or
  this one after a restart, takes a run whose lease has lapsed, and carries on where it stopped.
- ``generated_at``: set once every datapoint has its log and every ``llm`` evaluator its result; cleared
  when evaluators are added, so the runner picks the run up again.
- ``ix_evaluation_logs_log``: the runs a log belongs to, answered as the log's ``batch_ids``.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evaluations") as table:
        table.add_column(sa.Column("hl_generated", sa.Boolean, nullable=False, server_default=sa.false()))
        table.add_column(sa.Column("owner", sa.String(255), nullable=True))
        table.add_column(sa.Column("lease_until", sa.Float, nullable=False, server_default="0"))
        table.add_column(sa.Column("generated_at", sa.DateTime(timezone=True), nullable=True))
    # The runner's question, asked every few seconds by every process: which generated runs are unfinished.
    op.create_index("ix_evaluations_unfinished", "evaluations", ["hl_generated", "generated_at"])
    op.create_index("ix_evaluation_logs_log", "evaluation_logs", ["log_id"])


def downgrade() -> None:
    op.drop_index("ix_evaluation_logs_log", table_name="evaluation_logs")
    op.drop_index("ix_evaluations_unfinished", table_name="evaluations")
    with op.batch_alter_table("evaluations") as table:
        table.drop_column("generated_at")
        table.drop_column("lease_until")
        table.drop_column("owner")
        table.drop_column("hl_generated")
