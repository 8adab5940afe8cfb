"""The chat's automated assistant: fixed rules and templates over the patient's own data, never a model.

It answers a few kinds of question (summary, alarms, heart rate, SpO2, blood pressure, risk, rhythm)
from the facts the API gathered, cites every number it used, and says in its first words that it is
automated. A question it does not recognise gets the list of what it can answer, and no guess. No
outside service is called: the answer is a pure function of the question and the facts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

LABEL = "Automated summary (rules, not a clinician):"

VITAL_NAMES = {"heart_rate_bpm": ("Heart rate", "bpm"), "spo2_percent": ("SpO2", "%"),
               "systolic_mmhg": ("Systolic BP", "mmHg"), "diastolic_mmhg": ("Diastolic BP", "mmHg"),
               "pulse_rate_bpm": ("Pulse rate", "bpm"), "respiratory_rate": ("Respiratory rate", "/min")}


@dataclass(frozen=True, slots=True)
class Citation:
    """One piece of the patient's data an automated answer used."""

    kind: str     # vitals, risk, alarm, window
    label: str
    value: str
    at_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Vital:
    name: str        # a store field name, e.g. heart_rate_bpm
    value: float
    at_ns: int


@dataclass(frozen=True, slots=True)
class AlarmFact:
    alarm_id: str
    condition: str
    priority: str
    state: str
    value: float
    at_ns: int | None


@dataclass(frozen=True, slots=True)
class RiskFact:
    score: float
    level: str
    news2: int
    model: str        # name and version
    baseline: bool
    factors: tuple[tuple[str, str], ...]  # (name, description)
    at_ns: int


@dataclass(frozen=True, slots=True)
class TrendFact:
    """Mean heart rate and SpO2 over a span, from the 5-minute windows."""

    span: str         # "1 h", "24 h"
    hr_first: float | None
    hr_last: float | None
    spo2_min: float | None
    af_burden: float | None
    windows: int
    at_ns: int


@dataclass(frozen=True, slots=True)
class PatientFacts:
    patient: str
    vitals: tuple[Vital, ...] = ()
    alarms: tuple[AlarmFact, ...] = ()     # most recent first
    risk: RiskFact | None = None
    trends: tuple[TrendFact, ...] = ()


@dataclass(frozen=True, slots=True)
class AssistantAnswer:
    text: str
    citations: tuple[Citation, ...] = field(default_factory=tuple)


INTENTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("alarms", re.compile(r"\balarm|\balert", re.I)),
    ("risk", re.compile(r"\brisk|\bnews2?\b|\bwhy\b|\bscore|\bdeteriorat", re.I)),
    ("rhythm", re.compile(r"\brhythm|\baf\b|\bafib|fibrillation|\barrhythm", re.I)),
    ("spo2", re.compile(r"spo2|oxygen|saturation|\bsat\b|desat", re.I)),
    ("bp", re.compile(r"blood pressure|\bbp\b|systolic|diastolic|hypotens|hypertens", re.I)),
    ("hr", re.compile(r"heart ?rate|\bhr\b|pulse|tachy|brady", re.I)),
    ("summary", re.compile(r"summar|overview|status|how is|update|\bnow\b", re.I)),
)
CAN_ANSWER = "a summary, recent alarms, heart rate, SpO2, blood pressure, the risk score and its factors, rhythm"


def intents(question: str) -> list[str]:
    found = [name for name, pattern in INTENTS if pattern.search(question)]
    return ["summary"] if "summary" in found else found


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v - round(v)) < 0.05 or abs(v) >= 20 else f"{v:.1f}"


def _vital(facts: PatientFacts, name: str) -> Vital | None:
    return next((v for v in facts.vitals if v.name == name), None)


def _vital_line(facts: PatientFacts, names: tuple[str, ...], cites: list[Citation]) -> str | None:
    parts = []
    for name in names:
        v = _vital(facts, name)
        if v is None:
            continue
        label, unit = VITAL_NAMES.get(name, (name, ""))
        parts.append(f"{label} {_fmt(v.value)} {unit}".strip())
        cites.append(Citation("vitals", label, f"{_fmt(v.value)} {unit}".strip(), v.at_ns))
    return "Latest: " + ", ".join(parts) + "." if parts else None


def _trend_lines(facts: PatientFacts, cites: list[Citation], spo2: bool = False) -> list[str]:
    lines = []
    for t in facts.trends:
        if spo2 and t.spo2_min is not None:
            lines.append(f"Lowest SpO2 over the last {t.span}: {_fmt(t.spo2_min)} %.")
            cites.append(Citation("window", f"SpO2 minimum, last {t.span}", f"{_fmt(t.spo2_min)} %", t.at_ns))
        elif not spo2 and t.hr_first is not None and t.hr_last is not None:
            delta = t.hr_last - t.hr_first
            direction = "rising" if delta > 5 else "falling" if delta < -5 else "stable"
            lines.append(f"Heart rate over the last {t.span}: {direction} ({_fmt(t.hr_first)} -> "
                         f"{_fmt(t.hr_last)} bpm, {t.windows} windows).")
            cites.append(Citation("window", f"Heart rate trend, last {t.span}",
                                  f"{_fmt(t.hr_first)} -> {_fmt(t.hr_last)} bpm", t.at_ns))
    return lines


def _alarm_lines(facts: PatientFacts, cites: list[Citation], limit: int = 5) -> list[str]:
    if not facts.alarms:
        return ["No alarms are on record for this patient."]
    active = [a for a in facts.alarms if a.state != "cleared"]
    lines = [f"{len(active)} alarm(s) not cleared; the most recent:"]
    for a in facts.alarms[:limit]:
        lines.append(f"- {a.priority} {a.condition} ({a.state}), value {_fmt(a.value)}")
        cites.append(Citation("alarm", f"{a.priority} {a.condition}", f"{a.state}, value {_fmt(a.value)}", a.at_ns))
    return lines


def _risk_lines(facts: PatientFacts, cites: list[Citation]) -> list[str]:
    r = facts.risk
    if r is None:
        return ["No risk report yet."]
    kind = "the transparent rule baseline" if r.baseline else "a trained model"
    lines = [f"Risk {r.level} (score {r.score:.2f}, NEWS2 {r.news2 if r.news2 >= 0 else 'n/a'}) from {r.model}, "
             f"{kind}."]
    cites.append(Citation("risk", f"Risk ({r.model})", f"{r.level}, score {r.score:.2f}", r.at_ns))
    for name, description in r.factors[:4]:
        lines.append(f"- {name}: {description}")
        cites.append(Citation("risk", f"Factor {name}", description, r.at_ns))
    return lines


def _rhythm_lines(facts: PatientFacts, cites: list[Citation]) -> list[str]:
    lines = []
    for t in facts.trends:
        if t.af_burden is not None:
            lines.append(f"AF burden over the last {t.span}: {t.af_burden * 100:.0f} % of the analysed time.")
            cites.append(Citation("window", f"AF burden, last {t.span}", f"{t.af_burden * 100:.0f} %", t.at_ns))
    rhythm_alarms = [a for a in facts.alarms if a.condition in ("af", "vt", "vf", "asystole", "brady", "tachy",
                                                               "pause", "irregular")]
    for a in rhythm_alarms[:3]:
        lines.append(f"- rhythm alarm: {a.priority} {a.condition} ({a.state})")
        cites.append(Citation("alarm", f"{a.priority} {a.condition}", a.state, a.at_ns))
    return lines or ["No rhythm findings in the windows or alarms on record."]


def answer(question: str, facts: PatientFacts) -> AssistantAnswer:
    """The assistant's reply to ``question`` about the patient ``facts`` describe."""
    found = intents(question)
    if not found:
        return AssistantAnswer(f"{LABEL} I can answer about: {CAN_ANSWER}. Ask, for example, "
                               "\"summary\" or \"why is the risk high?\".")
    cites: list[Citation] = []
    lines: list[str] = [LABEL]
    wanted = ["hr", "spo2", "bp", "risk", "alarms"] if found == ["summary"] else found
    for intent in wanted:
        if intent == "hr":
            lines += [x for x in [_vital_line(facts, ("heart_rate_bpm", "pulse_rate_bpm"), cites)] if x]
            lines += _trend_lines(facts, cites)
        elif intent == "spo2":
            lines += [x for x in [_vital_line(facts, ("spo2_percent",), cites)] if x]
            lines += _trend_lines(facts, cites, spo2=True)
        elif intent == "bp":
            lines += [_vital_line(facts, ("systolic_mmhg", "diastolic_mmhg"), cites) or "No blood pressure on record."]
        elif intent == "risk":
            lines += _risk_lines(facts, cites)
        elif intent == "alarms":
            lines += _alarm_lines(facts, cites)
        elif intent == "rhythm":
            lines += _rhythm_lines(facts, cites)
    if not cites:
        lines.append("There is no data on record for that yet.")
    lines.append("Check the monitor and the patient before acting on this summary.")
    return AssistantAnswer("\n".join(lines), tuple(cites))
