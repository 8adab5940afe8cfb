"""Gateway settings: one TOML file, overridable by CARDIOGATE_GATEWAY__* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, StringConstraints, field_validator, model_validator

from cardiogate.core.metrics import MetricsSettings
from cardiogate.core.settings import LayeredSettings, StrictModel, load_settings
from cardiogate.core.tracing import TracingSettings
from cardiogate.edge.alarm_engine.model import Condition
from cardiogate.edge.codecs.address import BleAddress
from cardiogate.edge.updater.config import UpdaterSettings

Pseudonym = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{2,63}$")]
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Priority = Literal["low", "medium", "high"]


class PairedDevice(StrictModel):
    """A wearable the gateway reads, and the patient pseudonym its data is filed under."""

    address: BleAddress
    patient: Pseudonym
    name: str | None = Field(default=None, max_length=64)
    adapter: Identifier | None = Field(default=None, description="pin to one adapter; default: any with a free slot")


class AdapterSettings(StrictModel):
    """One radio. Without ``bumble_transport`` it is the BlueZ adapter ``name`` (production);
    with one it is a bumble host on that HCI transport (a USB dongle, or the simulator's
    virtual radio, e.g. ``tcp-client:127.0.0.1:18900``)."""

    name: Identifier = "hci0"
    bumble_transport: str | None = None
    max_connections: int = Field(default=7, ge=1, le=64,
                                 description="links this controller holds at once (BlueZ adapters: about 7-10)")


class BleSettings(StrictModel):
    """Radio access, connection policy and device-health thresholds."""

    adapters: list[AdapterSettings] = Field(default_factory=lambda: [AdapterSettings()], min_length=1)
    connect_timeout_s: float = Field(default=15.0, gt=0, le=120)
    scan_timeout_s: float = Field(default=10.0, gt=0, le=300)
    sighting_max_age_s: float = Field(default=10.0, gt=0, le=300,
                                      description="connect only to a device advertised this recently (it may be gone)")
    backoff_initial_s: float = Field(default=0.5, gt=0, le=60)
    backoff_max_s: float = Field(default=30.0, gt=0, le=600)
    device_lost_after_s: float = Field(default=30.0, gt=0, le=3600,
                                       description="raise the device-lost technical alarm after this long unreachable")
    battery_low_percent: int = Field(default=15, ge=1, le=50)
    health_interval_s: float = Field(default=30.0, gt=0, le=3600,
                                     description="how often device health goes to MQTT (retained) and the cloud")

    @field_validator("adapters")
    @classmethod
    def _unique_names(cls, adapters: list[AdapterSettings]) -> list[AdapterSettings]:
        names = [a.name for a in adapters]
        if len(set(names)) != len(names):
            raise ValueError("adapter names must be unique")
        return adapters


class MqttTlsSettings(StrictModel):
    """TLS to the local broker: the site MQTT CA (``cardiogate gateway mqtt-setup`` writes it), and a
    client certificate where the broker asks for one."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> MqttTlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class MqttSettings(StrictModel):
    """The local broker alarms and vitals are published to, and who the gateway is on it (docs/security.md).

    With ``identities_file`` the command plane is locked: commands are obeyed only on per-identity
    topics (``.../commands/<identity>``) and judged by that identity's role; the old topics without
    an identity are refused. Without it, commands are judged by their payload (local tests only).
    """

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    topic_prefix: Identifier = "cardiogate"
    tls: MqttTlsSettings | None = None
    username: Identifier | None = Field(default=None, description="the gateway's broker identity (its gateway_id)")
    password: SecretStr | None = Field(default=None, description="better CARDIOGATE_GATEWAY__MQTT__PASSWORD or "
                                                                 "password_file than clear text in the TOML")
    password_file: Path | None = Field(default=None, description="a file holding only the password (mode 0600)")
    identities_file: Path | None = Field(default=None, description="identity -> role, from mqtt-setup")

    @model_validator(mode="after")
    def _credentials(self) -> MqttSettings:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        if (self.password is not None or self.password_file is not None) and self.username is None:
            raise ValueError("a password needs a username")
        if (self.username is not None or self.tls is not None) and self.identities_file is None:
            raise ValueError("a secured broker needs identities_file (from mqtt-setup), so that commands are "
                             "judged by the identity that sent them")
        return self

    def read_password(self) -> str | None:
        """The password, from the environment/TOML or the file (OSError when the file cannot be read)."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return None


class UplinkSettings(StrictModel):
    """gRPC uplink to the cloud ingest: batching, compression, backoff and live-first pacing (docs/outbox.md)."""

    target: str = "127.0.0.1:50051"
    tls: bool = Field(default=True, description="mTLS with the identity from `cardiogate gateway enroll`; "
                                                 "false only against a local demo ingest without identity")
    identity_dir: Path = Field(default=Path("identity"), description="gateway.key, gateway.crt and ca.crt")
    server_name: str | None = Field(default=None, description="expected name in the ingest's certificate, "
                                                              "when it differs from the target host")
    batch_max_records: int = Field(default=200, ge=1, le=5000)
    batch_max_bytes: int = Field(default=256 * 1024, ge=1024, le=2 * 1024 * 1024,
                                 description="record bytes per batch (one larger record still goes alone)")
    batch_max_age_s: float = Field(default=0.5, gt=0, le=60,
                                   description="a batch that is not full waits at most this long; alarms never wait")
    max_in_flight: int = Field(default=4, ge=1, le=64)
    backoff_initial_s: float = Field(default=0.5, gt=0, le=60)
    backoff_max_s: float = Field(default=30.0, gt=0, le=600)
    compression: Literal["gzip", "deflate", "none"] = "gzip"
    max_bytes_per_s: int = Field(default=0, ge=0,
                                 description="overall cap in record bytes/s, 0 = unlimited; alarms may exceed it")
    backlog_after_s: float = Field(default=5.0, gt=0, le=3600,
                                   description="a raw ECG or feature record unsent this long is backlog")
    backlog_max_bytes_per_s: int = Field(default=256 * 1024, ge=0, description="backlog drain rate, 0 = unlimited")
    backlog_max_records_per_s: int = Field(default=0, ge=0, description="backlog drain rate, 0 = unlimited")


class OutboxSettings(StrictModel):
    """The durable on-disk queue between the radio and the uplink: lanes, disk budget, durability (docs/outbox.md)."""

    path: Path = Path("gateway-outbox.sqlite3")
    max_bytes: int = Field(default=256 * 1024 * 1024, ge=64 * 1024,
                           description="disk budget for queued records; beyond it the oldest raw ECG is evicted")
    evict_headroom: float = Field(default=0.05, gt=0, le=0.5,
                                  description="an eviction frees this fraction of the budget more than needed, "
                                              "so gaps come in chunks rather than one per block")
    group_commit_s: float = Field(default=1.0, ge=0, le=60,
                                  description="raw ECG commits are fsynced at most this long after they commit "
                                              "(0: every commit); alarms and vitals are fsynced at every commit")
    commit_linger_s: float = Field(default=0.05, ge=0, le=1,
                                   description="a routine append waits up to this long for others to join its "
                                               "transaction (fewer commits and fsyncs); alarms never wait")


# The rhythm model shipped with this checkout (models/artifacts); the model updater replaces it in the field.
SHIPPED_RHYTHM_MODEL = Path(__file__).resolve().parents[1] / "models" / "artifacts" / "rhythm" / "rhythm-v1.int8.onnx"


# The gateway risk student shipped with this checkout (models/artifacts/risk, docs/learning.md).
SHIPPED_RISK_MODEL = (Path(__file__).resolve().parents[1] / "models" / "artifacts" / "risk"
                      / "risk-student-1.0.0.int8.onnx")


class AnalysisSettings(StrictModel):
    """On-gateway ECG analysis: streaming DSP always; the rhythm model when an artifact is configured."""

    enabled: bool = True
    rhythm_model: Path | None = Field(default=SHIPPED_RHYTHM_MODEL,
                                      description="a .onnx or .tflite artifact with its manifest beside it")
    rhythm_every_s: float = Field(default=10.0, ge=1, le=600)
    rhythm_window_s: float = Field(default=30.0, ge=5, le=120)
    mains_hz: float | None = Field(default=50.0, description="notch filter for mains hum (50 or 60 Hz); none: off")
    poor_signal_below: float = Field(default=0.4, ge=0, le=1, description="signal quality index under which the "
                                                                          "poor-signal technical alarm counts")
    vt_rejection: bool = Field(default=True, description="check each VT run against the patient's sinus beat, a "
                               "second lead and the pulse; a run the evidence argues against raises the 'VT "
                               "unconfirmed' advisory instead of the VT alarm (docs/alarms.md)")
    vt_one_lead_pulse: bool = Field(default=True, description="with one ECG lead (a chest strap), the same "
                                    "patient's PPG pulse is the VT cross-check: regular pulses doubt the run, "
                                    "paused or collapsed ones corroborate it (docs/alarms.md)")
    risk_model: Path | None = Field(default=SHIPPED_RISK_MODEL, description="the risk student (.int8.onnx with its "
                                    "manifest); scored per patient beside NEWS2 as an advisory, none: off")
    risk_every_s: float = Field(default=60.0, ge=10, le=3600, description="score each patient at most this often "
                                "(device time): the risk window")

    @field_validator("rhythm_model", "risk_model", mode="before")
    @classmethod
    def _empty_is_off(cls, value: object) -> object:
        """TOML has no null: an empty string turns a model off."""
        return None if isinstance(value, str) and not value.strip() else value
    vt_pulse_wait_s: float = Field(default=1.0, ge=0, le=5, description="one ECG lead with a pulse: when a run "
                                   "reaches the VT limit before the pulse covering it has arrived, hold the "
                                   "decision at most this long (device time from that beat), then confirm; "
                                   "0: no wait (docs/alarms.md)")


class StateSettings(StrictModel):
    """Small durable gateway state: the runtime pairing registry."""

    pairings_path: Path = Path("gateway-pairings.json")


class ConditionOverride(StrictModel):
    """Changes to one alarm condition's defaults (docs/alarms.md): tier limits, hysteresis, onset delay."""

    low: float | None = None
    medium: float | None = None
    high: float | None = None
    hysteresis: float | None = Field(default=None, ge=0)
    onset_delay_s: float | None = Field(default=None, ge=0, le=600)


class AlarmSettings(StrictModel):
    """Alarm limits: the engine's defaults (bedside-monitor presets), changed gateway-wide or per patient."""

    conditions: dict[Condition, ConditionOverride] = Field(default_factory=dict)
    patients: dict[Pseudonym, dict[Condition, ConditionOverride]] = Field(default_factory=dict)
    max_silence_s: float = Field(default=300.0, gt=0, le=3600)
    default_silence_s: float = Field(default=120.0, gt=0, le=3600)
    risk_priority: Literal["low", "medium"] = Field(default="low", description="the priority of the risk advisory; "
                                                    "never high: a model's score is not an IEC alarm condition")


class GatewaySettings(LayeredSettings, env_prefix="CARDIOGATE_GATEWAY__"):
    """Everything the gateway daemon needs."""

    gateway_id: Identifier = "gateway-1"
    site: Identifier = "site-1"
    devices: list[PairedDevice] = Field(default_factory=list)
    ble: BleSettings = BleSettings()
    mqtt: MqttSettings = MqttSettings()
    uplink: UplinkSettings = UplinkSettings()
    outbox: OutboxSettings = OutboxSettings()
    state: StateSettings = StateSettings()
    analysis: AnalysisSettings = AnalysisSettings()
    updater: UpdaterSettings = UpdaterSettings()
    alarms: AlarmSettings = AlarmSettings()
    metrics: MetricsSettings = MetricsSettings()
    tracing: TracingSettings = TracingSettings()
    ecg_block_samples: int = Field(default=250, ge=16, le=4096)


def load_gateway_settings(path: Path | None, **overrides: object) -> GatewaySettings:
    """Settings from a TOML file and the environment (ConfigError on bad input)."""
    return load_settings(GatewaySettings, path, **overrides)
