"""What every GraphQL resolver and REST handler shares: the services, and who is calling.

Resolvers never look at tokens: they ask :func:`patient_access` or :func:`permitted`, which turn
a refusal into a GraphQL error with a ``code`` extension (UNAUTHENTICATED, FORBIDDEN,
RATE_LIMITED) the dashboard can act on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError
from strawberry.fastapi import BaseContext
from strawberry.types import Info

from cardiogate.cloud.api.access import Access, Caller, Denied, require
from cardiogate.cloud.api.data import ApiData
from cardiogate.cloud.api.live import Hub
from cardiogate.cloud.api.settings import ApiSettings
from cardiogate.cloud.api.tokens import AuthError, TokenVerifier, bearer
from cardiogate.core.ratelimit import TokenBucket

if TYPE_CHECKING:
    from cardiogate.cloud.api.direct_ingest import DirectIngest
    from cardiogate.cloud.api.live_stream import LiveTail
    from cardiogate.cloud.rollout.controller import RolloutController


@dataclass
class Services:
    settings: ApiSettings
    data: ApiData
    access: Access
    hub: Hub
    verifier: TokenVerifier
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    direct_ingest: DirectIngest | None = None  # phone-direct readings to Kafka; None: NOT_AVAILABLE
    rollouts: RolloutController | None = None   # the model registry's rollouts; None: NOT_AVAILABLE
    live: LiveTail | None = None  # the per-patient live stream (Kafka); None: /ws/live answers NOT_AVAILABLE

    async def authenticate(self, authorization: str | None, client: str) -> Caller:
        """The caller a bearer token names, charged one request; raises :class:`Denied`."""
        token = bearer(authorization)
        if token is None:
            raise Denied("UNAUTHENTICATED", "no_token", "a bearer token is required")
        try:
            principal = await self.verifier.verify(token)
        except AuthError as exc:
            raise Denied("UNAUTHENTICATED", exc.reason, str(exc)) from exc
        self.charge(principal.subject)
        return Caller(principal, client)

    def charge(self, subject: str) -> None:
        now = time.monotonic()
        bucket = self.buckets.get(subject)
        if bucket is None:
            if len(self.buckets) > 10_000:  # forget idle subjects rather than grow without bound
                self.buckets.clear()
            bucket = self.buckets[subject] = TokenBucket.full(self.settings.rate_per_s, self.settings.rate_burst_s, now)
        if bucket.level(now) < 1.0:
            raise Denied("RATE_LIMITED", "rate", "too many requests; slow down")
        bucket.spend(1.0, now)


class ApiContext(BaseContext):
    def __init__(self, services: Services, caller: Caller | None, client: str) -> None:
        super().__init__()
        self.services = services
        self.caller = caller
        self.client = client


def graphql_error(denied: Denied) -> GraphQLError:
    return GraphQLError(str(denied), extensions={"code": denied.code})


def context_of(info: Info[Any, Any]) -> ApiContext:
    ctx = info.context
    assert isinstance(ctx, ApiContext)
    return ctx


def caller_of(info: Info[Any, Any]) -> Caller:
    caller = context_of(info).caller
    if caller is None:
        raise graphql_error(Denied("UNAUTHENTICATED", "no_token", "a bearer token is required"))
    return caller


def permitted(info: Info[Any, Any], permission: str) -> Caller:
    caller = caller_of(info)
    try:
        require(caller.principal, permission)
    except Denied as exc:
        raise graphql_error(exc) from exc
    return caller


async def patient_access(info: Info[Any, Any], pseudonym: str, operation: str) -> Caller:
    """Authorize and audit one read of ``pseudonym``'s data, or raise the GraphQL error."""
    caller = caller_of(info)
    try:
        await asyncio.to_thread(context_of(info).services.access.authorize_patient, caller, pseudonym, operation)
    except Denied as exc:
        raise graphql_error(exc) from exc
    return caller


async def patient_action(info: Info[Any, Any], pseudonym: str, operation: str, permission: str) -> Caller:
    """Like :func:`patient_access` (role, site, audit), then the action's own ``permission``."""
    caller = await patient_access(info, pseudonym, operation)
    try:
        require(caller.principal, permission)
    except Denied as exc:
        raise graphql_error(exc) from exc
    return caller


async def hub_messages(info: Info[Any, Any], caller: Caller, key: str) -> AsyncGenerator[bytes, None]:
    """What the hub publishes on ``key``, for as long as the caller's token lives.

    A subscription lives no longer than the token that opened it: at expiry it ends with UNAUTHENTICATED
    and the client subscribes again with a fresh token (a revoked user's stream stops within one TTL).
    Close it with ``contextlib.aclosing`` so the hub unsubscribes at once, not at collection.
    """
    updates = context_of(info).services.hub.subscribe(key)
    try:
        while True:
            remaining = caller.principal.expires - time.time()
            if remaining <= 0:
                raise GraphQLError("the token has expired; subscribe again with a new one",
                                   extensions={"code": "UNAUTHENTICATED"})
            try:
                payload = await asyncio.wait_for(anext(updates), remaining)
            except TimeoutError:
                raise GraphQLError("the token has expired; subscribe again with a new one",
                                   extensions={"code": "UNAUTHENTICATED"}) from None
            except StopAsyncIteration:
                return
            yield payload
    finally:
        close = getattr(updates, "aclose", None)  # the hub's generator: unsubscribe now
        if close is not None:
            await close()
