"""The one command line: ``cardiogate <subcommand>``.

Subcommands import their component lazily, so a gateway-only install never loads
cloud or simulator code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cardiogate import __version__
from cardiogate.app.care_cli import add_care_parser
from cardiogate.app.cloud_cli import add_cloud_read_parsers
from cardiogate.app.evaluation import add_eval_parser
from cardiogate.app.gateway_service import add_arguments as add_service_arguments
from cardiogate.app.verify import add_arguments as add_verify_arguments
from cardiogate.core.logs import setup_logging
from cardiogate.core.settings import ConfigError

if TYPE_CHECKING:
    from cardiogate.sim.scenario import SimSettings


def _cmd_demo(ns: argparse.Namespace) -> int:
    from cardiogate.app.demo import run_demo

    setup_logging(ns.log_level, ns.log_format, "demo")
    try:
        return asyncio.run(run_demo(ns.duration, ns.patients, ns.workdir, ns.keep, ns.embedded_mqtt))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("demo: stopped", flush=True)
        return 130
    except (RuntimeError, TimeoutError) as exc:
        print(f"cardiogate demo: {exc}", file=sys.stderr)
        return 1


def _cmd_gateway_run(ns: argparse.Namespace) -> int:
    from cardiogate.edge.gateway import run_gateway
    from cardiogate.edge.settings import load_gateway_settings

    settings = load_gateway_settings(ns.config)
    setup_logging(ns.log_level, ns.log_format, "gateway")
    asyncio.run(run_gateway(settings))
    return 0


def _cmd_gateway_install_service(ns: argparse.Namespace) -> int:
    from cardiogate.app.gateway_service import run

    return run(ns)


def _cmd_gateway_enroll(ns: argparse.Namespace) -> int:
    from cardiogate.edge.enrollment import EnrollmentError, enroll
    from cardiogate.edge.settings import load_gateway_settings

    settings = load_gateway_settings(ns.config)
    setup_logging(ns.log_level, ns.log_format, "gateway")
    try:
        paths = enroll(ns.target, settings.gateway_id, ns.token, settings.uplink.identity_dir, ns.ca)
    except EnrollmentError as exc:
        print(f"cardiogate: enrollment failed: {exc}", file=sys.stderr)
        return 1
    print(f"enrolled {settings.gateway_id}: identity in {paths.cert.parent}")
    return 0


def _cmd_gateway_mqtt_setup(ns: argparse.Namespace) -> int:
    from cardiogate.edge.mqtt_setup import MqttSetup, parse_identity_args, summary, write_setup

    try:
        plan = MqttSetup(site=ns.site, identities=parse_identity_args(ns.identity), out=ns.out, prefix=ns.prefix,
                         bind=ns.bind, port=ns.port, hosts=tuple(ns.host), rotate=frozenset(ns.rotate),
                         rotate_all=ns.rotate_all, new_ca=ns.new_ca, run_as=ns.run_as)
        result = write_setup(plan)
    except (ValueError, OSError) as exc:
        print(f"cardiogate gateway mqtt-setup: {exc}", file=sys.stderr)
        return 2
    print(summary(plan, result))
    return 0


def _cmd_cloud_consume(ns: argparse.Namespace) -> int:
    from cardiogate.cloud.consumers import run_consumers
    from cardiogate.cloud.settings import load_cloud_settings

    settings = load_cloud_settings(ns.config)
    setup_logging(ns.log_level, ns.log_format, "consumers")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_consumers(settings))
    return 0


def _cmd_cloud_admin(ns: argparse.Namespace) -> int:
    from cardiogate.cloud.admin import main as admin_main

    setup_logging(ns.log_level, ns.log_format, "admin")
    return admin_main(list(ns.args))


_TRAINERS = {
    # action: (module with main(argv), the extra it needs)
    "train-edge": ("cardiogate.models.rhythm.train_edge", "models"),
    "distill-rhythm": ("cardiogate.models.rhythm.distill", "models"),
    "train-risk": ("cardiogate.models.haim.train", "learn"),
    "search-risk": ("cardiogate.models.haim.search", "learn"),
    # the loop is cardiogate.models.haim.retrain; its entry point is the cloud side, which reaches the registry
    "retrain": ("cardiogate.cloud.registry.retrain", "learn,cloud"),
}


def _cmd_models_train(ns: argparse.Namespace) -> int:
    """The training commands live in cardiogate.models and need an extra the gateway never installs."""
    module_name, extra = _TRAINERS[ns.action]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        print(f"cardiogate models {ns.action}: {exc}; install the {extra} extra: "
              f"pip install -c constraints.txt -e '.[{extra}]'", file=sys.stderr)
        return 2
    code: int = module.main(list(ns.args))
    return code


def _cmd_models_registry(ns: argparse.Namespace) -> int:
    from cardiogate.cloud.registry.cli import main as models_main

    setup_logging(ns.log_level, ns.log_format, "models")
    return models_main([ns.registry_action, *ns.args])


def _cmd_cloud_run(ns: argparse.Namespace) -> int:
    from cardiogate.cloud.server import run_cloud
    from cardiogate.cloud.settings import load_cloud_settings

    settings = load_cloud_settings(ns.config)
    setup_logging(ns.log_level, ns.log_format, "cloud")
    asyncio.run(run_cloud(settings))
    return 0


def sim_settings(ns: argparse.Namespace) -> SimSettings:
    """``sim run``'s settings: its flags (those given) over CARDIOGATE_SIM__* over the file."""
    from cardiogate.sim.scenario import demo_watches, load_sim_settings

    flags: dict[str, object] = {}
    if ns.watches is not None:
        flags["watches"] = [w.model_dump() for w in demo_watches(ns.watches)]
    if ns.listen is not None:
        flags["listen"] = ns.listen
    return load_sim_settings(ns.config, **flags)


def _cmd_sim_run(ns: argparse.Namespace) -> int:
    from cardiogate.sim.fleet import run_fleet

    settings = sim_settings(ns)
    if ns.processes < 1:
        raise ConfigError("--processes must be at least 1")
    setup_logging(ns.log_level, ns.log_format, "sim")
    run_fleet(settings, ns.processes, ns.log_level, ns.log_format)
    return 0


def _cmd_verify(ns: argparse.Namespace) -> int:
    from cardiogate.app.verify import run

    return run(ns)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cardiogate",
        description="Edge-first cardiac monitoring: BLE wearables -> on-device alarms -> durable uplink -> Kafka.")
    parser.add_argument("--version", action="version", version=f"cardiogate {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    parser.add_argument("--log-format", choices=["console", "json"], default="console",
                        help="log lines on stderr as key=value (console) or JSON")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run cloud + gateway + simulated patients locally with a live status",
                          description="Start tansu (Kafka), the cloud ingest, a virtual radio with simulated "
                                      "watches (one patient becomes tachycardic) and the gateway; print patients, "
                                      "heart rates, alarms and ECG samples delivered to Kafka. Runs its own locked "
                                      "MQTT broker (TLS, a password per identity, per-identity ACL, as `gateway "
                                      "mqtt-setup` writes): Mosquitto on a free port, or an embedded broker when "
                                      "Mosquitto is not installed. Ctrl-C stops everything cleanly.")
    demo.add_argument("--duration", type=float, default=60.0, help="seconds to run; 0 runs until Ctrl-C (default 60)")
    demo.add_argument("--patients", type=int, default=3, choices=range(1, 21), metavar="N",
                      help="simulated patients, 1-20 (default 3)")
    demo.add_argument("--workdir", type=Path, default=None, help="keep configs, logs and databases here")
    demo.add_argument("--keep", action="store_true", help="do not delete the temporary work directory")
    demo.add_argument("--embedded-mqtt", action="store_true",
                      help="use the embedded MQTT broker even when Mosquitto is installed")
    demo.set_defaults(func=_cmd_demo)

    gateway = sub.add_parser("gateway", help="the gateway daemon (BLE -> alarms on MQTT -> outbox -> gRPC uplink)")
    gsub = gateway.add_subparsers(dest="action", required=True, metavar="ACTION")
    grun = gsub.add_parser("run", help="run the gateway until SIGTERM/Ctrl-C",
                           description="Connect to the paired wearables, raise alarms on MQTT and forward every "
                                       "sample to the cloud. Settings: --config TOML, overridden by "
                                       "CARDIOGATE_GATEWAY__* environment variables.")
    grun.add_argument("--config", type=Path, default=None, help="gateway TOML settings file")
    grun.set_defaults(func=_cmd_gateway_run)
    genroll = gsub.add_parser("enroll", help="get this gateway's client certificate with a one-time token",
                              description="Create the gateway's private key (it never leaves this machine), send a "
                                          "certificate request with the token to the cloud's enrollment service, "
                                          "and store key, certificate and the cloud CA in uplink.identity_dir.")
    genroll.add_argument("--config", type=Path, default=None, help="gateway TOML settings file")
    genroll.add_argument("--target", required=True, help="HOST:PORT of the cloud enrollment service")
    genroll.add_argument("--token", required=True, help="one-time token from `cardiogate cloud admin token`")
    genroll.add_argument("--ca", type=Path, required=True, help="the cloud CA certificate (PEM), obtained out of band")
    genroll.set_defaults(func=_cmd_gateway_enroll)
    gservice = gsub.add_parser("install-service", help="write the hardened systemd unit (Raspberry Pi OS, Debian)",
                               description="Write cardiogate-gateway.service: Type=notify with a watchdog, a "
                                           "dedicated user in the bluetooth group, a read-only system but for "
                                           "/var/lib/STATE, no capabilities (BlueZ over D-Bus) unless --hci-raw, "
                                           "logs to journald. It refuses a config whose absolute paths the service "
                                           "could not write.")
    add_service_arguments(gservice)
    gservice.set_defaults(func=_cmd_gateway_install_service)
    gmqtt = gsub.add_parser("mqtt-setup", help="write a locked Mosquitto config: TLS, one identity per client, ACL",
                            description="Write mosquitto.conf (TLS only, no anonymous clients), the password file "
                                        "(PBKDF2-SHA512, Mosquitto's format), the ACL (each identity publishes only "
                                        "on its own topics), identities.json (identity -> role, read by the "
                                        "gateway), a site MQTT CA with the broker's certificate, and one 0600 "
                                        "password file per identity under OUT/credentials. Re-running with the "
                                        "same --out keeps the CA and existing passwords (rotate with --rotate). "
                                        "No secret is printed.")
    gmqtt.add_argument("--site", required=True, help="the site the broker serves (the gateway's site)")
    gmqtt.add_argument("--out", type=Path, required=True, help="directory for the broker's files")
    gmqtt.add_argument("--identity", action="append", default=[], metavar="NAME:ROLE", required=True,
                       help="an identity to create, repeatable; roles: gateway (named as its gateway_id), nurse "
                            "(acknowledge, silence), clinician (also set_limits), admin (pair, unpair), viewer")
    gmqtt.add_argument("--prefix", default="cardiogate", help="MQTT topic prefix (default cardiogate)")
    gmqtt.add_argument("--bind", default="127.0.0.1", help="listener address (default 127.0.0.1)")
    gmqtt.add_argument("--port", type=int, default=8883, help="listener port (default 8883)")
    gmqtt.add_argument("--host", action="append", default=[], help="extra name or address clients use for the "
                                                                    "broker (goes into its certificate)")
    gmqtt.add_argument("--rotate", action="append", default=[], metavar="NAME", help="issue a new password")
    gmqtt.add_argument("--rotate-all", action="store_true", help="issue new passwords for every identity")
    gmqtt.add_argument("--new-ca", action="store_true", help="replace the site MQTT CA (clients need the new ca.crt)")
    gmqtt.add_argument("--run-as", default=None, metavar="USER",
                       help="the user mosquitto runs as when started by root (it must own the files)")
    gmqtt.set_defaults(func=_cmd_gateway_mqtt_setup)

    cloud = sub.add_parser("cloud", help="the cloud tier (gRPC ingest -> Kafka)")
    csub = cloud.add_subparsers(dest="action", required=True, metavar="ACTION")
    crun = csub.add_parser("run", help="run the ingest server until SIGTERM/Ctrl-C",
                           description="Accept gateway uploads over gRPC, validate and de-duplicate them, write them "
                                       "to Kafka and ack. Settings: --config TOML, overridden by "
                                       "CARDIOGATE_CLOUD__* environment variables.")
    crun.add_argument("--config", type=Path, default=None, help="cloud TOML settings file")
    crun.set_defaults(func=_cmd_cloud_run)
    cconsume = csub.add_parser("consume", help="run the Kafka consumers that keep dashboard tables up to date",
                               description="Read vitals, alarms and device events from Kafka into the cloud database "
                                           "(latest vitals, alarm history and state, gaps), idempotently.")
    cconsume.add_argument("--config", type=Path, default=None, help="cloud TOML settings file")
    cconsume.set_defaults(func=_cmd_cloud_consume)
    cadmin = csub.add_parser("admin", help="PKI, enrollment tokens, assignments, revocation", add_help=False)
    cadmin.add_argument("args", nargs=argparse.REMAINDER, help="see `cardiogate cloud admin --help`")
    cadmin.set_defaults(func=_cmd_cloud_admin, passthrough=True)

    add_cloud_read_parsers(sub)  # `processor run`, `api run|schema|user add`
    add_care_parser(sub)  # `care build-food-table|import-labs`

    sim = sub.add_parser("sim", help="simulated wearables on a virtual BLE radio")
    ssub = sim.add_subparsers(dest="action", required=True, metavar="ACTION")
    srun = ssub.add_parser("run", help="run a fleet of simulated watches",
                           description="Start a virtual radio that a gateway attaches to (bumble transport "
                                       "tcp-client:HOST:PORT) and simulated ECG watches on it, from a scenario "
                                       "TOML file or --watches N. Flags given here beat CARDIOGATE_SIM__* "
                                       "environment variables, which beat the file.")
    srun.add_argument("--config", type=Path, default=None, help="scenario TOML file")
    srun.add_argument("--watches", type=int, default=None, help="ignore the file's watches; simulate N demo watches")
    srun.add_argument("--listen", default=None, help="HOST:PORT for the gateway-facing controller")
    srun.add_argument("--processes", type=int, default=1,
                      help="deal the watches over N processes, each with its own radio on PORT, PORT+1, ... "
                           "(the gateway attaches one adapter per process)")
    srun.set_defaults(func=_cmd_sim_run)

    models = sub.add_parser("models", help="train edge models; model registry and signed staged rollouts",
                            description="train-edge trains and exports the rhythm model (needs the [models] extra). "
                                        "The other actions work on the cloud's model registry: keygen, trusted-keys, "
                                        "publish, promote, list, rollout start|pause|resume|promote|abort, status "
                                        "(each has --help).")
    msub = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, helptext in (
            ("train-edge", "train the rhythm model on CinC 2017 and export ONNX fp32/int8 and TFLite"),
            ("distill-rhythm", "train a large rhythm teacher and distil the <= 300 KB int8 student (GPU if present)"),
            ("train-risk", "train the eICU mortality teacher (XGBoost) and gateway student (needs [learn])"),
            ("search-risk", "search the teacher's hyperparameters with Ray Tune + ASHA, locally or on a Ray cluster"),
            ("retrain", "retrain the gateway risk student, compare it with the champion, publish it only if "
                        "not worse (needs [learn,cloud])")):
        mtrain = msub.add_parser(action, add_help=False, help=helptext)
        mtrain.add_argument("args", nargs=argparse.REMAINDER, help=f"see `cardiogate models {action} --help`")
        mtrain.set_defaults(func=_cmd_models_train, passthrough=True)
    for action, helptext in (("keygen", "create an Ed25519 signing key"),
                             ("trusted-keys", "print the public keys gateways should trust"),
                             ("publish", "sign and register an artifact with its manifest"),
                             ("promote", "move an alias (champion, challenger) to a version"),
                             ("list", "list registered versions and aliases"),
                             ("rollout", "start, pause, resume, promote or abort a staged rollout"),
                             ("status", "rollout state and history")):
        mreg = msub.add_parser(action, add_help=False, help=helptext)
        mreg.add_argument("args", nargs=argparse.REMAINDER)
        mreg.set_defaults(func=_cmd_models_registry, registry_action=action, passthrough=True)

    verify = sub.add_parser("verify", help="reconcile the simulator's ground truth with Kafka: nothing lost, "
                                           "nothing doubled",
                            description="Compare every sample the simulated watches produced (their ground-truth "
                                        "logs) with what Kafka holds, per stream: samples missing, duplicated, "
                                        "reordered, and accounted for by exact gap records; each non-ECG stream "
                                        "by record sequence. Exit 0 when everything is accounted for, 1 when not, "
                                        "2 when an input cannot be read.")
    add_verify_arguments(verify)
    verify.set_defaults(func=_cmd_verify)

    add_eval_parser(sub)  # `eval rpeaks|rhythm|alarms`; heavy imports happen in the handlers
    return parser


def parse_command(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse a command line without running it (exits 2 with usage on a bad one, as argparse does).

    A pass-through command (``passthrough`` set) keeps its arguments in ``args`` for the parser
    of the component it hands them to.
    """
    parser = build_parser()
    # Commands that hand their arguments to another parser take them all: argparse's REMAINDER
    # leaves out options given before the first plain argument (`models status --json 3`), and
    # those come back here as unknown, ahead of the rest and in their original order.
    ns, unknown = parser.parse_known_args(argv)
    if unknown:
        if not getattr(ns, "passthrough", False):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        ns.args = [*unknown, *ns.args]
    return ns


def main(argv: list[str] | None = None) -> int:
    ns = parse_command(argv)
    try:
        code: int = ns.func(ns)
        return code
    except ConfigError as exc:
        print(f"cardiogate: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
