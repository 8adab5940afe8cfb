"""Updater settings: the ``[updater]`` section of the gateway's TOML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, StringConstraints

from cardiogate.core.settings import StrictModel

ModelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class UpdaterSettings(StrictModel):
    """Which model lines this gateway keeps current, where they live and whom it trusts."""

    enabled: bool = False
    models: list[ModelName] = Field(default_factory=lambda: ["rhythm"])
    risk_line: ModelName = Field(default="risk", description="the model line (one of `models`, if listed) that "
                                 "carries the risk student: its shadow sees feature windows, the others ECG windows")
    models_dir: Path = Path("gateway-models")
    trusted_keys: Path = Field(default=Path("model-keys"),
                               description="JSON key list or a folder of PEM Ed25519 public keys; several for rotation")
    target: str | None = Field(default=None, description="rollout service; default: the uplink target")
    identity_dir: Path | None = Field(default=None, description="mTLS identity from enrollment; None: plaintext")
    poll_s: float = Field(default=30.0, gt=0, le=3600)
    chunk_bytes: int = Field(default=256 * 1024, ge=1024, le=4 * 1024 * 1024)
    max_download_attempts: int = Field(default=3, ge=1, le=100,
                                       description="artifact verification failures before the version is refused")
    rpc_timeout_s: float = Field(default=30.0, gt=0, le=600)
