"""Bring the cloud database to the newest schema, in code, at start: every table, the registry's
(cardiogate.cloud.registry.schema and the modules that join its metadata) and the ingest's, alarms' and
commands' (cardiogate.cloud.db, migration 0007_cloud_core). ``cardiogate.cloud.db.make_engine`` calls
``upgrade``, so every service that opens the database migrates it; nothing calls ``create_all``.

Alembic is configured here rather than from an ini file so an installed package needs
nothing beside its modules. Replicas that start together take turns: a PostgreSQL
advisory lock across hosts, a lock file beside a SQLite database across processes, and
a process lock because Alembic's command API keeps module-global state.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from cardiogate.cloud import history as _history  # noqa: F401  (the processor's tables join registry_metadata)
from cardiogate.cloud.api import tables as _api_tables  # noqa: F401  (the API's tables join registry_metadata)
from cardiogate.cloud.care import nutrition_tables as _nutrition_tables  # noqa: F401  (the nutrition analysis)
from cardiogate.cloud.care import tables as _care_tables  # noqa: F401  (the care team's chat)
from cardiogate.cloud.db import make_engine
from cardiogate.cloud.db import metadata as cloud_metadata
from cardiogate.cloud.registry.schema import registry_metadata

SCRIPT_LOCATION = Path(__file__).resolve().parent.parent / "alembic"
_PG_LOCK_KEY = 0x63617264696F  # "cardio"

# Every table the migrations own: Alembic's target metadata (autogenerate and the schema test compare with it).
TARGET_METADATA = (registry_metadata, cloud_metadata)


def _ours(table: str | None) -> bool:
    return any(table in md.tables for md in TARGET_METADATA)


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Autogenerate looks only at the cloud's own tables (a database may hold others beside them)."""
    if type_ == "table":
        return _ours(name)
    table = getattr(getattr(obj, "table", None), "name", None)
    return table is None or _ours(table)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    return config


_PROCESS_LOCK = threading.Lock()


@contextlib.contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every pending migration (idempotent: a database at head is left alone)."""
    config = alembic_config()
    with _PROCESS_LOCK, _sqlite_file_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def open_database(url: str) -> Engine:
    """The cloud engine (cardiogate.cloud.db), its database migrated to head (``make_engine`` does that)."""
    return make_engine(url)
