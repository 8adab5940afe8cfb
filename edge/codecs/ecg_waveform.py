"""cardiogate ECG Waveform characteristic: our own format for watches without a vendor stream.

The full specification is docs/ecg-waveform-spec.md. Layout (little-endian):

  offset size field
  0      1    version (1)
  1      1    flags: bit0 lead off; other bits reserved (0)
  2      4    sequence number (uint32, +1 per notification, wraps at 2**32)
  6      8    first-sample device time, microseconds since the UNIX epoch (uint64)
  14     2    sample rate, Hz (uint16, > 0)
  16     2    resolution, nanovolts per LSB (uint16, > 0)
  18     2*n  n samples, int16, n >= 1
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cardiogate.edge.codecs.errors import DecodeError

ECG_SERVICE_UUID = "c4d10001-7a1b-4c8e-9f2d-2a6b0c9e5e01"
ECG_WAVEFORM_UUID = "c4d10002-7a1b-4c8e-9f2d-2a6b0c9e5e01"

VERSION = 1
HEADER = struct.Struct("<BBIQHH")
HEADER_SIZE = HEADER.size  # 18
FLAG_LEAD_OFF = 0x01
MAX_SAMPLES = 256


@dataclass(frozen=True, slots=True)
class EcgPacket:
    """One notification's worth of contiguous ECG samples."""

    sequence: int
    first_sample_time_us: int
    sample_rate_hz: int
    resolution_nv: int
    samples: npt.NDArray[np.int16]
    lead_off: bool = False

    @property
    def scale_uv(self) -> float:
        """Microvolts per LSB."""
        return self.resolution_nv / 1000.0


def samples_per_packet(att_mtu: int) -> int:
    """How many samples fit one notification at the negotiated ATT MTU (3-byte ATT header)."""
    return max(1, min(MAX_SAMPLES, (att_mtu - 3 - HEADER_SIZE) // 2))


def encode_ecg_packet(p: EcgPacket) -> bytes:
    """Encode a packet (used by the simulator)."""
    n = len(p.samples)
    if not 1 <= n <= MAX_SAMPLES:
        raise ValueError(f"an ECG packet carries 1..{MAX_SAMPLES} samples, not {n}")
    flags = FLAG_LEAD_OFF if p.lead_off else 0
    head = HEADER.pack(VERSION, flags, p.sequence & 0xFFFFFFFF, p.first_sample_time_us,
                       p.sample_rate_hz, p.resolution_nv)
    return head + np.asarray(p.samples, dtype="<i2").tobytes()


def decode_ecg_packet(data: bytes | bytearray) -> EcgPacket:
    """Decode a notification or raise DecodeError."""
    raw = bytes(data)
    if len(raw) < HEADER_SIZE + 2:
        raise DecodeError(f"ECG packet too short: {len(raw)} bytes")
    body = len(raw) - HEADER_SIZE
    if body % 2:
        raise DecodeError(f"ECG packet has an odd sample payload of {body} bytes")
    version, flags, seq, t0, fs, res = HEADER.unpack_from(raw, 0)
    if version != VERSION:
        raise DecodeError(f"ECG packet version {version} is not supported")
    if flags & ~FLAG_LEAD_OFF:
        raise DecodeError(f"ECG packet uses reserved flag bits: 0x{flags:02x}")
    if fs == 0 or res == 0:
        raise DecodeError("ECG packet has a zero sample rate or resolution")
    if body // 2 > MAX_SAMPLES:
        raise DecodeError(f"ECG packet carries {body // 2} samples, more than {MAX_SAMPLES}")
    samples = np.frombuffer(raw, dtype="<i2", offset=HEADER_SIZE).astype(np.int16)
    return EcgPacket(seq, t0, fs, res, samples, bool(flags & FLAG_LEAD_OFF))
