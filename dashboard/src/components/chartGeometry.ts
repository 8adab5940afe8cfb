/** Scales, paths and ticks for the small SVG charts. */

export type Point = readonly [x: number, y: number | null];

export function linearScale(domain: readonly [number, number], range: readonly [number, number]) {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  const span = d1 - d0 || 1;
  return (value: number) => r0 + ((value - d0) / span) * (r1 - r0);
}

/** An SVG path through the points; a null value lifts the pen, so gaps in the data stay gaps. */
export function linePath(points: readonly Point[], x: (v: number) => number, y: (v: number) => number): string {
  let d = '';
  let penDown = false;
  for (const [px, py] of points) {
    if (py === null || !Number.isFinite(py)) {
      penDown = false;
      continue;
    }
    d += `${penDown ? 'L' : 'M'}${x(px).toFixed(1)},${y(py).toFixed(1)}`;
    penDown = true;
  }
  return d;
}

/** Points with no value on either side: a line cannot show them, so the chart marks them with a dot. */
export function isolatedPoints(points: readonly Point[]): Array<[number, number]> {
  const present = (p: Point | undefined) => p !== undefined && p[1] !== null && Number.isFinite(p[1]);
  const lone: Array<[number, number]> = [];
  points.forEach((p, i) => {
    if (present(p) && !present(points[i - 1]) && !present(points[i + 1])) lone.push([p[0], p[1] as number]);
  });
  return lone;
}

/** The polyline of a sparkline of `values` (oldest first) in a box, on a fixed [min, max] scale. */
export function sparklinePoints(values: readonly number[], width: number, height: number, min = 0, max = 1): string {
  if (values.length === 0) return '';
  const x = linearScale([0, Math.max(1, values.length - 1)], [0, width]);
  const y = linearScale([min, max], [height, 0]);
  return values
    .map((v, i) => `${x(i).toFixed(1)},${y(Math.min(max, Math.max(min, v))).toFixed(1)}`)
    .join(' ');
}

/** At least `count` round tick values within [min, max] (steps of 1, 2 or 5 times a power of ten). */
export function niceTicks(min: number, max: number, count = 4): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min === max) return [min];
  const raw = (max - min) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [5, 2, 1].map((m) => m * power).find((s) => s <= raw) ?? power;
  const ticks: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toFixed(10)));
  return ticks;
}

/** The [min, max] of the values present, padded so a flat line is not drawn on the frame. */
export function extent(values: readonly (number | null)[], pad = 0.05): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v === null || !Number.isFinite(v)) continue;
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  if (lo === Infinity) return null;
  const margin = hi === lo ? Math.max(1, Math.abs(hi) * 0.05) : (hi - lo) * pad;
  return [lo - margin, hi + margin];
}

const MINUTE_MS = 60_000;
const TIME_STEPS_MS = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720].map((m) => m * MINUTE_MS);

/** Round clock times within [fromMs, toMs]: the smallest step from 1 min to 12 h giving at most `count` + 1 ticks. */
export function timeTicks(fromMs: number, toMs: number, count = 4): number[] {
  if (!(toMs > fromMs)) return [];
  const wanted = (toMs - fromMs) / Math.max(1, count);
  const step = TIME_STEPS_MS.find((s) => s >= wanted) ?? TIME_STEPS_MS[TIME_STEPS_MS.length - 1]!;
  const ticks: number[] = [];
  for (let t = Math.ceil(fromMs / step) * step; t <= toMs; t += step) ticks.push(t);
  return ticks;
}
