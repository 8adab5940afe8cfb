"""The signed-artifact wire format the cloud's signer and the gateway's verifier share.

A signature covers ``FORMAT + "\\n" + canonical JSON of the body``; both sides must produce
those bytes identically, and order versions identically, so they take them from here rather
than each keeping a copy. Pure: no keys are created or stored here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MANIFEST_FORMAT = "cardiogate.manifest.v1"
ROLLBACK_FORMAT = "cardiogate.rollback.v1"
_VERSION = re.compile(r"^\d{1,9}(\.\d{1,9}){0,3}$")


def parse_version(text: str) -> tuple[int, ...]:
    """``"1.10.2"`` -> ``(1, 10, 2, 0)``; ValueError for anything else."""
    if not isinstance(text, str) or not _VERSION.fullmatch(text):
        raise ValueError(f"version {text!r} is not dotted integers such as 1.2.0")
    parts = tuple(int(p) for p in text.split("."))
    return parts + (0,) * (4 - len(parts))


def canonical_json(value: Any) -> bytes:
    """The exact bytes a signature covers."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def signed_message(fmt: str, body: Mapping[str, Any]) -> bytes:
    return fmt.encode("ascii") + b"\n" + canonical_json(body)


def key_id_for(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of the SHA-256 of the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
