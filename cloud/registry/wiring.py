"""Building the registries and the rollout service for the cloud process (a few lines in cloud/server.py)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc.aio
from sqlalchemy import Engine

from cardiogate.cloud.registry.artifacts import FilesystemArtifactStore
from cardiogate.cloud.registry.fleet import FleetRegistry
from cardiogate.cloud.registry.migrate import upgrade
from cardiogate.cloud.registry.models import ModelRegistry
from cardiogate.cloud.registry.settings import ModelsSettings
from cardiogate.cloud.registry.signing import Signer
from cardiogate.cloud.rollout.controller import RolloutController
from cardiogate.cloud.rollout.service import RolloutService
from cardiogate.proto.v1 import rollout_pb2_grpc


@dataclass(frozen=True)
class Registries:
    fleet: FleetRegistry
    models: ModelRegistry
    rollouts: RolloutController


def build_registries(engine: Engine, settings: ModelsSettings) -> Registries:
    """The registries over an engine already migrated (``cardiogate.cloud.registry.migrate.upgrade``)."""
    signer = Signer.load(settings.signing_key) if settings.signing_key and settings.signing_key.is_file() else None
    fleet = FleetRegistry(engine)
    models = ModelRegistry(engine, FilesystemArtifactStore(settings.artifact_root))
    controller = RolloutController(engine, models, fleet, signer, poll_s=settings.poll_s,
                                   chunk_bytes=settings.chunk_bytes, rollback_ttl_s=settings.rollback_ttl_s)
    return Registries(fleet, models, controller)


def attach_rollout(server: grpc.aio.Server, engine: Engine, settings: ModelsSettings, tls: bool) -> Registries:
    """Migrate the registry tables, build the registries and serve Rollout on ``server`` (blocking: call it
    before the event loop gets busy, or through ``asyncio.to_thread``)."""
    upgrade(engine)
    registries = build_registries(engine, settings)
    rollout_pb2_grpc.add_RolloutServicer_to_server(RolloutService(registries.rollouts, engine, tls), server)
    return registries
