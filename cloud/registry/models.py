"""The model registry: signed, immutable versions with lineage, and aliases that say which runs where.

``champion`` is what the fleet should run; ``challenger`` is what a rollout is trying.
Versions only go up within a model line (gateways refuse downgrades unless ordered), and
a published version is never changed: fix a model by publishing a newer one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, select

from cardiogate.cloud.db import insert_for
from cardiogate.cloud.registry.artifacts import ArtifactStore
from cardiogate.cloud.registry.schema import model_alias_events, model_aliases, model_versions
from cardiogate.cloud.registry.signing import Signer, build_manifest, sign_manifest
from cardiogate.core.artifacts import parse_version, sha256_file
from cardiogate.core.errors import PermanentError

CHAMPION = "champion"
CHALLENGER = "challenger"


class RegistryError(PermanentError):
    """A request the registry refuses (unknown model/version, version not newer, ...)."""


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    task: str
    sha256: str
    size_bytes: int
    artifact_key: str
    manifest: bytes
    key_id: str
    code_version: str = ""
    training_data_hash: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    model_card: str = ""
    parent_version: str | None = None
    created_ns: int = 0
    created_by: str = ""

    @classmethod
    def from_row(cls, row: Row[Any]) -> ModelVersion:
        m = row._mapping
        return cls(m["name"], m["version"], m["task"], m["sha256"], int(m["size_bytes"]), m["artifact_key"],
                   m["manifest"].encode("utf-8"), m["key_id"], m["code_version"], m["training_data_hash"],
                   json.loads(m["metrics"]), m["model_card"], m["parent_version"], int(m["created_ns"]),
                   m["created_by"])


@dataclass(frozen=True)
class AliasEvent:
    name: str
    alias: str
    version: str | None
    previous_version: str | None
    time_ns: int
    actor: str
    reason: str


class ModelRegistry:
    def __init__(self, engine: Engine, store: ArtifactStore) -> None:
        self.engine = engine
        self.store = store

    # -- versions -----------------------------------------------------------------------------
    def publish(self, artifact: Path, *, signer: Signer, name: str, version: str, task: str,
                input_spec: dict[str, Any], min_gateway_version: str, training_data_hash: str = "",
                metrics: dict[str, Any] | None = None, code_version: str = "", model_card: str = "",
                parent_version: str | None = None, extra: dict[str, Any] | None = None, actor: str = "",
                now_ns: int | None = None) -> ModelVersion:
        """Hash, sign and store the artifact and register the version (its parent defaults to the champion)."""
        parse_version(version)
        newest = self.newest(name)
        if newest is not None and parse_version(version) <= parse_version(newest.version):
            raise RegistryError(f"{name} {version} is not newer than the newest published {newest.version}: "
                                "versions only go up (gateways refuse downgrades)")
        if parent_version is None:
            parent_version = self.alias(name, CHAMPION)
        extra = dict(extra or {})
        extra.setdefault("artifact", artifact.name)
        extra.setdefault("code_version", code_version)
        body = build_manifest(name=name, version=version, task=task, input_spec=input_spec,
                              sha256=sha256_file(artifact), size_bytes=artifact.stat().st_size,
                              min_gateway_version=min_gateway_version, training_data_hash=training_data_hash,
                              metrics=metrics or {}, extra=extra)
        envelope = sign_manifest(signer, body)
        key = f"{name}/{version}/{Path(str(body['artifact'])).name}"
        self.store.put(key, artifact)
        record = ModelVersion(name, version, task, body["sha256"], body["size_bytes"], key, envelope, signer.key_id,
                              code_version, training_data_hash, dict(metrics or {}), model_card, parent_version,
                              time.time_ns() if now_ns is None else now_ns, actor)
        with self.engine.begin() as conn:
            if conn.execute(select(model_versions.c.version).where(model_versions.c.name == name,
                                                                   model_versions.c.version == version)).first():
                raise RegistryError(f"{name} {version} is already published")
            conn.execute(model_versions.insert().values(
                name=name, version=version, task=task, sha256=record.sha256, size_bytes=record.size_bytes,
                artifact_key=key, manifest=envelope.decode("utf-8"), key_id=signer.key_id, code_version=code_version,
                training_data_hash=training_data_hash, metrics=json.dumps(record.metrics, sort_keys=True),
                model_card=model_card, parent_version=parent_version, created_ns=record.created_ns,
                created_by=actor))
        return record

    def get(self, name: str, version: str) -> ModelVersion | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(model_versions).where(model_versions.c.name == name,
                                                            model_versions.c.version == version)).first()
        return ModelVersion.from_row(row) if row is not None else None

    def require(self, name: str, version: str) -> ModelVersion:
        found = self.get(name, version)
        if found is None:
            raise RegistryError(f"no model {name} version {version}")
        return found

    def versions(self, name: str) -> list[ModelVersion]:
        """All versions of a model line, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(model_versions).where(model_versions.c.name == name)).all()
        return sorted((ModelVersion.from_row(r) for r in rows), key=lambda v: parse_version(v.version))

    def newest(self, name: str) -> ModelVersion | None:
        found = self.versions(name)
        return found[-1] if found else None

    def names(self) -> list[str]:
        with self.engine.connect() as conn:
            return sorted(set(conn.execute(select(model_versions.c.name)).scalars()))

    def lineage(self, name: str, version: str) -> list[ModelVersion]:
        """The version and its ancestors (parent, grandparent, ...), newest first."""
        chain: list[ModelVersion] = []
        current: str | None = version
        while current is not None and len(chain) < 1000:
            found = self.get(name, current)
            if found is None:
                break
            chain.append(found)
            current = found.parent_version
        return chain

    def read_chunk(self, name: str, version: str, offset: int, max_bytes: int) -> tuple[bytes, int]:
        """Bytes of the artifact from ``offset`` and the artifact's total size."""
        record = self.require(name, version)
        if offset > record.size_bytes:
            raise RegistryError(f"offset {offset} is past the end ({record.size_bytes} bytes)")
        return self.store.read(record.artifact_key, offset, max(0, min(max_bytes, record.size_bytes - offset))), \
            record.size_bytes

    # -- aliases ------------------------------------------------------------------------------
    def alias(self, name: str, alias: str) -> str | None:
        with self.engine.connect() as conn:
            found: str | None = conn.execute(select(model_aliases.c.version).where(
                model_aliases.c.name == name, model_aliases.c.alias == alias)).scalar()
            return found

    def alias_updated_ns(self, name: str, alias: str) -> int | None:
        with self.engine.connect() as conn:
            found: int | None = conn.execute(select(model_aliases.c.updated_ns).where(
                model_aliases.c.name == name, model_aliases.c.alias == alias)).scalar()
            return found

    def aliases(self, name: str) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(model_aliases.c.alias, model_aliases.c.version)
                                .where(model_aliases.c.name == name)).all()
        return {r.alias: r.version for r in rows}

    def set_alias(self, name: str, alias: str, version: str | None, *, actor: str = "", reason: str = "",
                  now_ns: int | None = None, conn: Connection | None = None) -> None:
        """Point ``alias`` at ``version`` (None removes it); every change is kept in the alias history.
        Pass ``conn`` to make the change part of a caller's transaction (a rollout's completion)."""
        if conn is None:
            with self.engine.begin() as own:
                self._set_alias(own, name, alias, version, actor, reason, now_ns)
        else:
            self._set_alias(conn, name, alias, version, actor, reason, now_ns)

    @staticmethod
    def _set_alias(conn: Connection, name: str, alias: str, version: str | None, actor: str, reason: str,
                   now_ns: int | None) -> None:
        now = time.time_ns() if now_ns is None else now_ns
        if version is not None and conn.execute(select(model_versions.c.version).where(
                model_versions.c.name == name, model_versions.c.version == version)).first() is None:
            raise RegistryError(f"no model {name} version {version}")
        previous = conn.execute(select(model_aliases.c.version).where(
            model_aliases.c.name == name, model_aliases.c.alias == alias)).scalar()
        if previous == version:
            return
        if version is None:
            conn.execute(delete(model_aliases).where(model_aliases.c.name == name, model_aliases.c.alias == alias))
        else:
            stmt = insert_for(conn, model_aliases).values(name=name, alias=alias, version=version, updated_ns=now)
            conn.execute(stmt.on_conflict_do_update(index_elements=["name", "alias"],
                                                    set_={"version": version, "updated_ns": now}))
        conn.execute(model_alias_events.insert().values(name=name, alias=alias, version=version,
                                                        previous_version=previous, time_ns=now, actor=actor,
                                                        reason=reason))

    def alias_history(self, name: str) -> list[AliasEvent]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(model_alias_events).where(model_alias_events.c.name == name)
                                .order_by(model_alias_events.c.id)).all()
        return [AliasEvent(r.name, r.alias, r.version, r.previous_version, r.time_ns, r.actor, r.reason) for r in rows]
