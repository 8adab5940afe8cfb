"""The GraphQL schema: the seed operations under their designed names, plus the dashboard's reads.

Every resolver that returns patient data first passes :func:`patient_access` (role, site scope,
audit row). Operations the platform cannot serve (phone-direct ingest while it is
switched off) answer a NOT_AVAILABLE error instead of empty data, so a client cannot mistake them
for "nothing found". Queries are limited in depth and aliases; introspection is off unless
the API runs in development mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.tools import merge_types
from strawberry.types import Info

from cardiogate.cloud.api.access import FLEET_READ, INGEST_WRITE, MODELS_READ, PATIENT_READ, Caller, Denied, site_filter
from cardiogate.cloud.api.alarm_actions import AlarmMutation, AlarmQuery
from cardiogate.cloud.api.chat import ChatMutation, ChatQuery, ChatSubscription
from cardiogate.cloud.api.context import caller_of, context_of, hub_messages, patient_access, permitted
from cardiogate.cloud.api.data import PatientRows
from cardiogate.cloud.api.ecg import EcgQuery
from cardiogate.cloud.api.fleet_timeline import FleetQuery
from cardiogate.cloud.api.nutrition import NutritionMutation, NutritionQuery
from cardiogate.cloud.api.objects import (
    Alarm,
    FeatureWindow,
    Gateway,
    Model,
    Patient,
    RiskReport,
    RiskUpdate,
    Site,
    SmartwatchInput,
    ns_time,
    time_ns,
)
from cardiogate.cloud.api.resolvers import field, mutation, not_available, subscription
from cardiogate.cloud.api.rollouts import RolloutMutation, RolloutQuery
from cardiogate.cloud.api.settings import ApiSettings
from cardiogate.core.tracing import child_span
from cardiogate.proto.v1 import features_pb2

DAY_NS = 86_400 * 10**9
MAX_HISTORY_NS = 31 * DAY_NS
WINDOW_WIDTHS = (60, 300)


def _newer(a: features_pb2.RiskReport | None, b: features_pb2.RiskReport | None) -> features_pb2.RiskReport | None:
    if a is None or b is None:
        return a or b
    def key(r: features_pb2.RiskReport) -> tuple[int, int, int]:
        return (r.window_start_device_time_ns, r.revision, r.computed_time_ns)
    return a if key(a) >= key(b) else b


async def latest_risk(info: Info[Any, Any], pseudonym: str) -> features_pb2.RiskReport | None:
    """The newest report of the live store (Redis or this process) and the database."""
    services = context_of(info).services
    cached = await services.hub.latest_risk(pseudonym)
    live = features_pb2.RiskReport.FromString(cached) if cached else None
    stored = await asyncio.to_thread(services.data.latest_risk, pseudonym)
    return _newer(live, stored)


@strawberry.type
class Query:
    @field("The patient's latest risk report.")
    async def get_risk_assessment(self, info: Info[Any, Any], user_id: strawberry.ID) -> RiskReport | None:
        await patient_access(info, str(user_id), "getRiskAssessment")
        report = await latest_risk(info, str(user_id))
        return RiskReport.of(report) if report is not None else None

    @field("Patients the caller may see, with latest vitals, risk, NEWS2 and active alarms.")
    async def patients(self, info: Info[Any, Any]) -> list[Patient]:
        caller = permitted(info, PATIENT_READ)
        services = context_of(info).services

        def load() -> list[PatientRows]:
            visible = services.access.visible_patients(caller)
            names = [p for p, _ in visible]
            services.access.audit(caller, "patients", names)
            data = services.data
            vitals, alarms, risks = data.vitals_of(names), data.active_alarms_of(names), data.latest_risks_of(names)
            status, windows = data.status_of(names), data.latest_windows_of(names, 60)
            trends = data.risk_trends_of(names)
            return [PatientRows(p, site, vitals[p], alarms[p], risks.get(p), status[p], windows.get(p), trends[p])
                    for p, site in visible]

        out = []
        for rows in await asyncio.to_thread(load):
            cached = await services.hub.latest_risk(rows.pseudonym)
            report = _newer(features_pb2.RiskReport.FromString(cached) if cached else None, rows.risk)
            out.append(Patient.of(rows, report))
        return out

    @field("Feature windows (60 s or 300 s) of one patient; default: "
                                                        "the last 24 h; at most 31 days per query.")
    async def vitals_history(self, info: Info[Any, Any], user_id: strawberry.ID, width_s: int = 300,
                             from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
                             to: datetime | None = None) -> list[FeatureWindow]:
        if width_s not in WINDOW_WIDTHS:
            raise GraphQLError(f"widthS must be one of {WINDOW_WIDTHS}", extensions={"code": "BAD_USER_INPUT"})
        end = time_ns(to) if to is not None else time.time_ns()
        start = time_ns(from_) if from_ is not None else end - DAY_NS
        if not 0 <= end - start <= MAX_HISTORY_NS:
            raise GraphQLError("the range must run forwards and span at most 31 days",
                               extensions={"code": "BAD_USER_INPUT"})
        await patient_access(info, str(user_id), "vitalsHistory")
        data = context_of(info).services.data
        windows = await asyncio.to_thread(data.windows, str(user_id), width_s, start, end)
        return [FeatureWindow.of(w) for w in windows]

    @field()
    async def alarms(self, info: Info[Any, Any], user_id: strawberry.ID, active_only: bool = True) -> list[Alarm]:
        await patient_access(info, str(user_id), "alarms")
        data = context_of(info).services.data
        return [Alarm.of(a) for a in await asyncio.to_thread(data.alarms, str(user_id), active_only)]

    @field()
    async def sites(self, info: Info[Any, Any]) -> list[Site]:
        caller = permitted(info, FLEET_READ)
        data = context_of(info).services.data
        rows = await asyncio.to_thread(data.sites, _scope(caller))
        return [Site(site_id=strawberry.ID(s), name=n) for s, n in rows]

    @field("Gateways with their last heartbeat (nurses and clinicians: their sites).")
    async def gateways(self, info: Info[Any, Any]) -> list[Gateway]:
        caller = permitted(info, FLEET_READ)
        data = context_of(info).services.data
        rows = await asyncio.to_thread(data.gateways, _scope(caller))
        return [Gateway(gateway_id=strawberry.ID(r.gateway_id), site=r.site_id, health=r.health,
                        software_version=r.software_version, model_versions=_json(r.model_versions),
                        outbox_records=r.outbox_records, outbox_bytes=r.outbox_bytes,
                        oldest_unsent_age_ms=r.oldest_unsent_age_ms, last_heartbeat=ns_time(r.last_seen_ns),
                        connected_devices=r.connected_devices) for r in rows]

    @field("Registered model versions with their metrics, card and aliases.")
    async def models(self, info: Info[Any, Any], name: str | None = None) -> list[Model]:
        permitted(info, MODELS_READ)
        data = context_of(info).services.data
        return [Model.of(m) for m in await asyncio.to_thread(data.models, name)]


def _scope(caller: Caller) -> list[str] | None:
    scope = site_filter(caller.principal)
    return None if scope is None else sorted(scope)


def _json(text: str) -> Any:
    import json

    try:
        return json.loads(text or "{}")
    except ValueError:
        return {}


@strawberry.type
class Mutation:
    @mutation()
    async def ingest_smartwatch_data(self, info: Info[Any, Any], data: SmartwatchInput) -> bool | None:
        """A phone-direct reading into Kafka as a gateway's would go (cardiogate.cloud.api.direct_ingest)."""
        from cardiogate.cloud.api.direct_ingest import Refused, reading_of

        caller = permitted(info, INGEST_WRITE)
        direct = context_of(info).services.direct_ingest
        if direct is None:
            raise not_available("ingestSmartwatchData (phone-direct ingest is off: api.direct_ingest)")
        try:
            return await direct.ingest(caller, reading_of(data))
        except Refused as exc:
            raise GraphQLError(str(exc), extensions={"code": exc.code}) from exc



@strawberry.type
class Subscription:
    @subscription("Each new risk report of the patient, as it comes.")
    async def real_time_risk_update(self, info: Info[Any, Any],
                                    user_id: strawberry.ID) -> AsyncGenerator[RiskUpdate | None, None]:
        caller = caller_of(info)
        await patient_access(info, str(user_id), "realTimeRiskUpdate")
        async with contextlib.aclosing(hub_messages(info, caller, str(user_id))) as updates:
            async for payload in updates:
                report = features_pb2.RiskReport.FromString(payload)
                # a report raised by a traced alarm: its delivery is the last span of the alarm's trace
                with child_span("api.risk_update.deliver", report.trace_parent, kind="server",
                                attributes={"subscription": "realTimeRiskUpdate", "provisional": report.provisional}):
                    update = RiskUpdate(user_id=user_id, score=report.score, confidence=report.confidence,
                                        level=report.level, report=RiskReport.of(report))
                yield update


# The schema is merged from one Query/Mutation class per concern; each module adds its class here.
QUERIES: tuple[type, ...] = (Query, AlarmQuery, RolloutQuery, EcgQuery, FleetQuery, ChatQuery, NutritionQuery)
MUTATIONS: tuple[type, ...] = (Mutation, AlarmMutation, RolloutMutation, ChatMutation, NutritionMutation)
SUBSCRIPTIONS: tuple[type, ...] = (Subscription, ChatSubscription)


def build_schema(settings: ApiSettings) -> strawberry.Schema:
    # factories: a fresh extension per request
    # The parser's LRU cache lives at module level: a dashboard sends the same few documents again and
    # again. Validation is not cached: the depth and alias rules must judge every request.
    # The cost limit is the document's size in tokens (a huge selection set costs parsing and execution alike);
    # depth and aliases bound what one small document can fan out to.
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: ParserCache(maxsize=512),
        lambda: QueryDepthLimiter(max_depth=settings.max_query_depth),
        lambda: MaxAliasesLimiter(max_alias_count=settings.max_aliases),
    ]
    if not settings.development:
        extensions.append(DisableIntrospection)
    query = merge_types("Query", QUERIES) if len(QUERIES) > 1 else Query
    mutation_type = merge_types("Mutation", MUTATIONS) if len(MUTATIONS) > 1 else Mutation
    subscription_type = merge_types("Subscription", SUBSCRIPTIONS)
    return strawberry.Schema(query=query, mutation=mutation_type, subscription=subscription_type,
                             extensions=extensions)


def schema_sdl() -> str:
    """The schema in SDL (``cardiogate api schema``)."""
    return str(build_schema(ApiSettings()))


__all__ = ["Denied", "build_schema", "schema_sdl"]
