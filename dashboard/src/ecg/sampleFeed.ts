/**
 * A queue of ECG samples between the live socket (blocks of ~0.5-1 s) and the display (a few
 * samples per animation frame). Missing time becomes NaN samples, so the trace shows a gap
 * instead of joining two distant beats; samples already queued for the same time are dropped.
 */

export interface EcgBlock {
  deviceId: string;
  sampleRateHz: number;
  /** Epoch milliseconds of the first sample. */
  t0Ms: number;
  samples: ArrayLike<number>;
}

/** A gap longer than this restarts the trace instead of filling it with blank samples. */
export const MAX_FILLED_GAP_S = 5;

export class SampleFeed {
  private buffer: Float32Array;
  private head = 0; // index of the oldest queued sample
  private count = 0;
  private nextTimeMs: number | null = null;
  private source: string | null = null;
  /** Bumped whenever the stream restarts (new device, new rate, long gap), so the display can break its line. */
  generation = 0;
  sampleRateHz: number;
  /** The most samples one block has brought: the display keeps more than this queued to bridge the wait for the next. */
  largestBlock = 0;

  constructor(sampleRateHz = 250, capacitySeconds = 30) {
    this.sampleRateHz = sampleRateHz;
    this.buffer = new Float32Array(Math.round(sampleRateHz * capacitySeconds));
  }

  get length(): number {
    return this.count;
  }

  get capacity(): number {
    return this.buffer.length;
  }

  private restart(block: EcgBlock): void {
    if (block.sampleRateHz !== this.sampleRateHz) {
      const seconds = this.buffer.length / this.sampleRateHz;
      this.sampleRateHz = block.sampleRateHz;
      this.buffer = new Float32Array(Math.round(block.sampleRateHz * seconds));
    }
    this.head = 0;
    this.count = 0;
    this.source = block.deviceId;
    this.largestBlock = 0;
    this.generation += 1;
  }

  private pushValue(value: number): void {
    if (this.count === this.buffer.length) {
      // Full: the display has fallen far behind; the oldest sample goes.
      this.head = (this.head + 1) % this.buffer.length;
      this.count -= 1;
    }
    this.buffer[(this.head + this.count) % this.buffer.length] = value;
    this.count += 1;
  }

  push(block: EcgBlock): void {
    const rate = block.sampleRateHz;
    if (!(rate > 0) || block.samples.length === 0) return;
    const periodMs = 1000 / rate;
    let skip = 0;
    if (this.source !== block.deviceId || rate !== this.sampleRateHz || this.nextTimeMs === null) {
      this.restart(block);
    } else {
      const offset = Math.round((block.t0Ms - this.nextTimeMs) / periodMs);
      if (offset > MAX_FILLED_GAP_S * rate || offset < -MAX_FILLED_GAP_S * rate) {
        this.restart(block);
      } else if (offset > 1) {
        for (let i = 0; i < offset; i++) this.pushValue(NaN);
      } else if (offset < 0) {
        skip = Math.min(-offset, block.samples.length); // already queued or drawn
      }
    }
    this.largestBlock = Math.max(this.largestBlock, block.samples.length);
    for (let i = skip; i < block.samples.length; i++) this.pushValue(block.samples[i]!);
    const end = block.t0Ms + block.samples.length * periodMs;
    this.nextTimeMs = this.nextTimeMs === null || skip === 0 ? end : Math.max(this.nextTimeMs, end);
  }

  /** Moves up to `n` of the oldest samples into `out` (from index 0); returns how many. */
  take(n: number, out: Float32Array): number {
    const taken = Math.min(n, this.count, out.length);
    for (let i = 0; i < taken; i++) out[i] = this.buffer[(this.head + i) % this.buffer.length]!;
    this.discard(taken);
    return taken;
  }

  discard(n: number): void {
    const dropped = Math.min(n, this.count);
    this.head = (this.head + dropped) % this.buffer.length;
    this.count -= dropped;
  }

  clear(): void {
    this.head = 0;
    this.count = 0;
    this.nextTimeMs = null;
    this.source = null;
    this.generation += 1;
  }
}

export interface PlayoutState {
  playing: boolean;
  /** Fraction of a sample owed from earlier frames. */
  carry: number;
}

export interface PlayoutStep {
  draw: number;
  skip: number;
  state: PlayoutState;
}

export interface PlayoutLimits {
  /** Queued samples needed before drawing starts (covers the wait for the next block). */
  startSamples: number;
  /** More than this many queued samples and the oldest are skipped to catch up. */
  maxLagSamples: number;
}

/**
 * How many queued samples a frame `elapsedMs` after the last one should draw, at the real rate.
 * Drawing waits for a buffer of `startSamples`, pauses when the queue runs dry, and skips ahead
 * when the queue grows past `maxLagSamples` (after a hidden tab or a burst of blocks).
 */
export function playout(
  queued: number,
  elapsedMs: number,
  sampleRateHz: number,
  state: PlayoutState,
  limits: PlayoutLimits,
): PlayoutStep {
  let playing = state.playing;
  if (!playing) {
    if (queued < limits.startSamples) return { draw: 0, skip: 0, state: { playing: false, carry: 0 } };
    playing = true;
  }
  const due = state.carry + (Math.max(0, elapsedMs) * sampleRateHz) / 1000;
  let draw = Math.floor(due);
  let carry = due - draw;
  const skip = Math.max(0, queued - draw - limits.maxLagSamples);
  const available = queued - skip;
  if (draw >= available) {
    draw = available;
    carry = 0;
    playing = false; // dry: wait for the start buffer again rather than drawing in stutters
  }
  return { draw, skip, state: { playing, carry } };
}
