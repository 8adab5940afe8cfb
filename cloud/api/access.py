"""Who may read what: one permission table by role, site scope for patient data, and the audit trail.

Nurses and clinicians see only patients registered at one of their token's sites; an admin sees
everyone; an operator runs the fleet and the models and never sees patient data. An unknown
patient and a patient of another site get the same answer, so the API cannot be used to find
out which pseudonyms exist. Every granted read of patient data is written to ``api_audit``
before the data leaves.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, select

from cardiogate.cloud.api.tables import api_audit
from cardiogate.cloud.api.tokens import Principal
from cardiogate.cloud.registry.schema import patients
from cardiogate.core import metrics as registry
from cardiogate.core.errors import PermanentError

REFUSALS = registry.counter("api_refusals", "API requests refused, by reason (authentication, role, site, limit).",
                            ("reason",))
AUDITED_READS = registry.counter("api_patient_reads", "Audited reads of patient data, by operation.", ("operation",))

PATIENT_READ = "patient.read"
FLEET_READ = "fleet.read"
MODELS_READ = "models.read"
INGEST_WRITE = "ingest.write"
ALARM_COMMAND = "alarm.command"  # acknowledge, silence, unsilence, comment (the gateway obeys clinical roles only)
ALARM_LABEL = "alarm.label"      # true or false: the label the training jobs learn from
ROLLOUT_MANAGE = "rollout.manage"  # start, pause, resume, promote, abort
CHAT_WRITE = "chat.write"        # start care-team chat sessions, post messages, ask the automated assistant
CARE_RECORD = "care.record"      # lab results, known conditions and medications for the nutrition analysis
MEAL_LOG = "care.meal"           # meal logs

PERMISSIONS: dict[str, frozenset[str]] = {
    PATIENT_READ: frozenset({"nurse", "clinician", "admin"}),
    FLEET_READ: frozenset({"nurse", "clinician", "operator", "admin"}),  # nurses/clinicians: their sites only
    MODELS_READ: frozenset({"clinician", "operator", "admin"}),
    INGEST_WRITE: frozenset({"admin"}),
    ALARM_COMMAND: frozenset({"nurse", "clinician"}),
    ALARM_LABEL: frozenset({"clinician"}),
    ROLLOUT_MANAGE: frozenset({"operator", "admin"}),
    CHAT_WRITE: frozenset({"nurse", "clinician"}),
    CARE_RECORD: frozenset({"clinician"}),
    MEAL_LOG: frozenset({"nurse", "clinician"}),
}
ALL_SITES_ROLES = frozenset({"operator", "admin"})


class Denied(PermanentError):
    """A refusal: ``code`` is UNAUTHENTICATED, FORBIDDEN or RATE_LIMITED (the GraphQL error code / HTTP status)."""

    def __init__(self, code: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        REFUSALS.labels(reason=reason).inc()


def require(principal: Principal, permission: str) -> None:
    if principal.role not in PERMISSIONS[permission]:
        raise Denied("FORBIDDEN", "role", f"the {principal.role} role may not use {permission}")


def site_filter(principal: Principal) -> frozenset[str] | None:
    """The sites ``principal`` is limited to, or None for all sites."""
    return None if principal.role in ALL_SITES_ROLES else principal.sites


@dataclass(frozen=True)
class Caller:
    """A verified principal and the address the request came from (for the audit)."""

    principal: Principal
    client: str = ""


class Access:
    """Authorization decisions that need the database, and the audit writes."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def patient_site(self, pseudonym: str) -> tuple[bool, str | None]:
        with self._engine.connect() as conn:
            row = conn.execute(select(patients.c.site_id).where(patients.c.pseudonym == pseudonym)).first()
        return (row is not None, row.site_id if row is not None else None)

    def authorize_patient(self, caller: Caller, pseudonym: str, operation: str) -> None:
        """Allow ``caller`` to read ``pseudonym``'s data via ``operation`` and audit it, or raise :class:`Denied`."""
        require(caller.principal, PATIENT_READ)
        scope = site_filter(caller.principal)
        if scope is not None:
            known, site = self.patient_site(pseudonym)
            if not known or site not in scope:
                raise Denied("FORBIDDEN", "site", f"no access to patient {pseudonym!r}")
        self.audit(caller, operation, [pseudonym])

    def visible_patients(self, caller: Caller) -> list[tuple[str, str | None]]:
        """Every registered patient ``caller`` may see, as (pseudonym, site)."""
        require(caller.principal, PATIENT_READ)
        scope = site_filter(caller.principal)
        query = select(patients.c.pseudonym, patients.c.site_id).order_by(patients.c.pseudonym)
        if scope is not None:
            query = query.where(patients.c.site_id.in_(sorted(scope)))
        with self._engine.connect() as conn:
            return [(r.pseudonym, r.site_id) for r in conn.execute(query)]

    def audit(self, caller: Caller, operation: str, pseudonyms: Iterable[str]) -> None:
        now = time.time_ns()
        rows = [{"time_ns": now, "username": caller.principal.subject[:64], "role": caller.principal.role,
                 "action": operation[:64], "patient": p, "client": caller.client[:80]} for p in pseudonyms]
        if rows:
            with self._engine.begin() as conn:
                conn.execute(api_audit.insert(), rows)
            AUDITED_READS.labels(operation=operation).inc(len(rows))
