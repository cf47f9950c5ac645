"""Search as an index lookup on both backends, exact totals without counting, and indexes for the rest.

- ``uq_logs_org_reference`` becomes partial (``WHERE reference_id IS NOT NULL``): most logs have no
  reference id, and an index holding every log under ``org_id`` tempted SQLite (without statistics) to
  answer ``org_id = ? AND id IN (...)`` by walking all of an organization's logs. Uniqueness is unchanged:
  NULLs never collided anyway.
- ``ix_logs_session_project`` (session_id, project_id, created_at) replaces (session_id, created_at): the
  "does this session touch the project" probe of ``GET /sessions`` is answered from the index alone.
- ``ix_logs_config_project`` (config_id, created_at, project_id, org_id, id) replaces (config_id,
  created_at): still a version's logs newest first (its "last used" is one probe), now with everything the
  model filter's page reads, so it never visits the logs it skips.
- ``ix_sessions_org_created_id`` (org_id, created_at, id) replaces (org_id, created_at): the session list's
  ``ORDER BY created_at DESC, id DESC`` is the index order, so a page reads 50 sessions instead of sorting
  all of the organization's.
- ``ix_feedback_type_value`` (type, value, log_id): the feedback filter starts from the matching rows.
- ``log_tallies``: logs per (organization, project, config version), filled from the existing logs here and
  kept exact by triggers on ``logs`` (insert, delete, a change of the three columns), so a project's total
  or a version's usage is a sum over a few rows, not a count of up to every log (see store/tallies.py).
- Search. SQLite: ``logs_search``, an FTS5 table with the trigram tokenizer over the output and the inputs
  text (external content: a view over ``logs``, so it stores only the index), kept current by triggers on
  ``logs`` -- the group-commit writer inserts plain rows, and triggers also cover updates, deletes and
  retention. It is filled from the existing logs here. PostgreSQL: a trigram index on the inputs
  expression the query uses, next to those on ``logs.output`` and ``blobs.data`` (revision 0004).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Trigger bodies name the row as ROW, replaced by new/old. json_valid first: a payload that is not JSON (none
# should be) must not make its log's insert fail.
_INPUTS = "CASE WHEN json_valid(ROW.payload) THEN json_extract(ROW.payload, '$.inputs') END"
_INDEX = "INSERT INTO logs_search (rowid, output, inputs) VALUES (new.rowid, new.output, INPUTS);"
# An FTS5 external-content delete must repeat the values that were indexed: the old row's.
_UNINDEX = (
    "INSERT INTO logs_search (logs_search, rowid, output, inputs)"
    " VALUES ('delete', old.rowid, old.output, INPUTS);"
)
_INDEX = _INDEX.replace("INPUTS", _INPUTS.replace("ROW", "new"))
_UNINDEX = _UNINDEX.replace("INPUTS", _INPUTS.replace("ROW", "old"))
_SQLITE_SEARCH = [
    "CREATE VIEW logs_search_source AS SELECT rowid AS log_rowid, output, INPUTS AS inputs FROM logs".replace(
        "INPUTS", _INPUTS.replace("ROW", "logs")
    ),
    "CREATE VIRTUAL TABLE logs_search USING fts5(output, inputs, content='logs_search_source',"
    # columnsize=0: no per-row size table (only ranking uses it), a quarter less insert time.
    " content_rowid='log_rowid', tokenize='trigram', columnsize=0)",
    "CREATE TRIGGER logs_search_insert AFTER INSERT ON logs BEGIN " + _INDEX + " END",
    "CREATE TRIGGER logs_search_delete AFTER DELETE ON logs BEGIN " + _UNINDEX + " END",
    "CREATE TRIGGER logs_search_update AFTER UPDATE OF output, payload ON logs BEGIN "
    + _UNINDEX
    + " "
    + _INDEX
    + " END",
    "INSERT INTO logs_search (logs_search) VALUES ('rebuild')",
]
# A NULL project/config is tallied under '' (see tables.log_tallies).
_KEY = "ROW.org_id, coalesce(ROW.project_id, ''), coalesce(ROW.config_id, '')"
_COUNT = (
    "INSERT INTO log_tallies (org_id, project_id, config_id, logs) VALUES (KEY, 1)"
    " ON CONFLICT (org_id, project_id, config_id) DO UPDATE SET logs = log_tallies.logs + 1;"
).replace("KEY", _KEY.replace("ROW", "new"))
_UNCOUNT = (
    "UPDATE log_tallies SET logs = logs - 1 WHERE org_id = old.org_id"
    " AND project_id = coalesce(old.project_id, '') AND config_id = coalesce(old.config_id, '');"
)
_SQLITE_TALLIES = [
    "CREATE TRIGGER log_tallies_insert AFTER INSERT ON logs BEGIN " + _COUNT + " END",
    "CREATE TRIGGER log_tallies_delete AFTER DELETE ON logs BEGIN " + _UNCOUNT + " END",
    "CREATE TRIGGER log_tallies_update AFTER UPDATE OF org_id, project_id, config_id ON logs BEGIN "
    + _UNCOUNT
    + " "
    + _COUNT
    + " END",
]
# PostgreSQL counts per statement, from the transition tables: a row trigger would update the same tally
# row once per log, and every update of a row leaves a new row version (a COPY of 50,000 logs went from 2
# to 40 s). Summed again so an UPDATE's old and new rows net out (one key may appear only once in an upsert);
# ORDER BY: statements lock the tally rows they share in the same order, so never deadlock.
_PG_DELTA = (
    "SELECT org_id, coalesce(project_id, '') AS project_id, coalesce(config_id, '') AS config_id,"
    " SIGN * count(*) AS logs FROM ROWS GROUP BY 1, 2, 3"
)
_PG_APPLY = (
    "INSERT INTO log_tallies (org_id, project_id, config_id, logs)"
    " SELECT org_id, project_id, config_id, sum(logs) FROM (DELTAS) AS delta"
    " GROUP BY 1, 2, 3 HAVING sum(logs) <> 0 ORDER BY 1, 2, 3 ON CONFLICT (org_id, project_id, config_id)"
    " DO UPDATE SET logs = log_tallies.logs + excluded.logs;"
)
_PG_TALLIES = [
    """CREATE FUNCTION log_tallies_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERTED
    ELSIF TG_OP = 'DELETE' THEN
        DELETED
    ELSE
        UPDATED
    END IF;
    RETURN NULL;
END $$""".replace(
        "INSERTED", _PG_APPLY.replace("DELTAS", _PG_DELTA.replace("SIGN", "1").replace("ROWS", "new_logs"))
    )
    .replace(
        "DELETED", _PG_APPLY.replace("DELTAS", _PG_DELTA.replace("SIGN", "-1").replace("ROWS", "old_logs"))
    )
    .replace(
        "UPDATED",
        _PG_APPLY.replace(
            "DELTAS",
            _PG_DELTA.replace("SIGN", "-1").replace("ROWS", "old_logs")
            + " UNION ALL "
            + _PG_DELTA.replace("SIGN", "1").replace("ROWS", "new_logs"),
        ),
    ),
    "CREATE TRIGGER log_tallies_insert AFTER INSERT ON logs REFERENCING NEW TABLE AS new_logs"
    " FOR EACH STATEMENT EXECUTE FUNCTION log_tallies_count()",
    "CREATE TRIGGER log_tallies_delete AFTER DELETE ON logs REFERENCING OLD TABLE AS old_logs"
    " FOR EACH STATEMENT EXECUTE FUNCTION log_tallies_count()",
    # Transition tables rule out a column list (UPDATE OF ...): every UPDATE statement re-tallies its rows,
    # which nets to zero unless a log moved to another project, config or organization.
    "CREATE TRIGGER log_tallies_update AFTER UPDATE ON logs REFERENCING OLD TABLE AS old_logs"
    " NEW TABLE AS new_logs FOR EACH STATEMENT EXECUTE FUNCTION log_tallies_count()",
]
_BACKFILL_TALLIES = (
    "INSERT INTO log_tallies (org_id, project_id, config_id, logs)"
    " SELECT KEY, count(*) FROM logs GROUP BY 1, 2, 3"
).replace("KEY", _KEY.replace("ROW", "logs"))

# The exact expression LogStore._search filters on, so the planner matches it.
_PG_INPUTS = (
    "CREATE INDEX IF NOT EXISTS ix_logs_inputs_trgm ON logs"
    " USING gin ((CAST(payload AS JSONB) ->> 'inputs') gin_trgm_ops)"
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.drop_index("uq_logs_org_reference", table_name="logs")
    op.create_index(
        "uq_logs_org_reference",
        "logs",
        ["org_id", "reference_id"],
        unique=True,
        sqlite_where=sa.text("reference_id IS NOT NULL"),
        postgresql_where=sa.text("reference_id IS NOT NULL"),
    )
    op.create_index("ix_logs_session_project", "logs", ["session_id", "project_id", "created_at"])
    op.drop_index("ix_logs_session_created", table_name="logs")
    op.create_index(
        "ix_logs_config_project", "logs", ["config_id", "created_at", "project_id", "org_id", "id"]
    )
    op.drop_index("ix_logs_config_created", table_name="logs")
    op.create_index("ix_feedback_type_value", "feedback", ["type", "value", "log_id"])
    op.create_index("ix_sessions_org_created_id", "sessions", ["org_id", "created_at", "id"])
    op.drop_index("ix_sessions_org_created", table_name="sessions")
    op.create_table(
        "log_tallies",
        sa.Column("org_id", sa.String(40), primary_key=True),
        sa.Column("project_id", sa.String(40), primary_key=True),
        sa.Column("config_id", sa.String(40), primary_key=True),
        sa.Column("logs", sa.Integer, nullable=False),
    )
    op.create_index("ix_log_tallies_config", "log_tallies", ["config_id"])
    # Triggers before the backfill, in the same transaction: on PostgreSQL the table is locked by the
    # trigger's creation until commit, so no log lands between the two uncounted.
    for statement in _SQLITE_TALLIES if dialect == "sqlite" else _PG_TALLIES:
        op.execute(statement)
    op.execute(_BACKFILL_TALLIES)
    if dialect == "sqlite" and _fts5_available():
        for statement in _SQLITE_SEARCH:
            op.execute(statement)
    if dialect == "postgresql" and _has_extension("pg_trgm"):
        op.execute(_PG_INPUTS)


def _fts5_available() -> bool:
    """SQLite builds without FTS5 (rare) keep searching by scan."""
    row = op.get_bind().execute(sa.text("SELECT sqlite_compileoption_used('ENABLE_FTS5')")).scalar()
    return bool(row)


def _has_extension(name: str) -> bool:
    found = op.get_bind().execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = :n"), {"n": name})
    return found.first() is not None


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for trigger in ("log_tallies_insert", "log_tallies_delete", "log_tallies_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON logs")
        op.execute("DROP FUNCTION IF EXISTS log_tallies_count()")
    else:
        for trigger in ("log_tallies_insert", "log_tallies_delete", "log_tallies_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS log_tallies")
    if dialect == "sqlite":
        for trigger in ("logs_search_insert", "logs_search_delete", "logs_search_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS logs_search")
        op.execute("DROP VIEW IF EXISTS logs_search_source")
    if dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_logs_inputs_trgm")
    op.create_index("ix_sessions_org_created", "sessions", ["org_id", "created_at"])
    op.drop_index("ix_sessions_org_created_id", table_name="sessions")
    op.drop_index("ix_feedback_type_value", table_name="feedback")
    op.create_index("ix_logs_config_created", "logs", ["config_id", "created_at"])
    op.drop_index("ix_logs_config_project", table_name="logs")
    op.create_index("ix_logs_session_created", "logs", ["session_id", "created_at"])
    op.drop_index("ix_logs_session_project", table_name="logs")
    op.drop_index("uq_logs_org_reference", table_name="logs")
    op.create_index("uq_logs_org_reference", "logs", ["org_id", "reference_id"], unique=True)
