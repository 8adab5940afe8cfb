"""The cloud certificate authority: EC P-256 keys, X.509 certificates for the ingest and gateways.

A gateway's certificate names it (CN and a DNS SAN equal to the gateway id) and is
only good for TLS client authentication; the ingest's certificate only for server
authentication, so neither can stand in for the other. Keys are written 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cardiogate.core.errors import PermanentError

GATEWAY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CURVE = ec.SECP256R1


class CertificateError(PermanentError, ValueError):
    """A CSR or certificate that cannot be used."""


@dataclass(frozen=True)
class CertificateAuthority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True, slots=True)
class GatewayIdentity:
    """Who a verified client certificate says it is."""

    gateway_id: str
    serial: str  # hex, as stored in the certificates and revocation tables


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(_CURVE())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def serial_hex(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def create_ca(common_name: str = "cardiogate cloud CA", days: int = 3650) -> CertificateAuthority:
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cardiogate")])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return CertificateAuthority(cert, key)


def _leaf(ca: CertificateAuthority, public_key: ec.EllipticCurvePublicKey, common_name: str,
          sans: list[x509.GeneralName], usage: x509.ObjectIdentifier, days: int) -> x509.Certificate:
    now = _now()
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca.cert.subject).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
            .sign(ca.key, hashes.SHA256()))


def issue_server_cert(ca: CertificateAuthority, hosts: Iterable[str], key: ec.EllipticCurvePrivateKey,
                      days: int = 825) -> x509.Certificate:
    """A TLS server certificate for the given DNS names and IP addresses."""
    sans: list[x509.GeneralName] = []
    names = list(hosts)
    for host in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    if not sans:
        raise CertificateError("a server certificate needs at least one host name or address")
    return _leaf(ca, key.public_key(), names[0], sans, ExtendedKeyUsageOID.SERVER_AUTH, days)


def csr_public_key(csr_pem: bytes, gateway_id: str) -> ec.EllipticCurvePublicKey:
    """The key of a well-formed, self-signed (proof of possession) P-256 CSR for a valid gateway id.
    Only the key is used: the name comes from the enrollment token, so a CSR cannot ask for
    someone else's identity."""
    if not GATEWAY_ID.fullmatch(gateway_id):
        raise CertificateError("gateway id must be 1-64 of A-Z a-z 0-9 . _ - and start alphanumeric")
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise CertificateError("the CSR is not a PEM certificate signing request") from None
    if not csr.is_signature_valid:
        raise CertificateError("the CSR signature does not verify (proof of key possession failed)")
    public_key = csr.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(public_key.curve, _CURVE):
        raise CertificateError("the CSR key must be EC P-256")
    return public_key


def issue_gateway_cert(ca: CertificateAuthority, public_key: ec.EllipticCurvePublicKey, gateway_id: str,
                       days: int) -> x509.Certificate:
    return _leaf(ca, public_key, gateway_id, [x509.DNSName(gateway_id)], ExtendedKeyUsageOID.CLIENT_AUTH, days)


def gateway_identity(cert_pem: bytes) -> GatewayIdentity:
    """The gateway a (chain-verified) client certificate names; refuses non-client certificates."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise CertificateError("not a cardiogate gateway certificate (no usage or SAN)") from None
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        raise CertificateError("certificate is not for client authentication")
    cns = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    dns = sans.get_values_for_type(x509.DNSName)
    if len(cns) != 1 or not isinstance(cns[0], str) or dns != [cns[0]] or not GATEWAY_ID.fullmatch(cns[0]):
        raise CertificateError("certificate CN and SAN must both be the gateway id")
    return GatewayIdentity(cns[0], serial_hex(cert))


# -- files ---------------------------------------------------------------------------------------


def write_private(path: Path, data: bytes) -> None:
    """Write a secret atomically, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_ca(ca: CertificateAuthority, cert_path: Path, key_path: Path) -> None:
    write_private(key_path, key_pem(ca.key))
    write_public(cert_path, ca.cert_pem)


def load_ca(cert_path: Path, key_path: Path) -> CertificateAuthority:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{key_path}: the CA key must be an EC key")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
        raise CertificateError(f"{key_path} does not belong to {cert_path}")
    return CertificateAuthority(cert, key)


def ensure_local_pki(ca_cert: Path, ca_key: Path, server_cert: Path, server_key: Path,
                     hosts: Iterable[str] = ("localhost", "127.0.0.1")) -> CertificateAuthority:
    """For local runs and tests: create the CA and a server certificate where they are missing."""
    if ca_cert.exists() and ca_key.exists():
        ca = load_ca(ca_cert, ca_key)
    else:
        ca = create_ca()
        save_ca(ca, ca_cert, ca_key)
    if not (server_cert.exists() and server_key.exists()):
        key = new_key()
        cert = issue_server_cert(ca, hosts, key)
        write_private(server_key, key_pem(key))
        write_public(server_cert, cert.public_bytes(serialization.Encoding.PEM))
    return ca
