"""The Alembic migrations own the whole cloud schema, on SQLite (the embedded default) and PostgreSQL.

An empty database brought to head by the migrations alone has exactly the tables, columns, types, keys and
indexes of every SQLAlchemy ``MetaData`` in cardiogate.cloud (cardiogate.cloud.db's and the registry's, with
the tables the history, API and care modules add to it); a downgrade to 0006 and back works; and databases
that ``create_all`` made before 0007_cloud_core are upgraded in place, their rows kept.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, create_engine, inspect, select

import cardiogate.cloud
from cardiogate.cloud import db
from cardiogate.cloud.registry.migrate import (
    TARGET_METADATA,
    alembic_config,
    current_revision,
    head_revision,
    upgrade,
)
from cardiogate.cloud.registry.schema import registry_metadata
from tests.integration.cloud_testkit import postgres_schema

pytestmark = pytest.mark.timeout(180)

BEFORE_CORE = "0006_care_nutrition"
CORE_TABLES = set(db.metadata.tables) - {"assignments"}  # assignments: 0001_registry


def all_metadata() -> list[MetaData]:
    """Every MetaData defined in a module of cardiogate.cloud (importing them all, so each adds its tables)."""
    found: dict[int, MetaData] = {}
    for info in pkgutil.walk_packages(cardiogate.cloud.__path__, "cardiogate.cloud."):
        if ".alembic" in info.name:
            continue  # migration scripts are loaded by Alembic, not imported
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, MetaData):
                found[id(value)] = value
    return list(found.values())


@pytest.fixture(scope="module")
def project_metadata() -> list[MetaData]:
    metadata = all_metadata()
    assert any(md is db.metadata for md in metadata) and any(md is registry_metadata for md in metadata)
    return metadata


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    else:
        with postgres_schema() as url:
            yield url


@pytest.fixture
def bare(db_url: str) -> Iterator[Engine]:
    """An engine on an empty database: nothing made by ``create_all``, only what a migration makes."""
    engine = create_engine(db_url)
    assert inspect(engine).get_table_names() == []
    yield engine
    engine.dispose()


def merged(metadata: Iterable[MetaData]) -> MetaData:
    """One MetaData holding copies of every table of ``metadata`` (what ``compare_metadata`` takes)."""
    into = MetaData()
    for md in metadata:
        for table in md.tables.values():
            table.to_metadata(into)
    return into


def differences(engine: Engine, metadata: Iterable[MetaData]) -> list[object]:
    """What autogenerate would write to bring the database to ``metadata``: nothing, when they agree. No filter:
    a table in the database that no metadata declares is a difference too."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(context, merged(metadata)))


def downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def test_the_migrations_target_every_metadata_of_the_project(project_metadata: list[MetaData]) -> None:
    assert {id(md) for md in project_metadata} == {id(md) for md in TARGET_METADATA}
    in_0007 = {"ingest_ledger", "enrollment_tokens", "certificates", "revoked_certificates", "latest_vitals",
               "alarm_events", "alarms_current", "gaps", "device_status", "gateway_commands", "alarm_comments",
               "alarm_labels", "consumer_offsets"}
    assert in_0007 == CORE_TABLES  # a new table in cardiogate.cloud.db needs a new migration, not an edit of 0007


def test_an_empty_database_migrated_to_head_has_exactly_the_declared_schema(
        bare: Engine, project_metadata: list[MetaData]) -> None:
    upgrade(bare)
    assert current_revision(bare) == head_revision() == "0007_cloud_core"
    names = set(inspect(bare).get_table_names())
    assert {t for md in project_metadata for t in md.tables} | {"alembic_version"} == names
    assert differences(bare, project_metadata) == []

    # down to 0006: the core tables go, the registry's stay; and up again to the same schema
    downgrade(bare, BEFORE_CORE)
    assert current_revision(bare) == BEFORE_CORE
    names = set(inspect(bare).get_table_names())
    assert not names & CORE_TABLES and set(registry_metadata.tables) | {"assignments"} <= names
    upgrade(bare)
    assert current_revision(bare) == "0007_cloud_core"
    assert differences(bare, project_metadata) == []


def test_make_engine_migrates_and_works_on_the_migrated_tables(db_url: str,
                                                               project_metadata: list[MetaData]) -> None:
    engine = db.make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
        assert differences(engine, project_metadata) == []
        with engine.begin() as conn:
            conn.execute(db.gateway_commands.insert().values(
                command_id="c1", gateway_id="gw", patient="p", command="ack", payload="{}", actor="a", role="nurse",
                origin="127.0.0.1", issued_ns=1, expires_ns=2))
            conn.execute(db.alarm_labels.insert().values(alarm_id="a1", username="u", patient="p", is_true=True,
                                                         note="", client="c", time_ns=3))
        with engine.connect() as conn:
            row = conn.execute(select(db.gateway_commands.c.outcome, db.gateway_commands.c.deliveries)).one()
            assert tuple(row) == ("pending", 0)  # the Python-side defaults db.py declares
            assert conn.execute(select(db.alarm_labels.c.is_true)).scalar_one() is True
    finally:
        engine.dispose()


@pytest.mark.parametrize("before", [BEFORE_CORE, None], ids=["at-0006", "never-migrated"])
def test_a_database_made_by_create_all_is_upgraded_in_place(bare: Engine, before: str | None,
                                                             project_metadata: list[MetaData]) -> None:
    """What the cloud did before 0007: ``create_all`` for cardiogate.cloud.db's tables, either beside a registry
    migrated to 0006 or (a database only the ingest ever opened) with no migration at all."""
    if before is not None:
        upgrade(bare, before)
    db.metadata.create_all(bare)
    with bare.begin() as conn:
        conn.execute(db.consumer_offsets.insert().values(consumer="store", topic="t", partition=0, next_offset=42))
    upgrade(bare)
    assert current_revision(bare) == "0007_cloud_core"
    with bare.connect() as conn:
        assert conn.execute(select(db.consumer_offsets.c.next_offset)).scalar_one() == 42
    assert differences(bare, project_metadata) == []


def test_an_index_create_all_left_out_is_added(tmp_path: Path, project_metadata: list[MetaData]) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    upgrade(engine, BEFORE_CORE)
    db.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_gateway_commands_pending")
    upgrade(engine)
    names = {ix["name"] for ix in inspect(engine).get_indexes("gateway_commands")}
    assert names == {"ix_gateway_commands_pending", "ix_gateway_commands_patient"}
    assert differences(engine, project_metadata) == []
    engine.dispose()
