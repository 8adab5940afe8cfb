"""Signed model manifests and rollback orders, checked on the gateway (pure functions).

A manifest is JSON; what is signed is its canonical form (keys sorted, no whitespace,
UTF-8, no NaN) after a domain tag, so a manifest signature can never pass as a rollback
order or the other way round. The envelope names the key id; the gateway trusts a set
of public keys (several at once, for rotation) and derives each id from the key itself,
so a mislabelled key cannot stand in for another. Every refusal carries a stable code
the cloud's rollout gates and dashboards key on.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cardiogate.core.artifacts import MANIFEST_FORMAT, ROLLBACK_FORMAT, key_id_for, sha256_file, signed_message
from cardiogate.core.errors import PermanentError
from cardiogate.edge.updater.versioning import compare_versions, parse_version
from cardiogate.proto.contracts import RefusalCode

REFUSAL_CODES: tuple[RefusalCode, ...] = tuple(RefusalCode)  # the wire's RefusalCode enum, as text

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class Refusal(PermanentError):
    """The gateway will not use this artifact; ``code`` says why, in the rollout contract's terms."""

    def __init__(self, code: RefusalCode, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class TrustedKeys:
    """The public keys this gateway accepts signatures from, by key id."""

    keys: Mapping[str, Ed25519PublicKey]

    @classmethod
    def of(cls, public_keys: Iterable[Ed25519PublicKey]) -> TrustedKeys:
        return cls({key_id_for(k): k for k in public_keys})

    @classmethod
    def load(cls, path: Path) -> TrustedKeys:
        """A JSON file ``{"keys": [{"public_key": "<base64 raw>", "key_id": "..."}]}``, or a directory
        of PEM public keys (``*.pub``/``*.pem``). A stated key id must match the key's own."""
        found: list[Ed25519PublicKey] = []
        if path.is_dir():
            for pem in sorted([*path.glob("*.pub"), *path.glob("*.pem")]):
                key = serialization.load_pem_public_key(pem.read_bytes())
                if not isinstance(key, Ed25519PublicKey):
                    raise ValueError(f"{pem} is not an Ed25519 public key")
                found.append(key)
        else:
            doc = json.loads(path.read_text(encoding="utf-8"))
            for entry in doc["keys"]:
                key = Ed25519PublicKey.from_public_bytes(base64.b64decode(entry["public_key"], validate=True))
                stated = entry.get("key_id")
                if stated is not None and stated != key_id_for(key):
                    raise ValueError(f"{path}: key_id {stated!r} does not match its public key ({key_id_for(key)})")
                found.append(key)
        if not found:
            raise ValueError(f"no trusted model-signing keys in {path}")
        return cls.of(found)


def open_envelope(raw: bytes, fmt: str, trusted: TrustedKeys) -> tuple[dict[str, Any], str]:
    """The signed body and its key id, or a Refusal saying exactly what is wrong."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refusal(RefusalCode.MALFORMED, f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise Refusal(RefusalCode.MALFORMED, "expected a JSON object")
    if "signature" not in doc or "key_id" not in doc:
        raise Refusal(RefusalCode.UNSIGNED, "no signature: only manifests signed by a trusted key are accepted")
    body, key_id, signature = doc.get("body"), doc["key_id"], doc["signature"]
    if doc.get("format") != fmt or not isinstance(body, dict):
        raise Refusal(RefusalCode.MALFORMED, f"expected format {fmt!r} with an object body")
    if not isinstance(key_id, str) or key_id not in trusted.keys:
        raise Refusal(RefusalCode.UNKNOWN_KEY, f"signed with key {key_id!r}, which this gateway does not trust "
                                     f"(trusted: {', '.join(sorted(trusted.keys)) or 'none'})")
    try:
        sig = base64.b64decode(str(signature), validate=True)
        trusted.keys[key_id].verify(sig, signed_message(fmt, body))
    except (InvalidSignature, binascii.Error, ValueError):
        raise Refusal(RefusalCode.BAD_SIGNATURE,
                      "the signature does not match the content: tampered or corrupted") from None
    return body, key_id


@dataclass(frozen=True)
class Manifest:
    """A manifest whose signature has been verified."""

    body: Mapping[str, Any]
    key_id: str
    envelope: bytes

    @property
    def name(self) -> str:
        return str(self.body["name"])

    @property
    def version(self) -> str:
        return str(self.body["version"])

    @property
    def task(self) -> str:
        return str(self.body["task"])

    @property
    def sha256(self) -> str:
        return str(self.body["sha256"])

    @property
    def size_bytes(self) -> int:
        return int(self.body["size_bytes"])

    @property
    def min_gateway_version(self) -> str:
        return str(self.body["min_gateway_version"])

    @property
    def format(self) -> str:
        return str(self.body.get("format", ""))

    @property
    def artifact_name(self) -> str:
        """The file name the artifact is stored under (``artifact`` in the manifest, sanitised)."""
        name = Path(str(self.body.get("artifact", ""))).name
        return name if _SAFE_NAME.fullmatch(name) and name != "manifest.signed.json" else "model.bin"


def _check_fields(body: Mapping[str, Any]) -> None:
    required: dict[str, type | tuple[type, ...]] = {
        "name": str, "version": str, "task": str, "input": dict, "sha256": str, "size_bytes": int,
        "min_gateway_version": str, "training_data_hash": str, "metrics": dict}
    for field, kind in required.items():
        if field not in body:
            raise Refusal(RefusalCode.MALFORMED, f"manifest lacks {field!r}")
        if not isinstance(body[field], kind) or isinstance(body[field], bool):
            raise Refusal(RefusalCode.MALFORMED, f"manifest field {field!r} has the wrong type")
    if not _SAFE_NAME.fullmatch(body["name"]):
        raise Refusal(RefusalCode.MALFORMED, f"bad model name {body['name']!r}")
    if not _HEX64.fullmatch(body["sha256"]):
        raise Refusal(RefusalCode.MALFORMED, "sha256 must be 64 lowercase hex digits")
    if body["size_bytes"] <= 0:
        raise Refusal(RefusalCode.MALFORMED, "size_bytes must be positive")
    try:
        parse_version(body["version"])
        parse_version(body["min_gateway_version"])
    except ValueError as exc:
        raise Refusal(RefusalCode.MALFORMED, str(exc)) from None


def verify_manifest(raw: bytes, trusted: TrustedKeys) -> Manifest:
    """Signature first, then shape: nothing unsigned is even looked at."""
    body, key_id = open_envelope(raw, MANIFEST_FORMAT, trusted)
    _check_fields(body)
    return Manifest(body, key_id, raw)


@dataclass(frozen=True)
class RollbackOrder:
    """The cloud's signed permission to go from ``from_version`` down to ``to_version``."""

    model: str
    rollout_id: str
    from_version: str
    to_version: str
    issued_ns: int
    expires_ns: int
    key_id: str


def verify_rollback_order(raw: bytes, trusted: TrustedKeys, now_ns: int) -> RollbackOrder:
    body, key_id = open_envelope(raw, ROLLBACK_FORMAT, trusted)
    try:
        order = RollbackOrder(str(body["model"]), str(body["rollout_id"]), str(body["from_version"]),
                              str(body["to_version"]), int(body["issued_ns"]), int(body["expires_ns"]), key_id)
        parse_version(order.from_version)
        parse_version(order.to_version)
    except (KeyError, TypeError, ValueError) as exc:
        raise Refusal(RefusalCode.BAD_ROLLBACK_ORDER, f"malformed rollback order: {exc}") from None
    if now_ns > order.expires_ns:
        raise Refusal(RefusalCode.BAD_ROLLBACK_ORDER, "the rollback order has expired")
    return order


def check_upgrade(manifest: Manifest, *, model: str, active_version: str | None, gateway_version: str,
                  rollback: RollbackOrder | None = None) -> None:
    """Refuse another model line, a gateway too old for the model, and any downgrade the cloud
    did not explicitly order (a signed rollback order from our exact version to this one)."""
    if manifest.name != model:
        raise Refusal(RefusalCode.WRONG_MODEL,
                      f"manifest is for model {manifest.name!r}, this updater runs {model!r}")
    if compare_versions(gateway_version, manifest.min_gateway_version) < 0:
        raise Refusal(RefusalCode.INCOMPATIBLE,
                      f"needs gateway >= {manifest.min_gateway_version}, this is {gateway_version}")
    if active_version is None or compare_versions(manifest.version, active_version) > 0:
        return
    if rollback is None:
        raise Refusal(RefusalCode.OLDER_VERSION, f"{manifest.version} is not newer than the live {active_version}; "
                                       "a downgrade needs a signed rollback order")
    if (rollback.model, rollback.from_version, rollback.to_version) != (model, active_version, manifest.version):
        raise Refusal(RefusalCode.BAD_ROLLBACK_ORDER, f"the order covers {rollback.model} {rollback.from_version} -> "
                                            f"{rollback.to_version}, not {active_version} -> {manifest.version}")


def verify_artifact(path: Path, manifest: Manifest) -> None:
    """Size, then SHA-256: a truncated or swapped file never reaches a runtime."""
    size = path.stat().st_size
    if size != manifest.size_bytes:
        raise Refusal(RefusalCode.SIZE_MISMATCH, f"artifact is {size} bytes, the manifest says {manifest.size_bytes}")
    digest = sha256_file(path)
    if digest != manifest.sha256:
        raise Refusal(RefusalCode.SHA256_MISMATCH, f"artifact sha256 {digest[:16]}... differs from the signed "
                                         f"{manifest.sha256[:16]}...: tampered or corrupted")
