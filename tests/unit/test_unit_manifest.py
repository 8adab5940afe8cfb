"""Signed manifests: the cloud signs, the gateway verifies, and every bad case is refused with its own reason."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cardiogate.cloud.registry import signing
from cardiogate.cloud.registry.signing import Signer, build_manifest, sign_manifest, sign_rollback_order
from cardiogate.core.artifacts import MANIFEST_FORMAT, canonical_json, key_id_for, signed_message
from cardiogate.edge.updater.manifest import (
    Refusal,
    TrustedKeys,
    check_upgrade,
    verify_artifact,
    verify_manifest,
    verify_rollback_order,
)
from cardiogate.edge.updater.versioning import compare_versions, parse_version


def _signer() -> Signer:
    return Signer(Ed25519PrivateKey.generate())


def _body(version: str = "1.1.0", data: bytes = b"model-bytes", **over: object) -> dict[str, object]:
    import hashlib

    body = build_manifest(name="rhythm", version=version, task="rhythm",
                          input_spec={"name": "ecg", "shape": [1, 1, 3750]}, sha256=hashlib.sha256(data).hexdigest(),
                          size_bytes=len(data), min_gateway_version="0.1.0", training_data_hash="ab" * 32,
                          metrics={"f1": 0.81, "auroc": 0.93}, extra={"format": "rule", "artifact": "m.json"})
    body.update(over)
    return body


def _refusal(fn: object, *args: object, **kwargs: object) -> Refusal:
    with pytest.raises(Refusal) as info:
        fn(*args, **kwargs)  # type: ignore[operator]
    return info.value


def test_signed_manifest_verifies_and_keeps_every_field() -> None:
    signer = _signer()
    raw = sign_manifest(signer, _body())
    m = verify_manifest(raw, TrustedKeys.of([signer.public_key]))
    assert (m.name, m.version, m.task, m.size_bytes, m.key_id) == ("rhythm", "1.1.0", "rhythm", 11, signer.key_id)
    assert m.body["metrics"] == {"f1": 0.81, "auroc": 0.93}
    assert m.body["training_data_hash"] == "ab" * 32 and m.min_gateway_version == "0.1.0"
    assert m.artifact_name == "m.json" and m.format == "rule"


def test_the_signed_bytes_are_exactly_the_documented_format() -> None:
    # Cloud signer and gateway verifier both take these from cardiogate.core.artifacts: pin the bytes themselves.
    metrics = {"f1": 0.1 + 0.2, "names": ["é", "N"], "nested": {"b": 1, "a": [1.5e-7, 3]}}
    assert canonical_json(metrics) == (
        '{"f1":0.30000000000000004,"names":["é","N"],"nested":{"a":[1.5e-07,3],"b":1}}'.encode())
    with pytest.raises(ValueError):
        canonical_json({"f1": float("nan")})
    body = _body(metrics=metrics)
    assert signed_message(MANIFEST_FORMAT, body) == b"cardiogate.manifest.v1\n" + canonical_json(body)
    signer = _signer()
    raw = signer.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert signer.key_id == key_id_for(signer.public_key) == hashlib.sha256(raw).hexdigest()[:16]
    assert sign_manifest(signer, body) == sign_manifest(signer, body)  # deterministic
    envelope = json.loads(sign_manifest(signer, body))
    assert envelope["format"] == MANIFEST_FORMAT and envelope["key_id"] == signer.key_id


def test_tampered_manifest_is_refused() -> None:
    signer = _signer()
    doc = json.loads(sign_manifest(signer, _body()))
    doc["body"]["version"] = "9.0.0"
    refusal = _refusal(verify_manifest, json.dumps(doc).encode(), TrustedKeys.of([signer.public_key]))
    assert refusal.code == "bad_signature" and "tampered" in refusal.detail


def test_tampered_sha_in_manifest_is_refused() -> None:
    signer = _signer()
    doc = json.loads(sign_manifest(signer, _body()))
    doc["body"]["sha256"] = "0" * 64
    assert _refusal(verify_manifest, json.dumps(doc).encode(), TrustedKeys.of([signer.public_key])).code == \
        "bad_signature"


def test_garbled_signature_is_refused() -> None:
    signer = _signer()
    doc = json.loads(sign_manifest(signer, _body()))
    doc["signature"] = "!!not base64!!"
    assert _refusal(verify_manifest, json.dumps(doc).encode(), TrustedKeys.of([signer.public_key])).code == \
        "bad_signature"


def test_unsigned_manifest_is_refused() -> None:
    signer = _signer()
    plain = json.dumps(_body()).encode()  # the bare manifest, as models/ writes beside artifacts
    refusal = _refusal(verify_manifest, plain, TrustedKeys.of([signer.public_key]))
    assert refusal.code == "unsigned" and "signature" in refusal.detail
    doc = json.loads(sign_manifest(signer, _body()))
    del doc["signature"]
    assert _refusal(verify_manifest, json.dumps(doc).encode(), TrustedKeys.of([signer.public_key])).code == "unsigned"


def test_manifest_signed_by_an_unknown_key_is_refused() -> None:
    trusted, rogue = _signer(), _signer()
    refusal = _refusal(verify_manifest, sign_manifest(rogue, _body()), TrustedKeys.of([trusted.public_key]))
    assert refusal.code == "unknown_key" and rogue.key_id in refusal.detail


def test_relabelled_key_id_cannot_borrow_trust() -> None:
    trusted, rogue = _signer(), _signer()
    doc = json.loads(sign_manifest(rogue, _body()))
    doc["key_id"] = trusted.key_id  # claim the trusted key's id, keep the rogue signature
    assert _refusal(verify_manifest, json.dumps(doc).encode(), TrustedKeys.of([trusted.public_key])).code == \
        "bad_signature"


def test_older_version_is_refused_without_a_rollback_order() -> None:
    signer = _signer()
    m = verify_manifest(sign_manifest(signer, _body("1.0.0")), TrustedKeys.of([signer.public_key]))
    refusal = _refusal(check_upgrade, m, model="rhythm", active_version="1.1.0", gateway_version="0.1.0")
    assert refusal.code == "older_version" and "1.1.0" in refusal.detail
    same = _refusal(check_upgrade, m, model="rhythm", active_version="1.0.0", gateway_version="0.1.0")
    assert same.code == "older_version"
    check_upgrade(m, model="rhythm", active_version="0.9", gateway_version="0.1.0")
    check_upgrade(m, model="rhythm", active_version=None, gateway_version="0.1.0")


def test_signed_rollback_order_allows_exactly_that_downgrade() -> None:
    signer = _signer()
    trusted = TrustedKeys.of([signer.public_key])
    m = verify_manifest(sign_manifest(signer, _body("1.0.0")), trusted)
    now = time.time_ns()
    raw = sign_rollback_order(signer, model="rhythm", rollout_id="ro-1", from_version="1.1.0", to_version="1.0.0",
                              issued_ns=now, ttl_s=60)
    order = verify_rollback_order(raw, trusted, now)
    check_upgrade(m, model="rhythm", active_version="1.1.0", gateway_version="0.1.0", rollback=order)
    assert _refusal(check_upgrade, m, model="rhythm", active_version="1.2.0", gateway_version="0.1.0",
                    rollback=order).code == "bad_rollback_order"
    assert _refusal(verify_rollback_order, raw, trusted, now + 61 * 10**9).code == "bad_rollback_order"
    # a manifest signature is not a rollback order, even from the same key
    assert _refusal(verify_rollback_order, sign_manifest(signer, _body()), trusted, now).code == "malformed"
    rogue = _signer()
    forged = sign_rollback_order(rogue, model="rhythm", rollout_id="ro-1", from_version="1.1.0", to_version="1.0.0",
                                 issued_ns=now, ttl_s=60)
    assert _refusal(verify_rollback_order, forged, trusted, now).code == "unknown_key"


def test_incompatible_gateway_and_wrong_model_are_refused() -> None:
    signer = _signer()
    trusted = TrustedKeys.of([signer.public_key])
    m = verify_manifest(sign_manifest(signer, _body(min_gateway_version="0.3.0")), trusted)
    refusal = _refusal(check_upgrade, m, model="rhythm", active_version=None, gateway_version="0.2.9")
    assert refusal.code == "incompatible" and "0.3.0" in refusal.detail
    assert _refusal(check_upgrade, m, model="st-segment", active_version=None, gateway_version="1.0").code == \
        "wrong_model"


def test_key_rotation_trusts_old_and_new_keys() -> None:
    old, new = _signer(), _signer()
    both = TrustedKeys.of([old.public_key, new.public_key])
    assert verify_manifest(sign_manifest(old, _body()), both).key_id == old.key_id
    assert verify_manifest(sign_manifest(new, _body()), both).key_id == new.key_id
    after = TrustedKeys.of([new.public_key])  # old key retired
    assert _refusal(verify_manifest, sign_manifest(old, _body()), after).code == "unknown_key"


def test_trusted_keys_load_from_json_and_pem(tmp_path: Path) -> None:
    a, b = _signer(), _signer()
    doc = signing.trusted_keys_document([a.public_key, b.public_key])
    (tmp_path / "keys.json").write_text(json.dumps(doc))
    assert set(TrustedKeys.load(tmp_path / "keys.json").keys) == {a.key_id, b.key_id}
    doc["keys"][0]["key_id"] = "0" * 16
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="does not match"):
        TrustedKeys.load(tmp_path / "bad.json")
    pem_dir = tmp_path / "pem"
    key = Signer.generate(pem_dir / "signing.key")
    assert set(TrustedKeys.load(pem_dir).keys) == {key.key_id}
    assert Signer.load(pem_dir / "signing.key").key_id == key.key_id


def test_malformed_manifests_are_refused() -> None:
    signer = _signer()
    trusted = TrustedKeys.of([signer.public_key])
    assert _refusal(verify_manifest, b"\xff\x00", trusted).code == "malformed"
    assert _refusal(verify_manifest, b"[1, 2]", trusted).code == "malformed"
    for field, value in (("sha256", "xyz"), ("size_bytes", 0), ("version", "1.0-beta"), ("name", "../etc"),
                         ("size_bytes", True), ("input", [])):
        body = _body()
        body[field] = value
        assert _refusal(verify_manifest, sign_manifest(signer, body), trusted).code == "malformed"
    missing = _body()
    del missing["metrics"]
    assert _refusal(verify_manifest, sign_manifest(signer, missing), trusted).code == "malformed"


def test_artifact_size_and_sha_are_checked(tmp_path: Path) -> None:
    signer = _signer()
    m = verify_manifest(sign_manifest(signer, _body(data=b"model-bytes")), TrustedKeys.of([signer.public_key]))
    path = tmp_path / "m.json"
    path.write_bytes(b"model-bytes")
    verify_artifact(path, m)
    path.write_bytes(b"model-byteX")
    assert _refusal(verify_artifact, path, m).code == "sha256_mismatch"
    path.write_bytes(b"model-byte")
    assert _refusal(verify_artifact, path, m).code == "size_mismatch"


def test_unsafe_artifact_names_are_replaced() -> None:
    signer = _signer()
    trusted = TrustedKeys.of([signer.public_key])
    for name, expected in (("../../etc/passwd", "passwd"), ("model.onnx", "model.onnx"), ("x.json", "x.json"),
                           ("manifest.signed.json", "model.bin"), ("", "model.bin")):
        m = verify_manifest(sign_manifest(signer, _body(artifact=name)), trusted)
        assert m.artifact_name == expected


def test_versions_compare_numerically_and_refuse_ambiguity() -> None:
    assert compare_versions("1.10.0", "1.9.9") == 1
    assert compare_versions("1.0", "1.0.0") == 0
    assert compare_versions("0.9", "1") == -1
    assert parse_version("2") == (2, 0, 0, 0)
    for bad in ("1.0-rc1", "v1", "", "1..2", "1.2.3.4.5"):
        with pytest.raises(ValueError):
            parse_version(bad)


def test_signature_is_base64_ed25519_over_tagged_canonical_body() -> None:
    """The wire format documented in docs/rollout.md, checked byte for byte."""
    signer = _signer()
    body = _body()
    doc = json.loads(sign_manifest(signer, body))
    assert doc["format"] == "cardiogate.manifest.v1" and doc["key_id"] == signer.key_id
    message = b"cardiogate.manifest.v1\n" + json.dumps(body, sort_keys=True, separators=(",", ":"),
                                                        ensure_ascii=False).encode()
    signer.public_key.verify(base64.b64decode(doc["signature"]), message)
