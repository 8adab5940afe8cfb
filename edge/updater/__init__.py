"""The gateway's model updater: signed manifests, resumable downloads, shadow runs, atomic switches.

``build_updaters`` is what the gateway calls at start-up; see docs/rollout.md.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cardiogate.edge.updater.client import GrpcUpdateSource
from cardiogate.edge.updater.config import UpdaterSettings
from cardiogate.edge.updater.manifest import Manifest, Refusal, TrustedKeys
from cardiogate.edge.updater.runners import (
    EcgWindow,
    FeatureWindow,
    RiskRunner,
    RuleRunner,
    Runner,
    RunnerFactory,
    default_runner_factory,
)
from cardiogate.edge.updater.store import ModelStore
from cardiogate.edge.updater.updater import SwitchCallback, Updater, UpdaterConfig, run_updater


def build_updaters(settings: UpdaterSettings, gateway_id: str, gateway_version: str, default_target: str, *,
                   alarm_active: Callable[[], bool], on_switch: SwitchCallback | None = None,
                   runner_factory: RunnerFactory = default_runner_factory,
                   default_identity_dir: Path | None = None, server_name: str | None = None) -> list[Updater]:
    """One updater per configured model line, sharing one channel to the rollout service.

    Without its own target and identity the updater uses the uplink's (``default_target``,
    ``default_identity_dir``, ``server_name``): one enrollment serves both channels.
    """
    if not settings.enabled:
        return []
    trusted = TrustedKeys.load(settings.trusted_keys)
    source = GrpcUpdateSource.with_identity(settings.target or default_target,
                                            settings.identity_dir or default_identity_dir,
                                            settings.rpc_timeout_s, server_name)
    return [Updater(UpdaterConfig(model, gateway_id, gateway_version, settings.poll_s, settings.chunk_bytes,
                                  settings.max_download_attempts),
                    ModelStore(settings.models_dir / model, trusted), source, runner_factory=runner_factory,
                    alarm_active=alarm_active, on_switch=on_switch)
            for model in settings.models]


__all__ = [
    "EcgWindow", "FeatureWindow", "GrpcUpdateSource", "Manifest", "ModelStore", "Refusal", "RiskRunner", "RuleRunner",
    "Runner", "RunnerFactory",
    "TrustedKeys", "Updater", "UpdaterConfig", "UpdaterSettings", "build_updaters", "run_updater",
]
