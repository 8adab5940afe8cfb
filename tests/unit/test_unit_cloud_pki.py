"""The cloud CA: what it signs, what it refuses, and the files it writes."""

from __future__ import annotations

import base64
import ipaddress
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cardiogate.cloud.pki import (
    CertificateError,
    create_ca,
    csr_public_key,
    ensure_local_pki,
    gateway_identity,
    issue_gateway_cert,
    issue_server_cert,
    load_ca,
    new_key,
    serial_hex,
)
from cardiogate.edge.enrollment import make_csr

CA = create_ca()


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def csr_for(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, cn: str = "whoever") -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)


def test_gateway_certificate_names_the_token_gateway_not_the_csr() -> None:
    _, csr = make_csr("gw-admin")  # a CSR asking for another name is certified for the token's gateway
    cert = issue_gateway_cert(CA, csr_public_key(csr, "gw-1"), "gw-1", 30)
    identity = gateway_identity(pem(cert))
    assert identity.gateway_id == "gw-1" and identity.serial == serial_hex(cert)
    cert.verify_directly_issued_by(CA.cert)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


@pytest.mark.parametrize("bad", [b"", b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                                 b"garbage"])
def test_unparseable_csr_refused(bad: bytes) -> None:
    with pytest.raises(CertificateError, match="not a PEM"):
        csr_public_key(bad, "gw-1")


def test_csr_with_a_broken_signature_refused() -> None:
    der = bytearray(x509.load_pem_x509_csr(csr_for(new_key())).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the last byte of the ECDSA signature: still parses, no longer verifies
    forged = b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(bytes(der)) + \
        b"-----END CERTIFICATE REQUEST-----\n"
    with pytest.raises(CertificateError, match="signature"):
        csr_public_key(forged, "gw-1")


@pytest.mark.parametrize("key", [ec.generate_private_key(ec.SECP384R1()), ed25519.Ed25519PrivateKey.generate()],
                         ids=["p384", "ed25519"])
def test_only_p256_keys_are_certified(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> None:
    with pytest.raises(CertificateError, match="P-256"):
        csr_public_key(csr_for(key), "gw-1")


@pytest.mark.parametrize("gateway", ["", "-gw", "gw 1", "gw/1", "g" * 65, "gw-1\n"])
def test_invalid_gateway_ids_refused(gateway: str) -> None:
    with pytest.raises(CertificateError, match="gateway id"):
        csr_public_key(csr_for(new_key()), gateway)


def test_a_server_certificate_is_not_a_gateway_identity() -> None:
    key = new_key()
    server = issue_server_cert(CA, ["ingest.example", "127.0.0.1"], key)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["ingest.example"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    with pytest.raises(CertificateError, match="client authentication"):
        gateway_identity(pem(server))


def test_ca_files_are_private_and_reloadable(tmp_path: Path) -> None:
    paths = [tmp_path / n for n in ("ca.crt", "ca.key", "server.crt", "server.key")]
    ca = ensure_local_pki(paths[0], paths[1], paths[2], paths[3])
    for key_path in (paths[1], paths[3]):
        assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    again = ensure_local_pki(paths[0], paths[1], paths[2], paths[3])  # existing files are kept
    assert again.cert == ca.cert == load_ca(paths[0], paths[1]).cert
    other = create_ca()
    paths[1].write_bytes(other.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    with pytest.raises(CertificateError, match="does not belong"):
        load_ca(paths[0], paths[1])
