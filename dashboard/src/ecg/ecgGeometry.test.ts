import { describe, expect, it } from 'vitest';
import {
  choosePxPerMm,
  gridLines,
  microvoltsToY,
  pxPerSample,
  samplesPerSweep,
  sweepIndex,
  sweepWidthPx,
  sweepX,
  timeToX,
  wrapSpan,
} from './ecgGeometry';

describe('sample to pixel mapping', () => {
  it('moves 25 mm per second', () => {
    expect(timeToX(1, 4)).toBe(100);
    expect(timeToX(0.2, 4)).toBeCloseTo(20, 10);
    expect(timeToX(10, 3)).toBe(750);
  });

  it('draws 10 mm per millivolt above the baseline', () => {
    expect(microvoltsToY(0, 80, 4)).toBe(80);
    expect(microvoltsToY(1000, 80, 4)).toBe(40);
    expect(microvoltsToY(-500, 80, 4)).toBe(100);
    expect(microvoltsToY(250, 100, 2)).toBe(95);
  });

  it('spaces 250 Hz samples 0.4 px apart at 4 px/mm', () => {
    expect(pxPerSample(250, 4)).toBeCloseTo(0.4, 12);
    expect(pxPerSample(500, 8)).toBeCloseTo(0.4, 12);
    expect(samplesPerSweep(250)).toBe(2500);
    expect(sweepWidthPx(4)).toBe(1000);
  });
});

describe('sweep position', () => {
  it('wraps to the left edge after ten seconds', () => {
    expect(sweepIndex(0, 2500)).toBe(0);
    expect(sweepIndex(2499, 2500)).toBe(2499);
    expect(sweepIndex(2500, 2500)).toBe(0);
    expect(sweepIndex(7503, 2500)).toBe(3);
    expect(sweepIndex(-1, 2500)).toBe(2499);
  });

  it('places a sample by its index in the sweep', () => {
    expect(sweepX(250, 2500, 250, 4)).toBeCloseTo(100, 9);
    expect(sweepX(2750, 2500, 250, 4)).toBeCloseTo(100, 9);
    expect(sweepX(2499, 2500, 250, 4)).toBeCloseTo(999.6, 9);
  });

  it('splits a span that runs past the right edge', () => {
    expect(wrapSpan(10, 30, 100)).toEqual([[10, 30]]);
    expect(wrapSpan(90, 110, 100)).toEqual([[90, 100], [0, 10]]);
    expect(wrapSpan(190, 200, 100)).toEqual([[90, 100]]);
    expect(wrapSpan(5, 500, 100)).toEqual([[0, 100]]);
  });
});

describe('gridLines', () => {
  it('puts a minor line every millimetre and a major one every fifth', () => {
    const grid = gridLines(48, 4); // 12 mm
    expect(grid.major).toEqual([0, 20, 40]);
    expect(grid.minor).toEqual([4, 8, 12, 16, 24, 28, 32, 36, 44, 48]);
  });

  it('covers a full 10 s sweep with 51 major lines', () => {
    const grid = gridLines(1000, 4);
    expect(grid.major.length).toBe(51);
    expect(grid.minor.length).toBe(200);
    expect(grid.major[50]).toBe(1000);
  });
});

describe('choosePxPerMm', () => {
  it('keeps 4 px/mm when ten seconds fit', () => {
    expect(choosePxPerMm(1200)).toBe(4);
    expect(choosePxPerMm(0)).toBe(4);
  });

  it('shrinks to fit a narrower strip, down to a floor', () => {
    expect(choosePxPerMm(750)).toBe(3);
    expect(choosePxPerMm(100)).toBe(1.5);
  });
});
