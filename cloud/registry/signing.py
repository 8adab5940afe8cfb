"""Ed25519 signing of model manifests and rollback orders (the cloud side).

The gateway verifies these in edge/updater/manifest.py; both sides take the signed bytes
from proto/artifact_format.py: ``<format> "\\n" canonical_json(body)``, where canonical
JSON has sorted keys, no whitespace, UTF-8 and no NaN. The envelope carries the key id
(16 hex digits of the SHA-256 of the raw public key) so gateways trusting several keys
know which to use.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cardiogate.core.artifacts import (
    MANIFEST_FORMAT,
    ROLLBACK_FORMAT,
    canonical_json,
    key_id_for,
    parse_version,
    signed_message,
)


def public_key_b64(public_key: Ed25519PublicKey) -> str:
    return base64.b64encode(public_key.public_bytes(serialization.Encoding.Raw,
                                                    serialization.PublicFormat.Raw)).decode("ascii")


def trusted_keys_document(public_keys: Iterable[Ed25519PublicKey]) -> dict[str, Any]:
    """The JSON a gateway's ``updater.trusted_keys`` file holds (list old and new keys while rotating)."""
    return {"keys": [{"key_id": key_id_for(k), "public_key": public_key_b64(k)} for k in public_keys]}


@dataclass(frozen=True)
class Signer:
    """One Ed25519 private key and its id."""

    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def key_id(self) -> str:
        return key_id_for(self.public_key)

    @classmethod
    def load(cls, path: Path) -> Signer:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return cls(key)

    @classmethod
    def generate(cls, path: Path) -> Signer:
        """A new key at ``path`` (mode 0600) with its public half at ``path.pub``; never overwrites."""
        signer = cls(Ed25519PrivateKey.generate())
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = signer.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        path.with_name(path.name + ".pub").write_bytes(signer.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        return signer

    def sign(self, fmt: str, body: Mapping[str, Any]) -> bytes:
        """The envelope gateways receive; deterministic (Ed25519 is), so the same body signs the same bytes."""
        signature = base64.b64encode(self.private_key.sign(signed_message(fmt, body))).decode("ascii")
        return canonical_json({"format": fmt, "body": dict(body), "key_id": self.key_id, "signature": signature})


def build_manifest(*, name: str, version: str, task: str, input_spec: Mapping[str, Any], sha256: str,
                   size_bytes: int, min_gateway_version: str, training_data_hash: str,
                   metrics: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The manifest body: ``extra`` (format, classes, artifact, ...) first, the required fields win."""
    parse_version(version)
    parse_version(min_gateway_version)
    body = dict(extra or {})
    body.update(name=name, version=version, task=task, input=dict(input_spec), sha256=sha256, size_bytes=size_bytes,
                min_gateway_version=min_gateway_version, training_data_hash=training_data_hash, metrics=dict(metrics))
    canonical_json(body)  # refuses NaN and non-JSON values now, not at signing time
    return body


def sign_manifest(signer: Signer, body: Mapping[str, Any]) -> bytes:
    return signer.sign(MANIFEST_FORMAT, body)


def sign_rollback_order(signer: Signer, *, model: str, rollout_id: str, from_version: str, to_version: str,
                        issued_ns: int, ttl_s: float) -> bytes:
    """Permission for gateways on ``from_version`` to go down to ``to_version`` (until it expires)."""
    return signer.sign(ROLLBACK_FORMAT, {"model": model, "rollout_id": rollout_id, "from_version": from_version,
                                         "to_version": to_version, "issued_ns": issued_ns,
                                         "expires_ns": issued_ns + int(ttl_s * 1e9)})


def verify_envelope(raw: bytes, fmt: str, public_keys: Iterable[Ed25519PublicKey]) -> dict[str, Any]:
    """The cloud's own check (the CLI re-reads what it published); ValueError on any defect."""
    doc = json.loads(raw)
    keys = {key_id_for(k): k for k in public_keys}
    if doc.get("format") != fmt or doc.get("key_id") not in keys:
        raise ValueError("wrong format or unknown key")
    try:
        keys[doc["key_id"]].verify(base64.b64decode(doc["signature"]), signed_message(fmt, doc["body"]))
    except InvalidSignature:
        raise ValueError("bad signature") from None
    body: dict[str, Any] = doc["body"]
    return body
