"""Enrollment tokens, issued certificates and revocation in the (SQLite) cloud database, and
the gateway-side checks of an enrollment reply."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Engine, select

from cardiogate.cloud.db import enrollment_tokens, make_engine
from cardiogate.cloud.enrollment import enroll_gateway
from cardiogate.cloud.identity import (
    EnrollmentRefused,
    certificate_status,
    consume_token,
    issue_token,
    revoke_gateway,
    revoke_serial,
    token_hash,
)
from cardiogate.cloud.pki import CertificateError, create_ca, serial_hex
from cardiogate.edge.enrollment import EnrollmentError, _check_reply, channel_credentials, make_csr
from cardiogate.proto.v1 import fleet_pb2

CA = create_ca()


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return make_engine(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")


def test_tokens_are_stored_only_as_hashes(engine: Engine) -> None:
    token = issue_token(engine, "gw-1", 60)
    assert len(token) >= 40
    with engine.connect() as conn:
        stored = conn.execute(select(enrollment_tokens)).one()
    assert token not in str(tuple(stored)) and stored.token_hash == token_hash(token)


def test_a_token_is_single_use_bound_to_its_gateway_and_expires(engine: Engine) -> None:
    now = time.time_ns()
    token = issue_token(engine, "gw-1", 60, now_ns=now)
    with pytest.raises(EnrollmentRefused):
        consume_token(engine, "gw-2", token, now_ns=now)
    with pytest.raises(EnrollmentRefused):
        consume_token(engine, "gw-1", token, now_ns=now + 61 * 10**9)
    consume_token(engine, "gw-1", token, now_ns=now)
    with pytest.raises(EnrollmentRefused):
        consume_token(engine, "gw-1", token, now_ns=now)
    with pytest.raises(ValueError):
        issue_token(engine, "not a gateway id", 60)


def test_a_bad_csr_does_not_spend_the_token(engine: Engine) -> None:
    token = issue_token(engine, "gw-1", 60)
    with pytest.raises(CertificateError):
        enroll_gateway(engine, CA, "gw-1", token, b"nonsense", 30)
    _, csr = make_csr("gw-1")
    cert = enroll_gateway(engine, CA, "gw-1", token, csr, 30)
    assert certificate_status(engine, serial_hex(cert)) == "ok"
    with pytest.raises(EnrollmentRefused):
        enroll_gateway(engine, CA, "gw-1", token, csr, 30)


def test_revocation_by_gateway_and_by_serial(engine: Engine) -> None:
    serials = []
    for _ in range(2):
        _, csr = make_csr("gw-1")
        serials.append(serial_hex(enroll_gateway(engine, CA, "gw-1", issue_token(engine, "gw-1", 60), csr, 30)))
    _, csr = make_csr("gw-2")
    other = serial_hex(enroll_gateway(engine, CA, "gw-2", issue_token(engine, "gw-2", 60), csr, 30))
    assert sorted(revoke_gateway(engine, "gw-1", "decommissioned")) == sorted(serials)
    assert [certificate_status(engine, s) for s in [*serials, other]] == ["revoked", "revoked", "ok"]
    assert revoke_serial(engine, other.upper()) is True
    assert certificate_status(engine, other) == "revoked"
    assert revoke_serial(engine, "0xdeadbeef") is False  # listed anyway
    assert certificate_status(engine, "deadbeef") == "revoked"
    assert certificate_status(engine, "abcdef") == "unknown"
    revoke_gateway(engine, "gw-1")  # idempotent


def reply_for(gateway: str, key_owner_csr: bytes, chain: bytes | None = None) -> fleet_pb2.EnrollReply:
    from cardiogate.cloud.pki import csr_public_key, issue_gateway_cert

    cert = issue_gateway_cert(CA, csr_public_key(key_owner_csr, gateway), gateway, 1)
    return fleet_pb2.EnrollReply(certificate_pem=cert.public_bytes(serialization.Encoding.PEM),
                                 ca_chain_pem=chain if chain is not None else CA.cert_pem, serial=serial_hex(cert))


def test_the_gateway_checks_what_the_cloud_returns() -> None:
    key, csr = make_csr("gw-1")
    _check_reply(reply_for("gw-1", csr), key, "gw-1")
    _, other_csr = make_csr("gw-1")
    with pytest.raises(EnrollmentError, match="key"):
        _check_reply(reply_for("gw-1", other_csr), key, "gw-1")
    with pytest.raises(EnrollmentError, match="names"):
        _check_reply(reply_for("gw-9", csr), key, "gw-1")
    with pytest.raises(EnrollmentError, match="CA chain"):
        _check_reply(reply_for("gw-1", csr, chain=create_ca().cert_pem), key, "gw-1")
    with pytest.raises(EnrollmentError, match="PEM"):
        _check_reply(fleet_pb2.EnrollReply(certificate_pem=b"x", ca_chain_pem=b"y"), key, "gw-1")


def test_credentials_refuse_a_missing_or_mismatched_identity(tmp_path: Path) -> None:
    with pytest.raises(EnrollmentError, match="enroll first"):
        channel_credentials(tmp_path)
    key, csr = make_csr("gw-1")
    reply = reply_for("gw-1", csr)
    (tmp_path / "ca.crt").write_bytes(reply.ca_chain_pem)
    (tmp_path / "gateway.crt").write_bytes(reply.certificate_pem)
    other, _ = make_csr("gw-1")
    (tmp_path / "gateway.key").write_bytes(other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(EnrollmentError, match="does not match"):
        channel_credentials(tmp_path)
    (tmp_path / "gateway.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    channel_credentials(tmp_path)
