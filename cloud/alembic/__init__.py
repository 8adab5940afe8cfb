"""Alembic migrations of the cloud database's registry tables (applied by cloud.registry.migrate)."""
