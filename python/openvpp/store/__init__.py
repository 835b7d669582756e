"""Storage: SQLAlchemy Core tables, Alembic migrations, repositories."""
