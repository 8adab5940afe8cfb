"""The error model: every product error under one root, and the retry policy chosen by its class."""

from __future__ import annotations

import random
from pathlib import Path

import grpc
import grpc.aio
import pytest

from cardiogate.cloud.pki import CertificateError
from cardiogate.cloud.registry.fleet import FleetError
from cardiogate.cloud.registry.models import RegistryError
from cardiogate.cloud.rollout.controller import RolloutError
from cardiogate.core.backoff import PERMANENT_RETRY, Backoff, RetryPolicy, jittered, retry_policy_for
from cardiogate.core.errors import (
    CardiogateError,
    PermanentError,
    TransientError,
    UplinkRefused,
    UplinkUnavailable,
    rpc_error,
)
from cardiogate.core.settings import ConfigError
from cardiogate.edge.codecs.errors import DecodeError
from cardiogate.edge.enrollment import EnrollmentError, EnrollmentRejected, EnrollmentUnavailable
from cardiogate.edge.inference.errors import InferenceError, ModelError, ModelLoadError
from cardiogate.edge.outbox import Outbox
from cardiogate.edge.settings import UplinkSettings
from cardiogate.edge.updater.manifest import Refusal
from cardiogate.edge.uplink import Uplink, classify

OUTAGE = RetryPolicy("outage", 0.5, 30.0)


@pytest.mark.parametrize(("cls", "branch"), [
    (UplinkUnavailable, TransientError), (UplinkRefused, PermanentError), (EnrollmentRejected, PermanentError),
    (EnrollmentUnavailable, TransientError), (EnrollmentError, CardiogateError),
    (Refusal, PermanentError), (RegistryError, PermanentError), (FleetError, PermanentError),
    (RolloutError, PermanentError), (ConfigError, PermanentError), (DecodeError, PermanentError),
    (CertificateError, PermanentError), (ModelError, CardiogateError),
    (ModelLoadError, PermanentError), (InferenceError, TransientError)])
def test_every_product_error_hangs_under_the_root(cls: type[Exception], branch: type[Exception]) -> None:
    assert issubclass(cls, branch) and issubclass(cls, CardiogateError)


def test_value_errors_stay_value_errors() -> None:
    assert issubclass(DecodeError, ValueError) and issubclass(CertificateError, ValueError)


@pytest.mark.parametrize(("status", "cls"), [
    ("UNAUTHENTICATED", UplinkRefused), ("PERMISSION_DENIED", UplinkRefused), ("UNAVAILABLE", UplinkUnavailable),
    ("DEADLINE_EXCEEDED", UplinkUnavailable), ("RESOURCE_EXHAUSTED", UplinkUnavailable),
    ("INTERNAL", UplinkUnavailable)])
def test_grpc_status_decides_refused_or_unavailable(status: str, cls: type[Exception]) -> None:
    err = rpc_error(status, "why")
    assert type(err) is cls and "why" in str(err)
    rpc = grpc.aio.AioRpcError(getattr(grpc.StatusCode, status), grpc.aio.Metadata(), grpc.aio.Metadata(), "why")
    assert type(classify(rpc)) is cls


def test_unclassified_failures_count_as_outages_and_classified_ones_keep_their_class() -> None:
    assert isinstance(classify(ConnectionError("ingest closed the stream")), UplinkUnavailable)
    refusal = EnrollmentRejected("key does not match")
    assert classify(refusal) is refusal


def test_retry_policy_by_class() -> None:
    assert retry_policy_for(UplinkRefused("UNAUTHENTICATED", "revoked"), OUTAGE) is PERMANENT_RETRY
    assert retry_policy_for(EnrollmentRejected("token refused"), OUTAGE) is PERMANENT_RETRY
    assert retry_policy_for(EnrollmentUnavailable("UNAVAILABLE"), OUTAGE) is OUTAGE
    assert retry_policy_for(UplinkUnavailable("UNAVAILABLE: down"), OUTAGE) is OUTAGE
    assert retry_policy_for(OSError("reset"), OUTAGE) is OUTAGE  # unclassified: an outage, retried soon
    assert PERMANENT_RETRY.initial_s >= 60 and PERMANENT_RETRY.max_s >= 300  # minutes, not the outage seconds


def test_backoff_grows_with_jitter_inside_its_bounds() -> None:
    rng = random.Random(7)
    b = RetryPolicy("p", 1.0, 8.0).backoff(rng)
    delays = [b.next_delay() for _ in range(6)]
    for delay, cap in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert cap / 2 <= delay <= cap
    b.reset()
    assert b.next_delay() <= 1.0
    assert all(2.5 <= jittered(5.0, rng) <= 5.0 for _ in range(100))
    assert Backoff(0.5, 1.0).next_delay() <= 0.5


async def test_uplink_refusal_slows_retries_raises_once_and_clears_on_success(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    told: list[bool] = []
    uplink = Uplink("gw-e1", outbox, UplinkSettings(tls=False, backoff_initial_s=0.5, backoff_max_s=2.0),
                    on_refused=told.append)
    try:
        outage = [uplink._after_failure(UplinkUnavailable("UNAVAILABLE: down")) for _ in range(4)]
        assert max(outage) <= 2.0 and told == []
        refused = [uplink._after_failure(UplinkRefused("UNAUTHENTICATED", "revoked")) for _ in range(3)]
        assert min(refused) >= PERMANENT_RETRY.initial_s / 2 and told == [True]  # raised once, not per attempt
        assert uplink.refused is not None and uplink.refused.status == "UNAUTHENTICATED"
        uplink._accepted()
        assert told == [True, False] and uplink.refused is None
        assert uplink._after_failure(UplinkUnavailable("UNAVAILABLE: down")) <= 0.5  # every backoff starts over
        uplink._accepted()
        assert told == [True, False]
    finally:
        outbox.close()
