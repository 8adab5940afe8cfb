"""The ``[models]`` section of the cloud's TOML: artifact store, signing key, rollout timing."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from cardiogate.core.settings import StrictModel


class ModelsSettings(StrictModel):
    """Where artifacts live, which key signs, and how often gateways and the controller act."""

    artifact_root: Path = Path("model-artifacts")
    signing_key: Path | None = Field(default=Path("keys/model-signing.key"),
                                     description="Ed25519 private key (PEM): `models publish` signs manifests with "
                                                 "it and the server signs rollback orders; none: no rollbacks")
    poll_s: float = Field(default=30.0, gt=0, le=3600, description="how often gateways ask for their assignment")
    chunk_bytes: int = Field(default=256 * 1024, ge=1024, le=4 * 1024 * 1024)
    rollback_ttl_s: float = Field(default=2 * 86400.0, gt=0, le=30 * 86400.0)
    tick_s: float = Field(default=5.0, gt=0, le=600, description="re-evaluation of running rollouts")
