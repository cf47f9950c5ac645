"""Indexes for the lists the API and the log browser read, and for retention.

- logs by project, newest first: (project_id, org_id, created_at, id) matches the organization-scoped
  ``ORDER BY created_at DESC, id DESC``, so a page is read off the index instead of sorting the project's
  logs, and a project's total is counted from the index alone;
- logs by session and by config version, oldest/newest first: (session_id, created_at), (config_id,
  created_at) -- the session tree and a version's "last used";
- logs by age alone: (created_at), what ``loopgate prune`` walks;
- the latest feedback of a type on a log: (log_id, type, created_at);
- sessions of an organization, newest first: (org_id, created_at);
- PostgreSQL only: trigram indexes (pg_trgm) on ``logs.output`` and ``blobs.data`` so ``search=`` is an
  index lookup, not a scan of every log. pg_trgm ships with PostgreSQL and is a trusted extension
  (PostgreSQL 13+), so a database owner may create it; where it cannot be created the search still works,
  by scanning.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# (table, old index, its columns, new index, its columns): each old index is a prefix of its replacement.
_REPLACED = [
    ("logs", "ix_logs_project_created", ["project_id", "created_at"], "ix_logs_project_org_created", ["id"]),
    ("logs", "ix_logs_session", ["session_id"], "ix_logs_session_created", ["created_at"]),
    ("logs", "ix_logs_config", ["config_id"], "ix_logs_config_created", ["created_at"]),
    ("feedback", "ix_feedback_log", ["log_id"], "ix_feedback_log_type_created", ["type", "created_at"]),
]
_TRIGRAM = [("ix_logs_output_trgm", "logs", "output"), ("ix_blobs_data_trgm", "blobs", "data")]


def upgrade() -> None:
    for table, old, old_columns, new, more_columns in _REPLACED:
        columns = old_columns + more_columns
        if new == "ix_logs_project_org_created":
            # org_id inside: every log query is also scoped by organization, and without it counting a
            # project's logs visits every row of the table to check it.
            columns = ["project_id", "org_id", "created_at", "id"]
        op.create_index(new, table, columns)
        op.drop_index(old, table_name=table)
    op.create_index("ix_logs_created", "logs", ["created_at"])
    op.create_index("ix_sessions_org_created", "sessions", ["org_id", "created_at"])
    if op.get_bind().dialect.name == "postgresql" and _trigram_available():
        for name, table, column in _TRIGRAM:
            op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin ({column} gin_trgm_ops)")


def _trigram_available() -> bool:
    """Creates pg_trgm if this role may; a refusal is rolled back to a savepoint, not a failed migration."""
    bind = op.get_bind()
    savepoint = bind.begin_nested()
    try:
        bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError:
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, _table, _column in _TRIGRAM:
            op.execute(f"DROP INDEX IF EXISTS {name}")
    op.drop_index("ix_sessions_org_created", table_name="sessions")
    op.drop_index("ix_logs_created", table_name="logs")
    for table, old, old_columns, new, _more_columns in reversed(_REPLACED):
        op.create_index(old, table, old_columns)
        op.drop_index(new, table_name=table)
