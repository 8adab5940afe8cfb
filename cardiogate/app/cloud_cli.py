"""``cardiogate processor run`` and ``cardiogate api run|schema|user add``: the cloud's read side.

The cloud components load lazily, inside the handlers, so the gateway's install never imports them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import sys
from pathlib import Path

from cardiogate.core.logs import setup_logging

PASSWORD_ENV = "CARDIOGATE_API_PASSWORD"


def _settings(ns: argparse.Namespace):  # type: ignore[no-untyped-def]
    from cardiogate.cloud.settings import load_cloud_settings

    return load_cloud_settings(ns.config)


def _cmd_processor_run(ns: argparse.Namespace) -> int:
    from cardiogate.cloud.processor import run_processor

    settings = _settings(ns)
    setup_logging(ns.log_level, ns.log_format, "processor")
    with contextlib.suppress(KeyboardInterrupt):
        run_processor(settings)
    return 0


def _cmd_api_run(ns: argparse.Namespace) -> int:
    from cardiogate.cloud.api.run import run_api

    settings = _settings(ns)
    setup_logging(ns.log_level, ns.log_format, "api")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_api(settings))
    return 0


def _cmd_api_schema(ns: argparse.Namespace) -> int:
    from cardiogate.cloud.api.run import schema_sdl

    print(schema_sdl())
    return 0


def read_password(ns: argparse.Namespace) -> str:
    """The new user's password: from stdin, from $CARDIOGATE_API_PASSWORD, or asked twice on a terminal.

    Never from a flag: a command line is visible to every user of the host."""
    if ns.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if not sys.stdin.isatty():
        raise ValueError(f"no password: use --password-stdin or set {PASSWORD_ENV}")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise ValueError("the passwords differ")
    return first


def _cmd_api_user_add(ns: argparse.Namespace) -> int:
    from cardiogate.cloud.api.run import add_api_user

    settings = _settings(ns)
    setup_logging(ns.log_level, ns.log_format, "api")
    try:
        user = add_api_user(settings, ns.username, read_password(ns), ns.role, list(ns.site))
    except ValueError as exc:
        print(f"cardiogate api user add: {exc}", file=sys.stderr)
        return 2
    print(f"added {user.username}: role {user.role}, sites {', '.join(user.sites) or '(all)'}")
    return 0


def _cmd_api_build_dashboard(ns: argparse.Namespace) -> int:
    from cardiogate.app.dashboard_build import DashboardBuildError, ensure_built

    try:
        dist = ensure_built()
    except DashboardBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"dashboard built in {dist}")
    return 0


def add_cloud_read_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``processor`` and ``api`` on the main parser."""
    processor = sub.add_parser("processor", help="the stream processor: per-patient feature windows and risk reports")
    psub = processor.add_subparsers(dest="action", required=True, metavar="ACTION")
    prun = psub.add_parser("run", help="run the stream processor until SIGTERM/Ctrl-C",
                           description="Consume ecg.raw, vitals, alarms and device.events keyed by patient (one "
                                       "consumer group: add replicas up to the partition count); write 1- and "
                                       "5-minute feature windows (features.1m, features.5m), risk reports "
                                       "(risk-events), the latest state to Redis and the history to the cloud "
                                       "database. Settings: --config TOML ([processor] table), overridden by "
                                       "CARDIOGATE_CLOUD__* environment variables.")
    prun.add_argument("--config", type=Path, default=None, help="cloud TOML settings file")
    prun.set_defaults(func=_cmd_processor_run)

    api = sub.add_parser("api", help="the cloud API: GraphQL, REST, WebSockets, FHIR, with login and roles")
    asub = api.add_subparsers(dest="action", required=True, metavar="ACTION")
    arun = asub.add_parser("run", help="serve the API until SIGTERM/Ctrl-C",
                           description="Serve GraphQL (/graphql, subscriptions over graphql-transport-ws), the "
                                       "risk WebSocket (/ws/risk), /healthz, /readyz, /metrics and the embedded "
                                       "token issuer (/auth/token, /auth/jwks.json). Settings: --config TOML "
                                       "([api] table), overridden by CARDIOGATE_CLOUD__* environment variables.")
    arun.add_argument("--config", type=Path, default=None, help="cloud TOML settings file")
    arun.set_defaults(func=_cmd_api_run)
    aschema = asub.add_parser("schema", help="print the GraphQL schema (SDL)")
    aschema.set_defaults(func=_cmd_api_schema)
    auser = asub.add_parser("user", help="local users of the embedded token issuer")
    usub = auser.add_subparsers(dest="user_action", required=True, metavar="ACTION")
    uadd = usub.add_parser("add", help="add a user (or replace its password, role and sites)",
                           description=f"The password comes from stdin (--password-stdin), from ${PASSWORD_ENV}, "
                                       "or is asked for on a terminal; it is stored only as an argon2 hash.")
    uadd.add_argument("--config", type=Path, default=None, help="cloud TOML settings file")
    uadd.add_argument("--username", required=True)
    uadd.add_argument("--role", required=True, choices=["nurse", "clinician", "operator", "admin"])
    uadd.add_argument("--site", action="append", default=[],
                      help="a site the user may see, repeatable (nurses and clinicians need at least one)")
    uadd.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    uadd.set_defaults(func=_cmd_api_user_add)
    abuild = asub.add_parser("build-dashboard", help="build the web dashboard the API serves at / (npm ci, build)",
                             description="Installs the dashboard's packages from its lockfile and bundles it into "
                                         "dashboard/dist; does nothing while the sources are unchanged since the "
                                         "last build. Needs Node.js 20 and npm.")
    abuild.set_defaults(func=_cmd_api_build_dashboard)
