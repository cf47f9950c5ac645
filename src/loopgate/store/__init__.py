"""Storage: SQLAlchemy Core tables, the group-commit writer, and the queries the service needs."""
