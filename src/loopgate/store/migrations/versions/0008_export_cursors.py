"""The OTLP export's cursor: where the exporter stands in commit order, and which process exports.

- ``export_cursors``: one row per exporter (store/exports.py).
- SQLite: commit order is rowid order (one writer at a time, each new row gets the largest rowid + 1). The
  exception is a deletion of the newest logs, after which their rowids are handed out again; the trigger
  ``logs_export_tail`` then lowers every cursor to the newest remaining log and bumps its generation, so a
  new log can never land at or below a cursor. It fires only when the deleted row was the newest one.
- PostgreSQL: ids and created_at are chosen before the commit, and transactions commit in any order, so
  neither orders commits. ``logs.export_xid`` records the inserting transaction (``pg_current_xact_id()``,
  a 64-bit id that never wraps); the exporter reads only logs of transactions older than every transaction
  still running (``pg_snapshot_xmin``), which can gain no new rows. Added without a default first, then
  given one: a volatile default in ADD COLUMN would rewrite every existing log. Older logs keep NULL and
  are never exported (export starts where it is first enabled).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_SQLITE_TAIL_TRIGGER = (
    "CREATE TRIGGER logs_export_tail AFTER DELETE ON logs"
    " WHEN old.rowid > (SELECT coalesce(max(rowid), 0) FROM logs) BEGIN"
    " UPDATE export_cursors SET position = min(position, (SELECT coalesce(max(rowid), 0) FROM logs)),"
    " generation = generation + 1; END"
)


def upgrade() -> None:
    op.create_table(
        "export_cursors",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("log_id", sa.String(40), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=False),
        sa.Column("exported", sa.BigInteger, nullable=False),
        sa.Column("dropped", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE logs ADD COLUMN export_xid xid8")
        op.execute("ALTER TABLE logs ALTER COLUMN export_xid SET DEFAULT pg_current_xact_id()")
        op.execute("CREATE INDEX ix_logs_export_xid ON logs (export_xid, id)")
    else:
        op.execute(_SQLITE_TAIL_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_logs_export_xid")
        op.execute("ALTER TABLE logs DROP COLUMN export_xid")
    else:
        op.execute("DROP TRIGGER logs_export_tail")
    op.drop_table("export_cursors")
