"""Cloud settings: a TOML file, overridable by CARDIOGATE_CLOUD__* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from cardiogate.config import LayeredSettings, StrictModel, load_settings


class KafkaSettings(StrictModel):
    bootstrap: str = "127.0.0.1:9092"
    topic_ecg: str = "ecg.raw"
    topic_vitals: str = "vitals"
    topic_alarms: str = "alarms"
    topic_events: str = "device.events"
    partitions: int = Field(default=3, ge=1, le=1024)
    delivery_timeout_s: float = Field(default=30.0, gt=0, le=600)


class IngestLimits(StrictModel):
    """What a single batch may contain; anything beyond is rejected as INVALID_ARGUMENT."""

    max_records_per_batch: int = Field(default=5000, ge=1)
    max_samples_per_block: int = Field(default=65536, ge=1)
    max_clock_skew_s: float = Field(default=86400.0, gt=0)


class CloudSettings(LayeredSettings, env_prefix="CARDIOGATE_CLOUD__"):
    listen: str = "127.0.0.1:50051"
    database: Path = Path("cloud.sqlite3")
    kafka: KafkaSettings = KafkaSettings()
    limits: IngestLimits = IngestLimits()


def load_cloud_settings(path: Path | None, **overrides: object) -> CloudSettings:
    return load_settings(CloudSettings, path, **overrides)
