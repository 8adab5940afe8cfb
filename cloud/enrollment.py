"""The Enrollment service: a one-time token and a CSR in, a client certificate and the CA out.

The CSR is checked before the token is spent, so a gateway with a broken CSR can try
again with the same token; the token is then consumed atomically (one certificate
per token, even across replicas) before the CA signs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Engine

from cardiogate.cloud.identity import EnrollmentRefused, consume_token, record_certificate
from cardiogate.cloud.pki import CertificateAuthority, CertificateError, csr_public_key, issue_gateway_cert, serial_hex
from cardiogate.core.logs import get_logger
from cardiogate.proto.v1 import fleet_pb2, fleet_pb2_grpc

log = get_logger(__name__)


def _ns(cert: x509.Certificate, attr: str) -> int:
    return int(getattr(cert, attr).timestamp() * 1e9)


def enroll_gateway(engine: Engine, ca: CertificateAuthority, gateway_id: str, token: str, csr_pem: bytes,
                   days: int) -> x509.Certificate:
    """Check the CSR, spend the token, sign, and record the certificate (blocking)."""
    public_key = csr_public_key(csr_pem, gateway_id)
    digest = consume_token(engine, gateway_id, token)
    cert = issue_gateway_cert(ca, public_key, gateway_id, days)
    record_certificate(engine, digest, gateway_id, serial_hex(cert), _ns(cert, "not_valid_before_utc"),
                       _ns(cert, "not_valid_after_utc"))
    return cert


class EnrollmentService(fleet_pb2_grpc.EnrollmentServicer):
    def __init__(self, engine: Engine, ca: CertificateAuthority, days: int) -> None:
        self._engine = engine
        self._ca = ca
        self._days = days

    async def Enroll(self, request: fleet_pb2.EnrollRequest,
                     context: grpc.aio.ServicerContext[Any, Any]) -> fleet_pb2.EnrollReply:
        try:
            cert = await asyncio.to_thread(enroll_gateway, self._engine, self._ca, request.gateway_id,
                                           request.token, request.csr_pem, self._days)
        except CertificateError as exc:
            log.warning("enrollment refused: bad request", gateway=request.gateway_id, reason=str(exc))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except EnrollmentRefused as exc:
            log.warning("enrollment refused: token", gateway=request.gateway_id, peer=context.peer())
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        log.info("gateway enrolled", gateway=request.gateway_id, serial=serial_hex(cert))
        return fleet_pb2.EnrollReply(certificate_pem=cert.public_bytes(Encoding.PEM), ca_chain_pem=self._ca.cert_pem,
                                     serial=serial_hex(cert), not_after_ns=_ns(cert, "not_valid_after_utc"))
