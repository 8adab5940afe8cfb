"""The gateway's side of enrollment, and the TLS credentials its identity gives the uplink.

The gateway makes its own EC P-256 key; only a CSR leaves the device. It calls the
cloud's Enrollment service over TLS, trusting nothing but the CA certificate it was
installed with, and authenticates with a one-time token. The reply's certificate is
checked (our key, our gateway id, issued by the returned CA) before anything is
written; each file is replaced atomically, so a failed attempt leaves the previous
identity in place, and :func:`channel_credentials` refuses a key that does not match
its certificate.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cardiogate.core.errors import REFUSAL_STATUSES, CardiogateError, PermanentError, TransientError
from cardiogate.core.logs import get_logger
from cardiogate.proto.v1 import fleet_pb2, fleet_pb2_grpc

log = get_logger(__name__)

KEY_FILE = "gateway.key"
CERT_FILE = "gateway.crt"
CA_FILE = "ca.crt"


class EnrollmentError(CardiogateError):
    """Enrollment failed; the message says why (token refused, bad reply, unreachable)."""


class EnrollmentRejected(EnrollmentError, PermanentError):
    """The cloud refused the token or CSR, its reply cannot be used, or there is no identity yet: trying
    again with the same inputs fails the same way."""


class EnrollmentUnavailable(EnrollmentError, TransientError):
    """The enrollment service could not be reached or did not answer in time."""


@dataclass(frozen=True, slots=True)
class IdentityPaths:
    key: Path
    cert: Path
    ca: Path

    @classmethod
    def in_dir(cls, directory: Path) -> IdentityPaths:
        return cls(directory / KEY_FILE, directory / CERT_FILE, directory / CA_FILE)


@dataclass(frozen=True, slots=True)
class GatewayCertificate:
    gateway_id: str
    serial: str
    not_after: dt.datetime


def _pem(ca_cert_pem_or_path: bytes | str | Path) -> bytes:
    if isinstance(ca_cert_pem_or_path, bytes):
        return ca_cert_pem_or_path
    if isinstance(ca_cert_pem_or_path, str) and ca_cert_pem_or_path.lstrip().startswith("-----BEGIN"):
        return ca_cert_pem_or_path.encode()
    return Path(ca_cert_pem_or_path).read_bytes()


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_csr(gateway_id: str) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    """A fresh key and a CSR for it (the name is informative; the cloud takes it from the token)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gateway_id)]))
           .sign(key, hashes.SHA256()))
    return key, csr.public_bytes(serialization.Encoding.PEM)


def _check_reply(reply: fleet_pb2.EnrollReply, key: ec.EllipticCurvePrivateKey, gateway_id: str) -> None:
    try:
        cert = x509.load_pem_x509_certificate(reply.certificate_pem)
        chain = x509.load_pem_x509_certificates(reply.ca_chain_pem)
    except ValueError as exc:
        raise EnrollmentRejected(f"the cloud's reply is not PEM certificates: {exc}") from None
    if cert.public_key() != key.public_key():
        raise EnrollmentRejected("the issued certificate is not for this gateway's key")
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [gateway_id]:
        raise EnrollmentRejected(f"the issued certificate names {names}, not {gateway_id!r}")
    for issuer in chain:
        try:
            cert.verify_directly_issued_by(issuer)
            return
        except (ValueError, TypeError, InvalidSignature):
            continue
    raise EnrollmentRejected("the issued certificate does not verify against the returned CA chain")


def enroll(target: str, gateway_id: str, token: str, out_dir: Path, ca_cert_pem_or_path: bytes | str | Path,
           timeout_s: float = 30.0, server_name: str | None = None) -> IdentityPaths:
    """Enroll with the cloud at ``target`` (host:port of the enrollment service) and write
    ``gateway.key`` (0600), ``gateway.crt`` and ``ca.crt`` into ``out_dir``.

    ``ca_cert_pem_or_path`` is the cloud CA the installer shipped (PEM bytes/text or a path):
    it is the only thing trusted to authenticate the server. ``server_name`` overrides the
    name checked in the server's certificate (when the target is an address it does not list).
    """
    ca_pem = _pem(ca_cert_pem_or_path)
    key, csr_pem = make_csr(gateway_id)
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    try:
        with grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=ca_pem),
                                 options=options) as channel:
            reply = fleet_pb2_grpc.EnrollmentStub(channel).Enroll(
                fleet_pb2.EnrollRequest(gateway_id=gateway_id, token=token, csr_pem=csr_pem), timeout=timeout_s)
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        detail = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        name = code.name if code else "error"
        refused = name in REFUSAL_STATUSES or name == "INVALID_ARGUMENT"
        raise (EnrollmentRejected if refused else EnrollmentUnavailable)(
            f"enrollment at {target} failed ({name}): {detail}") from None
    _check_reply(reply, key, gateway_id)
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths = IdentityPaths.in_dir(out_dir)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _write_atomic(paths.ca, reply.ca_chain_pem, 0o644)
    _write_atomic(paths.key, key_pem, 0o600)
    _write_atomic(paths.cert, reply.certificate_pem, 0o644)
    _fsync_dir(out_dir)
    log.info("gateway enrolled", gateway=gateway_id, serial=reply.serial, identity=str(out_dir))
    return paths


def load_certificate(identity_dir: Path) -> GatewayCertificate:
    """Who the stored identity says this gateway is (to compare with the configured gateway id)."""
    cert = x509.load_pem_x509_certificate(IdentityPaths.in_dir(identity_dir).cert.read_bytes())
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return GatewayCertificate(str(names[0]) if names else "", format(cert.serial_number, "x"),
                              cert.not_valid_after_utc)


def channel_credentials(identity_dir: Path) -> grpc.ChannelCredentials:
    """mTLS credentials for the uplink: this gateway's key and certificate, and the cloud CA."""
    paths = IdentityPaths.in_dir(identity_dir)
    try:
        key_pem, cert_pem, ca_pem = paths.key.read_bytes(), paths.cert.read_bytes(), paths.ca.read_bytes()
    except FileNotFoundError as exc:
        raise EnrollmentRejected(
            f"no gateway identity in {identity_dir} ({exc.filename} missing): enroll first") from None
    key = serialization.load_pem_private_key(key_pem, password=None)
    if x509.load_pem_x509_certificate(cert_pem).public_key() != key.public_key():
        raise EnrollmentRejected(f"{paths.key} does not match {paths.cert}: enroll again")
    return grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem)
