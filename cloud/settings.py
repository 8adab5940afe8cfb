"""Cloud settings: a TOML file, overridable by CARDIOGATE_CLOUD__* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from cardiogate.cloud.api.settings import ApiSettings
from cardiogate.cloud.registry.settings import ModelsSettings
from cardiogate.core.metrics import MetricsSettings
from cardiogate.core.settings import LayeredSettings, StrictModel, load_settings
from cardiogate.core.tracing import TracingSettings


class KafkaSettings(StrictModel):
    bootstrap: str = "127.0.0.1:9092"
    topic_ecg: str = "ecg.raw"
    topic_vitals: str = "vitals"
    topic_alarms: str = "alarms"
    topic_events: str = "device.events"
    partitions: int = Field(default=3, ge=1, le=1024)
    delivery_timeout_s: float = Field(
        default=300.0, ge=0, le=86400.0,
        description="how long the producer retries a record (librdkafka message.timeout.ms) before failing it "
                    "back to the ingest, which then does not ack it and the gateway resends it; 0 = never give "
                    "up. Make it outlast Kafka outages: a record that times out while in flight may still have "
                    "been written, and its resend would then be a duplicate")


class IngestLimits(StrictModel):
    """What a single batch may contain; anything beyond is rejected as INVALID_ARGUMENT."""

    max_records_per_batch: int = Field(default=5000, ge=1)
    max_samples_per_block: int = Field(default=65536, ge=1)
    max_clock_skew_s: float = Field(default=86400.0, gt=0)
    max_batch_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024,
                                 description="serialized size of one batch; gRPC refuses messages over twice this")


class PkiSettings(StrictModel):
    """Where the cloud CA and the ingest's server certificate live (PEM files)."""

    ca_cert: Path = Path("pki/ca.crt")
    ca_key: Path = Path("pki/ca.key")
    server_cert: Path = Path("pki/server.crt")
    server_key: Path = Path("pki/server.key")
    client_cert_days: int = Field(default=365, ge=1, le=3650)


class EnrollmentSettings(StrictModel):
    """The one-time-token enrollment service (TLS with server authentication only)."""

    listen: str = "127.0.0.1:50052"
    token_ttl_s: float = Field(default=7 * 86400.0, gt=0, le=90 * 86400.0)


class AuthzSettings(StrictModel):
    """Which gateway may send for which patient/device; checked for every batch."""

    enforce: bool = True
    cache_ttl_s: float = Field(default=2.0, ge=0, le=300, description="0 looks assignments up for every batch")
    revocation_recheck_s: float = Field(default=10.0, gt=0, le=3600,
                                        description="how often a long-lived stream re-checks its certificate")


class RateLimits(StrictModel):
    """Per-gateway token buckets; a gateway over its rate is slowed, then refused (RESOURCE_EXHAUSTED)."""

    records_per_s: float = Field(default=20_000.0, gt=0)
    bytes_per_s: float = Field(default=32 * 1024 * 1024.0, gt=0)
    burst_s: float = Field(default=2.0, gt=0, le=60, description="bucket size, in seconds of the rate")
    max_wait_s: float = Field(default=2.0, ge=0, le=60, description="longest a batch is held back before refusal")


class FlowSettings(StrictModel):
    """Back-pressure and shutdown: bounded work in flight towards Kafka."""

    max_in_flight_records: int = Field(default=50_000, ge=1, description="records produced but not yet confirmed")
    claim_ttl_s: float = Field(default=5.0, gt=0, le=300,
                               description="how long a stream claim outlives a replica that died holding it")
    drain_grace_s: float = Field(default=10.0, ge=0, le=600)


class ConsumerSettings(StrictModel):
    """The Kafka consumers that keep the dashboard tables (``run_consumers``).

    Partitions are assigned explicitly (no consumer-group rebalances): instance ``i`` of
    ``n`` reads the partitions p with p % n == i; positions live in the cloud database."""

    name: str = Field(default="store", pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    instances: int = Field(default=1, ge=1, le=1024)
    instance: int = Field(default=0, ge=0)
    max_batch: int = Field(default=500, ge=1, le=100_000, description="records per database transaction")
    poll_s: float = Field(default=0.5, gt=0, le=30)
    metrics: MetricsSettings = MetricsSettings(listen="127.0.0.1:9467")

    @model_validator(mode="after")
    def _instance_in_range(self) -> ConsumerSettings:
        if self.instance >= self.instances:
            raise ValueError(f"instance must be below instances ({self.instances})")
        return self


class ProcessorSettings(StrictModel):
    """The stream processor (``run_processor``): per-patient feature windows and risk reports.

    ``grace_s`` is how long after a window's end (in device time, as the partition's newest record
    tells it) the window waits for records from slower gateways before it is final. Every report
    is that much later, so it stays short: two minutes cover upload batching and the skew
    between gateways; a longer outage's backlog revises the closed windows instead, as long as
    they end within ``revision_horizon_s`` of the partition time, and older records go to
    ``topic_late``."""

    consumer_group: str = Field(default="cardiogate-processor", pattern=r"^[A-Za-z0-9._-]{1,128}$")
    grace_s: float = Field(default=120.0, ge=0, le=3600)
    revision_horizon_s: float = Field(default=86400.0, ge=0, le=30 * 86400.0,
                                      description="closed windows this recent are revised by late records; 0: none")
    state_dir: Path = Path("processor-state")
    redis_url: str | None = Field(default="redis://127.0.0.1:6379/0",
                                  description="latest state and risk pub/sub; None or unreachable: off")
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    processing_guarantee: Literal["at-least-once", "exactly-once"] = Field(
        default="exactly-once", description="at-least-once for brokers without transactions")
    commit_interval_s: float = Field(default=5.0, gt=0, le=300)
    topic_features_1m: str = "features.1m"
    topic_features_5m: str = "features.5m"
    topic_risk: str = "risk-events"
    topic_late: str = "features.late"
    session_timeout_ms: int = Field(default=10_000, ge=1000, le=300_000,
                                    description="consumer-group session; short, as tansu joins after about half")
    ecg_retention_s: float = Field(default=7 * 86400.0, gt=0, le=3650 * 86400.0,
                                   description="raw ECG blocks older than this (device time) are pruned")
    ecg_prune_interval_s: float = Field(default=600.0, gt=0, le=86400.0, description="how often the prune runs")
    metrics: MetricsSettings = MetricsSettings(listen="127.0.0.1:9466")


class IngestMetricsSettings(MetricsSettings):
    """The ingest's ``/metrics``: its own default port, so it can share a host with a gateway (9464)."""

    listen: str = "127.0.0.1:9465"


class CloudSettings(LayeredSettings, env_prefix="CARDIOGATE_CLOUD__"):
    listen: str = "127.0.0.1:50051"
    database: Path = Path("cloud.sqlite3")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite at `database`")
    tls: bool = Field(default=True, description="false only for a local demo: no client identity at all")
    replica: str = Field(default="ingest", max_length=64, description="this replica's name in ledger claims and logs")
    pki: PkiSettings = PkiSettings()
    enrollment: EnrollmentSettings = EnrollmentSettings()
    authz: AuthzSettings = AuthzSettings()
    rate: RateLimits = RateLimits()
    flow: FlowSettings = FlowSettings()
    kafka: KafkaSettings = KafkaSettings()
    limits: IngestLimits = IngestLimits()
    consumers: ConsumerSettings = ConsumerSettings()
    models: ModelsSettings = ModelsSettings()
    metrics: IngestMetricsSettings = IngestMetricsSettings()
    processor: ProcessorSettings = ProcessorSettings()
    api: ApiSettings = ApiSettings()
    tracing: TracingSettings = TracingSettings()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.database}"


def load_cloud_settings(path: Path | None, **overrides: object) -> CloudSettings:
    return load_settings(CloudSettings, path, **overrides)
