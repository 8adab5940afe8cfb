"""``cardiogate models ...``: publish, promote, roll out and inspect models from a shell.

The same registry and controller calls the gRPC service and a dashboard use; this module
only parses arguments and prints. ``main(argv)`` returns a process exit code.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from cardiogate.cloud.registry.artifacts import FilesystemArtifactStore
from cardiogate.cloud.registry.fleet import FleetRegistry
from cardiogate.cloud.registry.migrate import open_database
from cardiogate.cloud.registry.models import CHAMPION, ModelRegistry, RegistryError
from cardiogate.cloud.registry.signing import Signer, trusted_keys_document
from cardiogate.cloud.rollout.controller import RolloutController, RolloutError, RolloutStatus
from cardiogate.cloud.rollout.plan import Gates, PlanError, RolloutPlan
from cardiogate.core.settings import ConfigError

_REQUIRED = ("name", "version", "task", "input", "sha256", "size_bytes", "min_gateway_version", "training_data_hash",
             "metrics", "artifact")
_FORMATS = {".onnx": "onnx", ".tflite": "tflite"}


def _json_arg(text: str) -> Any:
    """JSON given inline or as ``@file``."""
    return json.loads(Path(text[1:]).read_text(encoding="utf-8") if text.startswith("@") else text)


def _add_global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("-c", "--config", type=Path, default=default,
                        help="cloud TOML (database and [models] settings; default: CARDIOGATE_CLOUD__* variables)")
    parser.add_argument("--database-url", default=default, help="SQLAlchemy URL (overrides the config)")
    parser.add_argument("--artifact-root", type=Path, default=default,
                        help="filesystem artifact store (overrides the config)")
    parser.add_argument("--key", type=Path, default=default, help="Ed25519 signing key (overrides models.signing_key)")
    parser.add_argument("--actor", default=default, help="who is acting, for the audit history (default: $USER)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cardiogate models", description="Model registry and staged rollouts.")
    _add_global_options(p, None)
    # The same options after the command too (`cardiogate models status ID --config cloud.toml`): `cardiogate
    # models ACTION ...` hands everything after ACTION over, so they could not come first there. SUPPRESS keeps
    # a subcommand from resetting what was given before it.
    shared = argparse.ArgumentParser(add_help=False)
    _add_global_options(shared, argparse.SUPPRESS)
    common = [shared]
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    k = sub.add_parser("keygen", parents=common,
                       help="create a signing key pair; prints its id and the gateways' trusted-keys JSON")
    k.add_argument("out", type=Path, help="private key file (the public key goes to OUT.pub)")

    t = sub.add_parser("trusted-keys", parents=common,
                       help="print a gateway trusted-keys JSON for these public/private keys")
    t.add_argument("keys", type=Path, nargs="+")

    pub = sub.add_parser("publish", parents=common, help="sign and register an artifact")
    pub.add_argument("artifact", type=Path)
    pub.add_argument("--name", required=True, help="model line, e.g. rhythm")
    pub.add_argument("--version", help="default: the version in the artifact's .json manifest")
    pub.add_argument("--task", help="default: the manifest's task")
    pub.add_argument("--manifest", type=Path, help="base manifest (default: ARTIFACT.json if present)")
    pub.add_argument("--format", dest="fmt", help="runtime format: onnx, tflite, rule (default: from the file)")
    pub.add_argument("--input", type=_json_arg, help="input spec JSON (or @file)")
    pub.add_argument("--metrics", type=_json_arg, help="validation metrics JSON (or @file)")
    pub.add_argument("--min-gateway-version")
    pub.add_argument("--training-data-hash")
    pub.add_argument("--code-version", default="")
    pub.add_argument("--model-card", type=Path, help="markdown model card to keep with the version")
    pub.add_argument("--parent", help="lineage parent (default: the current champion)")

    pro = sub.add_parser("promote", parents=common,
                         help="point an alias (default: champion) at a version, outside any rollout")
    pro.add_argument("name")
    pro.add_argument("version")
    pro.add_argument("--alias", default=CHAMPION)
    pro.add_argument("--reason", default="")

    ls = sub.add_parser("list", parents=common, help="versions and aliases")
    ls.add_argument("name", nargs="?")

    ro = sub.add_parser("rollout", parents=common, help="start, pause, resume, promote or abort a rollout")
    rsub = ro.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = rsub.add_parser("start", parents=common, help="stage a version out to a cohort")
    start.add_argument("name")
    start.add_argument("version")
    start.add_argument("--plan", type=_json_arg, help="whole plan as JSON (or @file); flags below override it")
    start.add_argument("--site", action="append", default=None, help="cohort: gateways at this site (repeatable)")
    start.add_argument("--tag", action="append", default=None, help="cohort: gateways with this tag (repeatable)")
    start.add_argument("--canary", action="append", default=None, help="gateway to include first (repeatable)")
    start.add_argument("--canary-share", type=float)
    start.add_argument("--growth", type=float)
    start.add_argument("--min-devices", type=int, dest="min_devices_per_stage")
    start.add_argument("--bake-s", type=float)
    start.add_argument("--stale-after-s", type=float)
    for gate in ("min_agreement", "max_latency_p99_ms", "max_latency_ratio", "latency_slack_ms",
                 "max_alarm_rate_increase"):
        start.add_argument(f"--{gate.replace('_', '-')}", type=float, dest=f"gate_{gate}")
    for gate in ("min_windows", "max_load_failures", "max_crashes", "max_integrity_refusals"):
        start.add_argument(f"--{gate.replace('_', '-')}", type=int, dest=f"gate_{gate}")
    for action in ("pause", "resume", "promote", "abort"):
        a = rsub.add_parser(action, parents=common, help=f"{action} a rollout")
        a.add_argument("rollout_id")
        a.add_argument("--reason", default="")

    st = sub.add_parser("status", parents=common,
                        help="rollout state and history (all recent rollouts without an id)")
    st.add_argument("rollout_id", nargs="?")
    st.add_argument("--model")
    st.add_argument("--json", action="store_true")
    return p


class _Context:
    def __init__(self, ns: argparse.Namespace) -> None:
        from cardiogate.cloud.settings import load_cloud_settings

        # The file if given, always under the CARDIOGATE_CLOUD__* variables, as for `cardiogate cloud run`:
        # a shell with the cloud's environment manages the cloud's registry without repeating its paths.
        cloud = load_cloud_settings(ns.config)
        url, settings = cloud.db_url, cloud.models
        self.url = ns.database_url or url
        self.artifact_root = ns.artifact_root or settings.artifact_root
        self.key_path = ns.key or settings.signing_key
        self.actor = ns.actor or getpass.getuser()
        self._engine = open_database(self.url)
        self.fleet = FleetRegistry(self._engine)
        self.models = ModelRegistry(self._engine, FilesystemArtifactStore(self.artifact_root))
        self.controller = RolloutController(self._engine, self.models, self.fleet, self.signer(required=False))

    def signer(self, required: bool = True) -> Signer | None:
        if self.key_path is not None and self.key_path.is_file():
            return Signer.load(self.key_path)
        if required:
            raise ConfigError(f"no signing key at {self.key_path}: create one with `cardiogate models keygen`")
        return None

    def close(self) -> None:
        self._engine.dispose()


def _publish(ctx: _Context, ns: argparse.Namespace) -> int:
    artifact: Path = ns.artifact
    if not artifact.is_file():
        raise ConfigError(f"no artifact at {artifact}")
    base_path = ns.manifest or artifact.with_name(artifact.name + ".json")
    base: dict[str, Any] = json.loads(base_path.read_text(encoding="utf-8")) if base_path.is_file() else {}
    version = ns.version or base.get("version")
    task = ns.task or base.get("task")
    if not version or not task:
        raise ConfigError("give --version and --task (or a manifest beside the artifact that has them)")
    extra = {k: v for k, v in base.items() if k not in _REQUIRED}
    extra["format"] = ns.fmt or base.get("format") or _FORMATS.get(artifact.suffix, "rule")
    signer = ctx.signer()
    assert signer is not None
    record = ctx.models.publish(
        artifact, signer=signer, name=ns.name, version=str(version), task=str(task),
        input_spec=ns.input if ns.input is not None else dict(base.get("input", {})),
        min_gateway_version=ns.min_gateway_version or str(base.get("min_gateway_version", "0.1.0")),
        training_data_hash=ns.training_data_hash or str(base.get("training_data_hash", "")),
        metrics=ns.metrics if ns.metrics is not None else dict(base.get("metrics", {})),
        code_version=ns.code_version, model_card=ns.model_card.read_text(encoding="utf-8") if ns.model_card else "",
        parent_version=ns.parent, extra=extra, actor=ctx.actor)
    print(f"published {record.name} {record.version}: sha256 {record.sha256}, {record.size_bytes} bytes, "
          f"signed by key {record.key_id}, parent {record.parent_version or '-'}")
    return 0


def _plan(ns: argparse.Namespace) -> RolloutPlan:
    doc: dict[str, Any] = dict(ns.plan or {})
    gates: dict[str, Any] = dict(doc.pop("gates", {}))
    for name in ("canary_share", "growth", "min_devices_per_stage", "bake_s", "stale_after_s"):
        if getattr(ns, name) is not None:
            doc[name] = getattr(ns, name)
    for name, flag in (("sites", ns.site), ("tags", ns.tag), ("canary", ns.canary)):
        if flag is not None:
            doc[name] = flag
    for name in Gates.__dataclass_fields__:
        value = getattr(ns, f"gate_{name}", None)
        if value is not None:
            gates[name] = value
    doc["gates"] = gates
    return RolloutPlan.from_dict(doc)


def _time(ns: int | None) -> str:
    if ns is None:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def print_status(status: RolloutStatus, ctx: _Context) -> None:
    s = status
    stage = "all stages passed" if s.stage >= len(s.sizes) else f"stage {s.stage + 1}/{len(s.sizes)}"
    print(f"{s.rollout_id}  {s.model} {s.candidate_version} (baseline {s.baseline_version or '-'})  {s.state}  "
          f"{stage}  sizes {list(s.sizes)}  started {_time(s.created_ns)}  finished {_time(s.finished_ns)}")
    print(f"  decision: {s.decision}")
    print(f"  {'gateway':<20} {'stage':>5} {'status':<11} {'live':<9} {'windows':>7} {'agree':>6} {'p99 ms':>7} "
          f"{'alarms c/l':>11} {'alarm':>5}  refusal")
    for m, detail in s.members:
        agree = f"{m.agreements / m.windows:.0%}" if m.windows else "-"
        refusal = f"{m.refusal_code}: {detail}" if m.refusal_code else ""
        print(f"  {m.gateway_id:<20} {m.stage + 1:>5} {m.status:<11} {m.active_version or '-':<9} {m.windows:>7} "
              f"{agree:>6} {m.candidate_p99_ms:>7.1f} {m.candidate_alarm_rate:>5.0%}/{m.live_alarm_rate:<5.0%} "
              f"{'yes' if m.alarm_active else '':>5}  {refusal}")
    print("  history:")
    for e in ctx.controller.history(s.rollout_id):
        who = f" {e.gateway_id}" if e.gateway_id else ""
        print(f"    {_time(e.time_ns)} {e.kind}{who} by {e.actor or '-'}: {json.dumps(e.detail, sort_keys=True)}")


def _run(ctx: _Context, ns: argparse.Namespace) -> int:
    if ns.command == "publish":
        return _publish(ctx, ns)
    if ns.command == "promote":
        ctx.models.set_alias(ns.name, ns.alias, ns.version, actor=ctx.actor, reason=ns.reason or "promoted by CLI")
        print(f"{ns.name}: {ns.alias} -> {ns.version}")
        return 0
    if ns.command == "list":
        for name in [ns.name] if ns.name else ctx.models.names():
            aliases = ctx.models.aliases(name)
            by_version: dict[str, list[str]] = {}
            for alias, version in aliases.items():
                by_version.setdefault(version, []).append(alias)
            for v in ctx.models.versions(name):
                tags = f"  [{', '.join(sorted(by_version.get(v.version, [])))}]" if v.version in by_version else ""
                print(f"{name} {v.version}  task {v.task}  {v.size_bytes} B  sha256 {v.sha256[:16]}  key {v.key_id}  "
                      f"parent {v.parent_version or '-'}  {_time(v.created_ns)}{tags}")
        return 0
    if ns.command == "rollout":
        c = ctx.controller
        if ns.action == "start":
            rollout_id = c.start(ns.name, ns.version, _plan(ns), actor=ctx.actor)
            print_status(c.status(rollout_id), ctx)
            return 0
        getattr(c, ns.action)(ns.rollout_id, actor=ctx.actor, reason=ns.reason)
        print(f"{ns.rollout_id}: {c.status(ns.rollout_id).state}")
        return 0
    if ns.command == "status":
        found = ([ctx.controller.status(ns.rollout_id)] if ns.rollout_id
                 else ctx.controller.list_rollouts(ns.model)[:20])
        if ns.json:
            print(json.dumps([dict(s.to_dict(), history=[e.__dict__ for e in ctx.controller.history(s.rollout_id)])
                              for s in found], indent=2, default=str))
        else:
            for s in found:
                print_status(s, ctx)
            if not found:
                print("no rollouts")
        return 0
    raise AssertionError(ns.command)


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    if ns.command == "keygen":
        if ns.out.exists():
            print(f"error: {ns.out} exists; a signing key is never overwritten", file=sys.stderr)
            return 1
        signer = Signer.generate(ns.out)
        print(f"key id {signer.key_id}: private key {ns.out} (keep it secret), public key {ns.out}.pub")
        print(json.dumps(trusted_keys_document([signer.public_key]), indent=2))
        return 0
    if ns.command == "trusted-keys":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

        keys: list[Ed25519PublicKey] = []
        for path in ns.keys:
            data = path.read_bytes()
            key: Any = (serialization.load_pem_private_key(data, password=None) if b"PRIVATE" in data
                        else serialization.load_pem_public_key(data))
            key = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
            if not isinstance(key, Ed25519PublicKey):
                print(f"{path}: not an Ed25519 key", file=sys.stderr)
                return 2
            keys.append(key)
        print(json.dumps(trusted_keys_document(keys), indent=2))
        return 0
    try:
        ctx = _Context(ns)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return _run(ctx, ns)
    except (RegistryError, RolloutError, PlanError, ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
