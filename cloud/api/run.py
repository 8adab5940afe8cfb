"""Entry points for the command line: serve the API (uvicorn), print its SDL, add a local user."""

from __future__ import annotations

import asyncio

import uvicorn

from cardiogate.cloud.api.app import create_app
from cardiogate.cloud.api.direct_ingest import DirectIngest
from cardiogate.cloud.api.live import LocalHub, open_hub
from cardiogate.cloud.api.live_stream import LiveTail
from cardiogate.cloud.api.risk_tail import RiskTail
from cardiogate.cloud.api.schema import schema_sdl
from cardiogate.cloud.api.users import User, add_user
from cardiogate.cloud.registry.migrate import open_database
from cardiogate.cloud.registry.wiring import build_registries
from cardiogate.cloud.settings import CloudSettings
from cardiogate.core.metrics import parse_listen
from cardiogate.core.settings import ConfigError
from cardiogate.core.tracing import setup_tracing


async def run_api(settings: CloudSettings) -> None:
    """Serve until cancelled; the database is migrated to head first."""
    setup_tracing(settings.tracing, "cardiogate-api")
    listen = parse_listen(settings.api.listen)
    if listen is None:
        raise ConfigError(f"api.listen {settings.api.listen!r} is not HOST:PORT")
    engine = open_database(settings.db_url)
    hub = await open_hub(settings.api.redis_url)
    tail = None
    if isinstance(hub, LocalHub):  # no Redis: this replica follows risk-events itself
        tail = RiskTail(settings.kafka.bootstrap, settings.processor.topic_risk, hub.publish,
                        asyncio.get_running_loop())
        tail.start()
    direct = DirectIngest.from_settings(settings, engine) if settings.api.direct_ingest else None
    live = LiveTail(settings.kafka.bootstrap, (settings.kafka.topic_ecg, settings.kafka.topic_vitals))
    try:
        registries = build_registries(engine, settings.models)
        app = create_app(settings.api, engine, hub=hub, direct_ingest=direct, rollouts=registries.rollouts,
                         live=live)
        server = uvicorn.Server(uvicorn.Config(app, host=listen[0], port=listen[1], log_config=None,
                                               proxy_headers=False, ws="websockets"))
        await server.serve()
    finally:
        if tail is not None:
            await asyncio.to_thread(tail.stop)
        await asyncio.to_thread(live.close)
        if direct is not None:
            await asyncio.to_thread(direct.close)
        await hub.close()
        engine.dispose()


__all__ = ["add_api_user", "run_api", "schema_sdl"]


def add_api_user(settings: CloudSettings, username: str, password: str, role: str, sites: list[str]) -> User:
    """``cardiogate api user add``: a local user of the embedded issuer (the password is hashed, never logged)."""
    engine = open_database(settings.db_url)
    try:
        return add_user(engine, username, password, role, sites)
    finally:
        engine.dispose()
