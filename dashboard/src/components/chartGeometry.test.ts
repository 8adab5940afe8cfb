import { describe, expect, it } from 'vitest';
import { extent, isolatedPoints, linearScale, linePath, niceTicks, sparklinePoints, timeTicks } from './chartGeometry';

describe('linearScale', () => {
  it('maps the domain onto the range', () => {
    const y = linearScale([0, 100], [200, 0]);
    expect(y(0)).toBe(200);
    expect(y(25)).toBe(150);
    expect(y(100)).toBe(0);
  });
});

describe('linePath', () => {
  it('breaks the line at missing values', () => {
    const id = (v: number) => v;
    expect(linePath([[0, 1], [1, 2], [2, null], [3, 4], [4, 5]], id, id)).toBe('M0.0,1.0L1.0,2.0M3.0,4.0L4.0,5.0');
    expect(linePath([], id, id)).toBe('');
  });
});

describe('sparklinePoints', () => {
  it('spreads the values over the width on a 0..1 scale', () => {
    expect(sparklinePoints([0, 0.5, 1], 60, 20)).toBe('0.0,20.0 30.0,10.0 60.0,0.0');
    expect(sparklinePoints([2], 60, 20)).toBe('0.0,0.0');
    expect(sparklinePoints([], 60, 20)).toBe('');
  });
});

describe('niceTicks', () => {
  it('chooses round steps', () => {
    expect(niceTicks(61, 118, 4)).toEqual([70, 80, 90, 100, 110]);
    expect(niceTicks(0, 1, 4)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(88, 100, 4)).toEqual([88, 90, 92, 94, 96, 98, 100]);
    expect(niceTicks(5, 5)).toEqual([5]);
  });
});

describe('extent', () => {
  it('pads the range and skips gaps', () => {
    expect(extent([10, null, 20])).toEqual([9.5, 20.5]);
    expect(extent([50, 50])).toEqual([47.5, 52.5]);
    expect(extent([null])).toBeNull();
  });
});

describe('timeTicks', () => {
  it('puts ticks on round clock times', () => {
    const from = Date.parse('2026-12-04T07:03:20Z');
    const to = Date.parse('2026-12-04T08:03:20Z');
    expect(timeTicks(from, to, 4).map((t) => new Date(t).toISOString().slice(11, 16))).toEqual(['07:15', '07:30', '07:45', '08:00']);
    const day = timeTicks(to - 86_400_000, to, 4);
    expect(day.map((t) => new Date(t).toISOString().slice(11, 16))).toEqual(['12:00', '18:00', '00:00', '06:00']);
    expect(timeTicks(5, 5)).toEqual([]);
  });
});

describe('isolatedPoints', () => {
  it('finds values without a neighbour', () => {
    expect(isolatedPoints([[0, 5]])).toEqual([[0, 5]]);
    expect(isolatedPoints([[0, 1], [1, 2], [2, null], [3, 4], [4, null], [5, 6], [6, 7]])).toEqual([[3, 4]]);
    expect(isolatedPoints([])).toEqual([]);
  });
});
