"""ECG frames in, sample blocks and exact gap records out.

Wearables send a few dozen to a few hundred samples per notification. The gateway
packs consecutive frames into blocks for the uplink and accounts for every sample
that did not arrive: a frame whose sequence number (our ECG watch) or timestamp
(Polar straps have no counter) does not follow the previous one closes the block
and yields a :class:`pb.Gap` with the exact device-time bounds and sample count.
A timestamp that moves more than drift can explain on a contiguous stream is a
clock jump, reported as such. Pure: no clock is read here.

Continuity survives a gateway restart: :attr:`EcgAssembler.tail` says how far the
output so far accounts for the stream (samples in emitted blocks, losses in emitted
gaps); the caller stores it atomically with that output, and a new assembler resumes
from it (:meth:`EcgAssembler.resume`), so the first frame after the restart yields an
exact gap that continues the last stored block or gap, as a link loss in one run would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cardiogate.edge.clock import is_clock_jump
from cardiogate.proto.v1 import telemetry_pb2 as pb

_NS = 1_000_000_000
_SEQ_MOD = 1 << 32


@dataclass(frozen=True, slots=True)
class EcgFrame:
    """One notification's samples, whatever the wearable's format."""

    first_sample_ns: int          # device time of the first sample
    sample_rate_hz: float
    scale_uv: float               # microvolts per LSB
    samples: npt.NDArray[np.int32]
    sequence: int | None = None   # the wearable's packet counter, if it has one
    receive_ns: int = 0

    @property
    def end_ns(self) -> int:
        """Device time just after the last sample (where the next frame should start)."""
        return self.first_sample_ns + round(len(self.samples) * _NS / self.sample_rate_hz)


@dataclass(frozen=True, slots=True)
class EcgTail:
    """How far a stream is accounted for, as a frame that continuity checks can compare the next one with.

    Persisted with the output that accounts for it (same transaction), it is where the stream
    stood when the gateway stopped: the next gap starts at packet ``seq + 1`` and at ``end_ns``.
    """

    seq: int | None        # the last packet accounted for; None for wearables without a counter (Polar)
    end_ns: int            # device time just after it
    receive_ns: int        # gateway time matching ``end_ns`` (a frame arrives just after its last sample)
    sample_rate_hz: float

    @classmethod
    def of(cls, frame: EcgFrame) -> EcgTail:
        """Up to and including ``frame`` (its samples were emitted in a block)."""
        return cls(frame.sequence, frame.end_ns, frame.receive_ns, frame.sample_rate_hz)

    @classmethod
    def before(cls, frame: EcgFrame) -> EcgTail:
        """Up to just before ``frame`` (a gap or clock-jump record reported what preceded it).

        A restart gap then starts where that record ended instead of covering it again.
        """
        seq = (frame.sequence - 1) % _SEQ_MOD if frame.sequence is not None else None
        duration = frame.end_ns - frame.first_sample_ns
        return cls(seq, frame.first_sample_ns, frame.receive_ns - duration, frame.sample_rate_hz)


_EMPTY = np.zeros(0, dtype=np.int32)


@dataclass
class _Block:
    first_ns: int
    receive_ns: int
    sample_rate_hz: float
    scale_uv: float
    seq_first: int
    seq_last: int
    wide: bool
    last: EcgFrame
    chunks: list[npt.NDArray[np.int32]] = field(default_factory=list)
    count: int = 0


@dataclass(frozen=True, slots=True)
class AssemblerOutput:
    blocks: list[pb.SampleBlock]
    events: list[pb.DeviceEvent]


class EcgAssembler:
    """Blocks of ``block_samples`` samples per stream, with gaps and jumps accounted for."""

    def __init__(self, block_samples: int = 250, jump_tolerance_s: float = 0.5) -> None:
        self._block_samples = block_samples
        self._jump_tolerance_s = jump_tolerance_s
        self._block: _Block | None = None
        self._last: EcgFrame | None = None
        self._resumed = False
        self.tail: EcgTail | None = None
        """How far the blocks and events returned so far account for the stream (what a restart resumes from)."""
        self.gaps = 0
        self.missing_samples = 0
        self.clock_jumps = 0

    def resume(self, tail: EcgTail) -> None:
        """Continue a stream a previous gateway process stored, before the first :meth:`push`.

        Samples that process had but never stored (its open block) and those sent while no
        gateway listened are then reported by one exact gap (cause ``GATEWAY_RESTART``).
        """
        self._last = EcgFrame(tail.end_ns, tail.sample_rate_hz, 0.0, _EMPTY, tail.seq, tail.receive_ns)
        self._resumed = True
        self.tail = tail

    def push(self, frame: EcgFrame) -> AssemblerOutput:
        blocks: list[pb.SampleBlock] = []
        events: list[pb.DeviceEvent] = []
        last = self._last
        if last is not None:
            discontinuity = self._check_continuity(last, frame, events)
            if discontinuity:
                blocks += self.flush()
                self.tail = EcgTail.before(frame)
        self._resumed = False
        b = self._block
        wide = bool(frame.samples.size) and (int(frame.samples.min()) < -32768 or int(frame.samples.max()) > 32767)
        if b is not None and (b.sample_rate_hz != frame.sample_rate_hz or b.scale_uv != frame.scale_uv
                              or (wide and not b.wide)):
            blocks += self.flush()
            b = None
        if b is None:
            seq = frame.sequence if frame.sequence is not None else 0
            b = self._block = _Block(frame.first_sample_ns, frame.receive_ns, frame.sample_rate_hz, frame.scale_uv,
                                     seq, seq, wide, frame)
        b.chunks.append(frame.samples)
        b.count += len(frame.samples)
        b.last = frame
        if frame.sequence is not None:
            b.seq_last = frame.sequence
        self._last = frame
        if b.count >= self._block_samples:
            blocks += self.flush()
        return AssemblerOutput(blocks, events)

    def _check_continuity(self, last: EcgFrame, frame: EcgFrame, events: list[pb.DeviceEvent]) -> bool:
        """Emit gap/jump events between ``last`` and ``frame``; True when the block must close.

        A frame is received just after its last sample, so the device clock and the gateway
        clock advance alike from one frame's end to the next's unless the device clock jumped.
        Ends, not starts: a resumed ``last`` is only an end (its samples are not known).
        """
        expected_ns = last.end_ns
        elapsed_ns = frame.receive_ns - last.receive_ns
        loss = pb.GAP_CAUSE_GATEWAY_RESTART if self._resumed else pb.GAP_CAUSE_LINK_LOSS
        clocks_disagree = is_clock_jump(last.end_ns + elapsed_ns, frame.end_ns, elapsed_ns, self._jump_tolerance_s)
        if frame.sequence is not None and last.sequence is not None:
            missing_packets = (frame.sequence - last.sequence - 1) % _SEQ_MOD
            if missing_packets >= _SEQ_MOD // 2:  # went backwards: a restart or a replayed packet
                events.append(self._gap(last, frame, pb.GAP_CAUSE_DEVICE_RESTART, 0))
                return True
            if missing_packets == 0:
                if is_clock_jump(expected_ns, frame.first_sample_ns, elapsed_ns, self._jump_tolerance_s):
                    events.append(self._jump(expected_ns, frame))
                    return True
                return False
            missing = round((frame.first_sample_ns - expected_ns) * frame.sample_rate_hz / _NS)
            per_packet = max(len(frame.samples), len(last.samples))
            if clocks_disagree and not (missing >= 0 and abs(missing - missing_packets * per_packet) <= per_packet):
                # The device time cannot size the gap (it jumped: the counter disagrees with it too);
                # the gateway clock can, roughly. When the counter agrees with the device time, it was
                # the gateway's receive times that moved (a stalled host delivers late), not the watch.
                events.append(self._jump(expected_ns, frame))
                estimate = max(0, round(elapsed_ns * frame.sample_rate_hz / _NS) - len(frame.samples))
                events.append(self._gap(last, frame, loss, estimate, missing_packets))
                return True
            events.append(self._gap(last, frame, loss, max(0, missing), missing_packets))
            return True
        # No counter (Polar): the time base alone tells continuity.
        delta = frame.first_sample_ns - expected_ns
        period = _NS / frame.sample_rate_hz
        if abs(delta) <= period / 2:
            return False
        if delta < 0 or clocks_disagree:
            events.append(self._jump(expected_ns, frame))
            return True
        events.append(self._gap(last, frame, loss, round(delta / period), 0))
        return True

    def _gap(self, last: EcgFrame, frame: EcgFrame, cause: pb.GapCause.ValueType, missing: int,
             packets: int = 0) -> pb.DeviceEvent:
        self.gaps += 1
        self.missing_samples += missing
        seq_first = (last.sequence + 1) % _SEQ_MOD if last.sequence is not None else 0
        seq_last = (seq_first + packets - 1) % _SEQ_MOD if packets else seq_first
        gap = pb.Gap(stream=pb.STREAM_KIND_ECG, device_sequence_first=seq_first, device_sequence_last=seq_last,
                     start_device_time_ns=last.end_ns, end_device_time_ns=max(last.end_ns, frame.first_sample_ns),
                     missing_samples=missing, cause=cause, sample_rate_hz=frame.sample_rate_hz)
        return pb.DeviceEvent(device_time_ns=frame.first_sample_ns, receive_time_ns=frame.receive_ns, gap=gap)

    def _jump(self, expected_ns: int, frame: EcgFrame) -> pb.DeviceEvent:
        self.clock_jumps += 1
        jump = pb.ClockJump(expected_device_time_ns=expected_ns, observed_device_time_ns=frame.first_sample_ns)
        return pb.DeviceEvent(device_time_ns=frame.first_sample_ns, receive_time_ns=frame.receive_ns,
                              clock_jump=jump)

    def flush(self) -> list[pb.SampleBlock]:
        """Close the open block (when full, on a discontinuity, at disconnect and shutdown)."""
        b, self._block = self._block, None
        if b is None or b.count == 0:
            return []
        self.tail = EcgTail.of(b.last)
        data = np.concatenate(b.chunks)
        encoding = pb.SAMPLE_ENCODING_INT32_LE if b.wide else pb.SAMPLE_ENCODING_INT16_LE
        raw = data.astype("<i4" if b.wide else "<i2").tobytes()
        return [pb.SampleBlock(
            first_sample_device_time_ns=b.first_ns, receive_time_ns=b.receive_ns, sample_rate_hz=b.sample_rate_hz,
            scale=b.scale_uv, unit="uV", encoding=encoding, samples=raw, sample_count=b.count,
            device_sequence_first=b.seq_first, device_sequence_last=b.seq_last)]
