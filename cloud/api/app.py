"""The API process: FastAPI with GraphQL at /graphql, the risk WebSocket, login, health and metrics.

``create_app`` builds everything from settings and an engine (tests pass SQLite or PostgreSQL and
an in-process hub); ``run_api`` serves it with uvicorn. Bearer tokens come in the
``Authorization`` header, or for WebSockets (which browsers cannot give headers) in the
graphql-transport-ws ``connection_init`` payload, the ``token`` query parameter or the first
message of ``/ws/risk``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import anyio
from fastapi import FastAPI, HTTPException, Query, WebSocket, WebSocketDisconnect
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from google.protobuf.json_format import MessageToDict
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from starlette.requests import HTTPConnection
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.types.unset import UNSET, UnsetType

from cardiogate.cloud.api import fhir
from cardiogate.cloud.api.access import Access, Caller, Denied
from cardiogate.cloud.api.context import ApiContext, Services
from cardiogate.cloud.api.dashboard import mount_dashboard
from cardiogate.cloud.api.data import ApiData
from cardiogate.cloud.api.direct_ingest import DirectIngest
from cardiogate.cloud.api.live import Hub, open_hub
from cardiogate.cloud.api.live_stream import LiveTail
from cardiogate.cloud.api.schema import build_schema
from cardiogate.cloud.api.settings import ApiSettings
from cardiogate.cloud.api.tokens import Issuer, TokenVerifier, load_or_create_key, remote_jwks
from cardiogate.cloud.api.users import authenticate
from cardiogate.cloud.rollout.controller import RolloutController
from cardiogate.core.logs import get_logger
from cardiogate.core.metrics import exposition

log = get_logger(__name__)

HTTP_STATUS = {"UNAUTHENTICATED": 401, "FORBIDDEN": 403, "RATE_LIMITED": 429}
WS_CLOSE = {"UNAUTHENTICATED": 4401, "FORBIDDEN": 4403, "RATE_LIMITED": 4429}


class TokenRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int


def _client(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else ""


def _http_error(exc: Denied) -> HTTPException:
    headers = {"WWW-Authenticate": "Bearer"} if exc.code == "UNAUTHENTICATED" else None
    return HTTPException(HTTP_STATUS.get(exc.code, 403), detail=str(exc), headers=headers)


class _GraphQL(GraphQLRouter[ApiContext, None]):
    """Checks a WebSocket's token from ``connection_init`` when its upgrade request carried none."""

    def __init__(self, services: Services, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._services = services

    async def on_ws_connect(self, context: ApiContext) -> UnsetType | dict[str, object] | None:
        if context.caller is None:
            params = context.connection_params if isinstance(context.connection_params, dict) else {}
            token = params.get("Authorization") or params.get("authorization") or params.get("token")
            try:
                context.caller = await self._services.authenticate(token if isinstance(token, str) else None,
                                                                   context.client)
            except Denied as exc:
                raise ConnectionRejectionError({"code": exc.code, "message": str(exc)}) from exc
        return cast(UnsetType, UNSET)


def create_app(settings: ApiSettings, engine: Engine, *, hub: Hub | None = None,
               verifier: TokenVerifier | None = None, direct_ingest: DirectIngest | None = None,
               rollouts: RolloutController | None = None, live: LiveTail | None = None) -> FastAPI:
    """The API on ``engine`` (migrated to head). Without ``hub``, Redis is tried at start, else in-process.
    Without ``direct_ingest`` (the caller owns and closes it), ``ingestSmartwatchData`` answers NOT_AVAILABLE;
    without ``live`` (the caller owns and closes it), ``/ws/live`` does."""
    issuer = None
    if settings.auth.jwks_url is None:
        issuer = Issuer(load_or_create_key(settings.auth.issuer_key), settings.auth)
        verifier = verifier or TokenVerifier.embedded(settings.auth, issuer)
    else:
        verifier = verifier or TokenVerifier(settings.auth, remote_jwks(settings.auth.jwks_url))
    data = ApiData(engine)
    services = Services(settings, data, Access(engine), hub if hub is not None else _PendingHub(), verifier,
                        direct_ingest=direct_ingest, rollouts=rollouts, live=live)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        opened = None
        if isinstance(services.hub, _PendingHub):
            services.hub = opened = await open_hub(settings.redis_url)
        app.state.hub = services.hub
        try:
            yield
        finally:
            if opened is not None:
                await opened.close()

    app = FastAPI(title="cardiogate API", version="1", lifespan=lifespan,
                  docs_url="/docs" if settings.development else None, redoc_url=None)
    app.state.services = services
    app.state.hub = services.hub
    app.add_middleware(CORSMiddleware, allow_origins=[settings.origin], allow_methods=["GET", "POST"],
                       allow_headers=["Authorization", "Content-Type"], allow_credentials=False)

    async def graphql_context(connection: HTTPConnection) -> ApiContext:
        client = _client(connection)
        authorization = connection.headers.get("authorization")
        if connection.scope["type"] == "websocket":
            caller: Caller | None = None
            if authorization:  # else on_ws_connect reads connection_init
                with contextlib.suppress(Denied):
                    caller = await services.authenticate(authorization, client)
            return ApiContext(services, caller, client)
        try:
            return ApiContext(services, await services.authenticate(authorization, client), client)
        except Denied as exc:
            raise _http_error(exc) from exc

    app.include_router(_GraphQL(services, schema=build_schema(settings), path="/graphql",
                                context_getter=graphql_context,
                                graphql_ide="graphiql" if settings.development else None), tags=["graphql"])
    app.include_router(fhir.router())

    @app.post("/auth/token", response_model=TokenResponse, tags=["auth"],
              responses={401: {"description": "unknown user, wrong password or disabled account"}})
    async def token(body: TokenRequest, connection: HTTPConnection) -> TokenResponse:
        """A short-lived access token for a local user (embedded issuer only)."""
        if issuer is None:
            raise HTTPException(404, detail="tokens come from the external identity provider")
        try:
            services.charge(f"login:{body.username}")
        except Denied as exc:
            raise _http_error(exc) from exc
        user = await asyncio.to_thread(authenticate, engine, body.username, body.password)
        if user is None:
            log.info("api login refused", username=body.username[:64], client=_client(connection))
            raise _http_error(Denied("UNAUTHENTICATED", "login", "unknown user or wrong password"))
        token, ttl = issuer.issue(user)
        log.info("api token issued", username=user.username, role=user.role)
        return TokenResponse(access_token=token, expires_in=ttl)

    @app.get("/auth/jwks.json", tags=["auth"])
    async def jwks() -> dict[str, Any]:
        """The embedded issuer's public keys."""
        if issuer is None:
            raise HTTPException(404, detail="keys are published by the external identity provider")
        return issuer.jwks()

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "the database is unreachable"}})
    async def readyz() -> JSONResponse:
        """The database answers."""
        try:
            await asyncio.wait_for(asyncio.to_thread(data.ping), 5.0)
        except Exception as exc:
            log.warning("readiness: database unreachable", error=str(exc))
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics of this process."""
        return Response(exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.websocket("/ws/risk")
    async def ws_risk(websocket: WebSocket, user_id: str = Query(alias="userId", min_length=1, max_length=64),
                      token: str | None = None) -> None:
        await risk_socket(services, websocket, user_id, token)

    @app.websocket("/ws/live")
    async def ws_live(websocket: WebSocket, user_id: str = Query(alias="userId", min_length=1, max_length=64),
                      token: str | None = None) -> None:
        await live_socket(services, websocket, user_id, token)

    mount_dashboard(app, settings.dashboard_dir)
    return app


class _PendingHub:
    """Stands in until the lifespan has opened the real hub."""

    async def publish(self, patient: str, payload: bytes) -> None:
        raise RuntimeError("the API has not started")

    def subscribe(self, patient: str) -> AsyncIterator[bytes]:
        raise RuntimeError("the API has not started")

    async def subscribers(self, patient: str) -> int:
        return 0

    async def latest_risk(self, patient: str) -> bytes | None:
        return None

    async def close(self) -> None:
        return None


async def _open_socket(services: Services, websocket: WebSocket, user_id: str, token: str | None,
                       operation: str) -> Caller | None:
    """Accept, authenticate (header, ``token`` parameter or a first ``{"token": ...}`` message), authorize
    and audit the read of ``user_id``'s data; None (the socket closed with the reason) when refused."""
    await websocket.accept()
    client = websocket.client.host if websocket.client else ""
    try:
        authorization = websocket.headers.get("authorization") or token
        if not authorization:
            first = await asyncio.wait_for(websocket.receive_json(), 10.0)
            authorization = first.get("token") if isinstance(first, dict) else None
        caller = await services.authenticate(authorization, client)
        await asyncio.to_thread(services.access.authorize_patient, caller, user_id, operation)
    except Denied as exc:
        await websocket.send_json({"type": "error", "code": exc.code, "message": str(exc)})
        await websocket.close(code=WS_CLOSE.get(exc.code, 4403))
        return None
    except (TimeoutError, ValueError, WebSocketDisconnect):
        with contextlib.suppress(RuntimeError):
            await websocket.close(code=4401)
        return None
    await websocket.send_json({"type": "ready", "userId": user_id})
    return caller


async def _serve_socket(websocket: WebSocket, caller: Caller, messages: AsyncIterator[dict[str, Any]]) -> None:
    """Send ``messages`` until the client leaves, the stream ends or the token expires (then close 4401)."""

    async def push(scope: anyio.CancelScope) -> None:
        async for message in messages:
            await websocket.send_json(message)
        scope.cancel()

    async def until_closed(scope: anyio.CancelScope) -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await websocket.receive_text()
        scope.cancel()

    with anyio.move_on_after(max(0.0, caller.principal.expires - time.time())):
        async with anyio.create_task_group() as group:
            group.start_soon(push, group.cancel_scope)
            group.start_soon(until_closed, group.cancel_scope)
    if time.time() >= caller.principal.expires:
        with contextlib.suppress(RuntimeError):
            await websocket.close(code=4401, reason="token expired")


async def risk_socket(services: Services, websocket: WebSocket, user_id: str, token: str | None) -> None:
    """``/ws/risk``: authenticate, authorize and audit, then push each risk report as JSON until the token expires."""
    caller = await _open_socket(services, websocket, user_id, token, "ws/risk")
    if caller is None:
        return

    async def reports() -> AsyncIterator[dict[str, Any]]:
        async for payload in services.hub.subscribe(user_id):
            yield {"type": "risk", "userId": user_id, "report": MessageToDict(_risk_report(payload))}

    await _serve_socket(websocket, caller, reports())


async def live_socket(services: Services, websocket: WebSocket, user_id: str, token: str | None) -> None:
    """``/ws/live``: one patient's vitals and full-rate ECG as they reach Kafka (see :mod:`live_stream`)."""
    if services.live is None:
        await websocket.accept()
        await websocket.send_json({"type": "error", "code": "NOT_AVAILABLE",
                                   "message": "the live stream needs Kafka (kafka.bootstrap)"})
        await websocket.close(code=4404)
        return
    caller = await _open_socket(services, websocket, user_id, token, "ws/live")
    if caller is not None:
        await _serve_socket(websocket, caller, services.live.watch(user_id))


def _risk_report(payload: bytes) -> Any:
    from cardiogate.proto.v1 import features_pb2

    return features_pb2.RiskReport.FromString(payload)
