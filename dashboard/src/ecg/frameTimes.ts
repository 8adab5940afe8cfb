/** Per-frame ECG draw durations, readable by a benchmark as `window.__ecgFrameTimes`. */

export const FRAME_TIMES_KEPT = 2000;

declare global {
  interface Window {
    __ecgFrameTimes?: number[];
  }
}

/** Appends `value`, dropping the oldest entries beyond `cap` (in batches, so appending stays cheap). */
export function appendCapped(list: number[], value: number, cap: number): void {
  list.push(value);
  if (list.length > cap) list.splice(0, list.length - cap);
}

export function recordFrameTime(durationMs: number): void {
  const list = (window.__ecgFrameTimes ??= []);
  appendCapped(list, durationMs, FRAME_TIMES_KEPT);
}

/** The p-th percentile (0..100) by nearest rank, or null for no data. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}
