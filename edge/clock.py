"""A wearable's clock against the gateway's: offset, drift, correction and jumps.

Wearables stamp samples with their own crystal, which drifts (tens of ppm) and is
sometimes set by hand or resynchronised (a jump). Each timestamped notification gives
one observation ``device_time - receive_time``: the true offset plus a positive
transport delay. The smallest observation per bucket is the best estimate of the offset
at that moment (minimum-delay filter); a least-squares line through the last few bucket
minima gives the drift. Corrected time = device time mapped onto the gateway's clock,
so samples from many wearables can be compared with each other and with the gateway's
NTP-disciplined wall clock. Pure: times go in as integers in ns.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class ClockEstimate:
    """device_time - gateway_time = offset_ns + skew_ppm * 1e-6 * (gateway_time - reference_ns)."""

    offset_ns: int
    skew_ppm: float
    reference_ns: int

    def offset_at(self, gateway_ns: int) -> int:
        return self.offset_ns + round(self.skew_ppm * 1e-6 * (gateway_ns - self.reference_ns))

    def to_gateway_time(self, device_ns: int) -> int:
        """Map a device timestamp onto the gateway clock (one fixed-point step is exact to < 1 ns here)."""
        approx = device_ns - self.offset_ns
        return device_ns - self.offset_at(approx)


class ClockTracker:
    """Estimates one wearable's offset and drift from its timestamped notifications."""

    def __init__(self, bucket_s: float = 10.0, buckets: int = 30, min_span_s: float = 60.0) -> None:
        self._bucket_ns = round(bucket_s * _NS)
        self._minima: deque[tuple[int, int]] = deque(maxlen=buckets)  # (receive_ns, offset_ns)
        self._min_span_ns = round(min_span_s * _NS)
        self._estimate: ClockEstimate | None = None

    @property
    def estimate(self) -> ClockEstimate | None:
        return self._estimate

    def observe(self, device_ns: int, receive_ns: int) -> None:
        """One notification: the device time of its newest sample and when it arrived."""
        offset = device_ns - receive_ns
        bucket = receive_ns // self._bucket_ns
        if self._minima and self._minima[-1][0] // self._bucket_ns == bucket:
            if offset > self._minima[-1][1]:
                self._minima[-1] = (receive_ns, offset)
            else:
                return
        else:
            self._minima.append((receive_ns, offset))
        self._estimate = self._fit()

    def reset(self) -> None:
        """Forget everything (after a clock jump the old observations describe another clock)."""
        self._minima.clear()
        self._estimate = None

    def _fit(self) -> ClockEstimate:
        # The offset observation is device - receive = true offset - delay, so the largest
        # value in a bucket carries the least delay.
        points = list(self._minima)
        ref_t, ref_o = points[-1]
        if len(points) < 3 or points[-1][0] - points[0][0] < self._min_span_ns:
            return ClockEstimate(ref_o, 0.0, ref_t)
        xs = [(t - ref_t) / _NS for t, _ in points]
        ys = [float(o - ref_o) for _, o in points]
        n = len(xs)
        mx, my = sum(xs) / n, sum(ys) / n
        sxx = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
        # Fit a line through the upper envelope: shift it so no minimum lies above it.
        intercept = max(y - slope * x for x, y in zip(xs, ys, strict=True))
        return ClockEstimate(ref_o + round(intercept), slope / 1e3, ref_t)  # slope in ns/s = ppm * 1e3


def is_clock_jump(expected_device_ns: int, observed_device_ns: int, elapsed_ns: int,
                  tolerance_s: float = 0.5, max_drift_ppm: float = 500.0) -> bool:
    """True when a continuous stream's timestamp moved more than drift can explain.

    ``expected`` is where the previous packet's time base says this packet starts,
    ``elapsed`` the gateway time between the two packets.
    """
    allowed = tolerance_s * _NS + max_drift_ppm * 1e-6 * abs(elapsed_ns)
    return abs(observed_device_ns - expected_device_ns) > allowed
