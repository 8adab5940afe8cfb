"""``cardiogate models retrain``: the cloud side of the gateway risk student's retrain loop.

The loop itself (training, the champion/challenger comparison, the refusal rule, the export) is
``cardiogate.models.haim.retrain``; the models package never imports the cloud, so this module hands it
the cloud database: the clinicians' alarm labels (``alarm_labels``, as the API's ``labelAlarm`` writes
them), the registry's champion and versions, and the signed publication (the same
``ModelRegistry.publish`` that ``cardiogate models publish`` calls). Needs the [learn] and [cloud] extras.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url

from cardiogate.cloud.db import alarm_labels, alarms_current
from cardiogate.cloud.registry.artifacts import FilesystemArtifactStore
from cardiogate.cloud.registry.cli import _REQUIRED as REQUIRED_MANIFEST_FIELDS
from cardiogate.cloud.registry.migrate import open_database
from cardiogate.cloud.registry.models import CHAMPION, ModelRegistry, RegistryError
from cardiogate.cloud.registry.signing import Signer, verify_envelope
from cardiogate.core.artifacts import MANIFEST_FORMAT
from cardiogate.core.settings import ConfigError
from cardiogate.models.haim.retrain import Champion, ClinicianLabel, build_parser, run


def read_labels(engine: Engine) -> list[ClinicianLabel]:
    """Every clinician's current true/false answer, with the alarm's condition where the alarm is known."""
    query = (select(alarm_labels.c.alarm_id, alarm_labels.c.username, alarm_labels.c.is_true, alarm_labels.c.time_ns,
                    alarms_current.c.condition)
             .select_from(alarm_labels.outerjoin(alarms_current, alarms_current.c.alarm_id == alarm_labels.c.alarm_id))
             .order_by(alarm_labels.c.time_ns, alarm_labels.c.alarm_id, alarm_labels.c.username))
    with engine.connect() as conn:
        return [ClinicianLabel(r.alarm_id, r.username, bool(r.is_true), int(r.time_ns), r.condition)
                for r in conn.execute(query)]


class CloudRetrainRegistry:
    """:class:`~cardiogate.models.haim.retrain.RetrainRegistry` over the cloud database and artifact store."""

    def __init__(self, ns: argparse.Namespace) -> None:
        from cardiogate.cloud.settings import load_cloud_settings

        cloud = load_cloud_settings(ns.cloud_config)  # the file, under CARDIOGATE_CLOUD__*, as `models publish`
        self.hint = "".join(f" {flag} {value}" for flag, value in (
            ("--config", ns.cloud_config), ("--database-url", ns.db and make_url(ns.db).render_as_string()),
            ("--artifact-root", ns.artifact_root), ("--key", ns.key)) if value)
        self.engine = open_database(ns.db or cloud.db_url)
        store = FilesystemArtifactStore(ns.artifact_root or cloud.models.artifact_root)
        self.models = ModelRegistry(self.engine, store)
        self.key_path: Path | None = ns.key or cloud.models.signing_key
        self.actor: str = ns.actor

    def _signer(self) -> Signer | None:
        if self.key_path is not None and self.key_path.is_file():
            return Signer.load(self.key_path)
        return None

    def check_can_publish(self) -> None:
        if self._signer() is None:
            raise ConfigError(f"no signing key at {self.key_path}: create one with `cardiogate models keygen`, "
                              "or pass --dry-run")

    def labels(self) -> list[ClinicianLabel]:
        return read_labels(self.engine)

    def newest_version(self, name: str) -> str | None:
        newest = self.models.newest(name)
        return newest.version if newest is not None else None

    def champion(self, name: str, into: Path) -> Champion | None:
        version = self.models.alias(name, CHAMPION)
        if version is None:
            return None
        record = self.models.require(name, version)
        envelope = json.loads(record.manifest)
        body: dict[str, Any] = envelope["body"]
        data = self.models.store.read(record.artifact_key, 0, record.size_bytes)
        if hashlib.sha256(data).hexdigest() != record.sha256:
            raise RegistryError(f"{name} {version}: the stored artifact does not match its sha256")
        into.mkdir(parents=True, exist_ok=True)
        path = into / Path(str(body.get("artifact") or f"{name}-{version}.onnx")).name
        path.write_bytes(data)
        signer = self._signer()
        if signer is not None and signer.key_id == record.key_id:
            verify_envelope(record.manifest, MANIFEST_FORMAT, [signer.public_key])  # ValueError if it does not
            signature = f"signature verified, key {record.key_id}"
        else:
            signature = f"signed by key {record.key_id}, not verified here (not this job's key); sha256 checked"
        return Champion(version, path, body, signature)

    def publish(self, artifact: Path, manifest: dict[str, Any], model_card: str) -> dict[str, Any]:
        signer = self._signer()
        if signer is None:
            raise ConfigError(f"no signing key at {self.key_path}")
        extra = {k: v for k, v in manifest.items() if k not in REQUIRED_MANIFEST_FIELDS}
        record = self.models.publish(
            artifact, signer=signer, name=str(manifest["name"]), version=str(manifest["version"]),
            task=str(manifest["task"]), input_spec=dict(manifest["input"]),
            min_gateway_version=str(manifest["min_gateway_version"]),
            training_data_hash=str(manifest["training_data_hash"]), metrics=dict(manifest["metrics"]),
            code_version=str(manifest.get("lineage", {}).get("code_version", "")), model_card=model_card,
            extra=extra, actor=self.actor)
        verify_envelope(record.manifest, MANIFEST_FORMAT, [signer.public_key])
        return {"name": record.name, "version": record.version, "task": record.task, "sha256": record.sha256,
                "size_bytes": record.size_bytes, "key_id": record.key_id, "parent_version": record.parent_version,
                "artifact_key": record.artifact_key}

    def rollout_hint(self) -> str:
        return self.hint

    def close(self) -> None:
        self.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 published (or a dry run that passed), 3 refused, 2 bad input, 1 any other failure."""
    ns = build_parser().parse_args(argv)
    try:
        registry = CloudRetrainRegistry(ns)
    except ConfigError as exc:
        print(f"cardiogate models retrain: {exc}", file=sys.stderr)
        return 2
    try:
        return run(ns, registry)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"cardiogate models retrain: {exc}", file=sys.stderr)
        return 2
    except (RegistryError, ValueError) as exc:
        print(f"cardiogate models retrain: {exc}", file=sys.stderr)
        return 1
    finally:
        registry.close()


if __name__ == "__main__":
    sys.exit(main())
