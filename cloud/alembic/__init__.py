"""Alembic migrations of the cloud database's registry tables (applied by cardiogate.cloud.registry.migrate)."""
