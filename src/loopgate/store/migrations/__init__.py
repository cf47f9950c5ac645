"""Alembic migrations, ordered and append-only.

``HEAD`` names the newest revision so a start-up can see the schema is current without importing alembic;
tests/test_migrations.py checks it against alembic's own view.
"""

HEAD = "0010"
