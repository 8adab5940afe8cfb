"""Alembic environment: programmatic (``cardiogate.cloud.registry.migrate`` hands over a connection) or the
``alembic`` command line with ``-c cloud/alembic.ini`` and ``CARDIOGATE_CLOUD__DATABASE_URL``."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine

from cardiogate.cloud import history as _history  # noqa: F401  (the processor's tables join registry_metadata)
from cardiogate.cloud.api import tables as _api_tables  # noqa: F401  (the API's tables join registry_metadata)
from cardiogate.cloud.care import nutrition_tables as _nutrition_tables  # noqa: F401  (the nutrition analysis)
from cardiogate.cloud.care import tables as _care_tables  # noqa: F401  (the care team's chat)
from cardiogate.cloud.registry.migrate import TARGET_METADATA, include_object

config = context.config


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=list(TARGET_METADATA), render_as_batch=True,
                      compare_type=True, include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = os.environ.get("CARDIOGATE_CLOUD__DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set CARDIOGATE_CLOUD__DATABASE_URL or sqlalchemy.url in alembic.ini")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=list(TARGET_METADATA),
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
