"""ECG strips: a patient's raw ECG for a time range, from the blocks the stream processor stored.

The blocks are kept exactly as the gateway sent them (``ecg_blocks``), so a strip is assembled
here, in pure functions: decode each block (int16 or int32, little-endian), scale it to µV,
concatenate the blocks in device time, trim to exactly [from, to) by each sample's own time
(first sample time + index / rate, computed exactly) and list the gaps where no block covers a
sample slot. Overlapping blocks (a resend under another sequence) contribute each sample slot
once. A shift of less than half a sample period between blocks is clock jitter, not a gap.

One strip is one lead: one wearable's ECG stream (``lead`` = its device id; by default the one
with the most samples in the range). Blocks with another sample rate than the strip's first,
an unknown unit or encoding count as missing. A range may span at most five minutes.
"""

from __future__ import annotations

import asyncio
import math
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from cardiogate.cloud.api.context import context_of, patient_access
from cardiogate.cloud.api.data import EcgBlockRow
from cardiogate.cloud.api.objects import ns_time, time_ns
from cardiogate.cloud.api.resolvers import bad_input, field

MAX_RANGE_NS = 300 * 10**9
TO_MICROVOLT = {"uV": 1.0, "µV": 1.0, "μV": 1.0, "mV": 1000.0, "V": 1_000_000.0}
_TYPECODES = {"int16_le": "h", "int32_le": "i"}
_NS = 10**9


@dataclass(frozen=True)
class Gap:
    start_ns: int
    end_ns: int
    after_sample: int  # how many samples of the strip come before the gap
    missing_samples: int


@dataclass(frozen=True)
class Strip:
    lead: str | None
    sample_rate_hz: float
    start_ns: int | None  # the first sample's device time
    samples: list[float]  # µV
    gaps: list[Gap]


def decode(block: EcgBlockRow) -> list[float] | None:
    """The block's samples in µV; None for an encoding or unit this module does not know."""
    code, factor = _TYPECODES.get(block.encoding), TO_MICROVOLT.get(block.unit)
    if code is None or factor is None:
        return None
    raw = array(code)
    usable = min(block.sample_count, len(block.samples) // raw.itemsize)
    raw.frombytes(block.samples[:usable * raw.itemsize])
    if sys.byteorder == "big":
        raw.byteswap()
    scale = block.scale * factor
    return [x * scale for x in raw]


def choose_lead(blocks: Sequence[EcgBlockRow], lead: str | None) -> str | None:
    """``lead`` if given, else the device with the most samples among ``blocks`` (ties: the smallest id)."""
    if lead is not None or not blocks:
        return lead
    counts: dict[str, int] = {}
    for b in blocks:
        counts[b.device_id] = counts.get(b.device_id, 0) + b.sample_count
    return min(counts, key=lambda d: (-counts[d], d))


def _ceil(x: Fraction) -> int:
    return math.ceil(x)


def assemble(blocks: Sequence[EcgBlockRow], from_ns: int, to_ns: int, lead: str | None = None) -> Strip:
    """The strip of one lead over [from_ns, to_ns): samples trimmed exactly, gaps where slots are empty."""
    device = choose_lead(blocks, lead)
    mine = sorted((b for b in blocks if b.device_id == device and b.sample_rate_hz > 0),
                  key=lambda b: b.first_ns)
    rate = mine[0].sample_rate_hz if mine else 0.0
    samples: list[float] = []
    gaps: list[Gap] = []
    start_ns: int | None = None
    covered: Fraction | None = None  # the time of the next sample slot after the last one taken
    period = Fraction(_NS) / Fraction(rate) if rate else Fraction(0)
    for block in mine:
        values = decode(block) if block.sample_rate_hz == rate else None
        if values is None:
            continue
        first = Fraction(block.first_ns)
        i0 = max(0, _ceil((from_ns - first) / period))
        if covered is not None:  # skip the slots an earlier block already filled
            i0 = max(i0, _ceil((covered - first) / period - Fraction(1, 2)))
        i1 = min(len(values), _ceil((to_ns - first) / period))
        if i1 <= i0:
            continue
        t0 = first + i0 * period
        missing = math.floor((t0 - from_ns) / period) if covered is None else round((t0 - covered) / period)
        if missing >= 1:
            begin = from_ns if covered is None else covered
            gaps.append(Gap(math.floor(begin), math.floor(t0), len(samples), missing))
        if start_ns is None:
            start_ns = math.floor(t0)
        samples.extend(values[i0:i1])
        covered = first + i1 * period
    if covered is None:
        gaps.append(Gap(from_ns, to_ns, 0, _ceil((to_ns - from_ns) / period) if rate else 0))
    elif covered < to_ns:
        gaps.append(Gap(math.floor(covered), to_ns, len(samples), _ceil((to_ns - covered) / period)))
    return Strip(device, rate, start_ns, samples, gaps)


@strawberry.type
class EcgGap:
    start: datetime | None
    end: datetime | None
    after_sample: int = strawberry.field(description="how many samples of the strip come before the gap")
    missing_samples: int


@strawberry.type
class EcgStrip:
    user_id: strawberry.ID
    lead: str | None = strawberry.field(description="the wearable (device id) whose ECG this is")
    sample_rate_hz: float
    unit: str
    start: datetime | None = strawberry.field(description="the device time of the first sample")
    samples: list[float]
    gaps: list[EcgGap]


@strawberry.type
class EcgQuery:
    @field("Raw ECG of one patient in physical units (µV), trimmed to [from, to) (at most 5 minutes), "
           "with its gaps; ECG is kept for the processor's retention period.")
    async def ecg_strip(self, info: Info[Any, Any], user_id: strawberry.ID,
                        from_: Annotated[datetime, strawberry.argument(name="from")], to: datetime,
                        lead: str | None = None) -> EcgStrip:
        start, end = time_ns(from_), time_ns(to)
        if not 0 < end - start <= MAX_RANGE_NS:
            raise bad_input("the range must run forwards and span at most 5 minutes")
        await patient_access(info, str(user_id), "ecgStrip")
        blocks = await asyncio.to_thread(context_of(info).services.data.ecg_blocks, str(user_id), start, end)
        strip = assemble(blocks, start, end, lead)
        return EcgStrip(user_id=user_id, lead=strip.lead, sample_rate_hz=strip.sample_rate_hz, unit="uV",
                        start=ns_time(strip.start_ns), samples=strip.samples,
                        gaps=[EcgGap(start=ns_time(g.start_ns), end=ns_time(g.end_ns), after_sample=g.after_sample,
                                     missing_samples=g.missing_samples) for g in strip.gaps])
