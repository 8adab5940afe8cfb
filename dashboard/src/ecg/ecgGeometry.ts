/**
 * Paper-chart geometry of an ECG display: 25 mm/s, 10 mm/mV, a 1 mm minor and 5 mm major grid,
 * and the sweep position of each sample. All lengths are in the caller's pixels (CSS or device).
 */

export const PAPER_SPEED_MM_PER_S = 25;
export const GAIN_MM_PER_MV = 10;
export const MAJOR_EVERY_MM = 5;
export const DEFAULT_PX_PER_MM = 4;
export const SWEEP_SECONDS = 10;

/** Horizontal offset of a sample `tS` seconds into the sweep. */
export function timeToX(tS: number, pxPerMm: number): number {
  return tS * PAPER_SPEED_MM_PER_S * pxPerMm;
}

/** Vertical position of a sample in microvolts; positive voltages go up from the baseline. */
export function microvoltsToY(microvolts: number, baselineY: number, pxPerMm: number): number {
  return baselineY - (microvolts / 1000) * GAIN_MM_PER_MV * pxPerMm;
}

export function pxPerSample(sampleRateHz: number, pxPerMm: number): number {
  return (PAPER_SPEED_MM_PER_S * pxPerMm) / sampleRateHz;
}

export function samplesPerSweep(sampleRateHz: number, seconds: number = SWEEP_SECONDS): number {
  return Math.round(sampleRateHz * seconds);
}

export function sweepWidthPx(pxPerMm: number, seconds: number = SWEEP_SECONDS): number {
  return seconds * PAPER_SPEED_MM_PER_S * pxPerMm;
}

/** Where the `sampleNumber`-th sample of a stream lands in a sweep of `perSweep` samples (wraps to 0). */
export function sweepIndex(sampleNumber: number, perSweep: number): number {
  return ((sampleNumber % perSweep) + perSweep) % perSweep;
}

export function sweepX(sampleNumber: number, perSweep: number, sampleRateHz: number, pxPerMm: number): number {
  return sweepIndex(sampleNumber, perSweep) * pxPerSample(sampleRateHz, pxPerMm);
}

export interface GridLines {
  /** Every millimetre that is not a major line. */
  minor: number[];
  /** Every fifth millimetre, starting at 0. */
  major: number[];
}

/** Grid line positions from 0 to `lengthPx` inclusive. */
export function gridLines(lengthPx: number, pxPerMm: number): GridLines {
  const minor: number[] = [];
  const major: number[] = [];
  const lastMm = Math.floor(lengthPx / pxPerMm + 1e-9);
  for (let mm = 0; mm <= lastMm; mm++) {
    (mm % MAJOR_EVERY_MM === 0 ? major : minor).push(mm * pxPerMm);
  }
  return { minor, major };
}

/**
 * Pixels per millimetre for a strip `cssWidth` wide that shows `seconds` of ECG: the preferred
 * scale when it fits, else the largest that does (never under `minPxPerMm`, so a narrow screen scrolls).
 */
export function choosePxPerMm(
  cssWidth: number,
  seconds: number = SWEEP_SECONDS,
  preferred: number = DEFAULT_PX_PER_MM,
  minPxPerMm = 1.5,
): number {
  if (!(cssWidth > 0)) return preferred;
  const fitting = cssWidth / (seconds * PAPER_SPEED_MM_PER_S);
  return Math.max(minPxPerMm, Math.min(preferred, fitting));
}

/** A span [from, to) of a sweep `width` wide, split in two where it runs past the right edge. */
export function wrapSpan(from: number, to: number, width: number): Array<[number, number]> {
  if (to - from >= width) return [[0, width]];
  const start = ((from % width) + width) % width;
  const end = start + (to - from);
  return end <= width ? [[start, end]] : [[start, width], [0, end - width]];
}
