import { describe, expect, it } from 'vitest';
import { appendCapped, percentile } from './frameTimes';

describe('appendCapped', () => {
  it('keeps only the newest entries', () => {
    const list: number[] = [];
    for (let i = 1; i <= 2005; i++) appendCapped(list, i, 2000);
    expect(list.length).toBe(2000);
    expect(list[0]).toBe(6);
    expect(list[1999]).toBe(2005);
  });
});

describe('percentile', () => {
  it('takes the nearest rank', () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1
    expect(percentile(values, 99)).toBe(99);
    expect(percentile(values, 50)).toBe(50);
    expect(percentile(values, 100)).toBe(100);
    expect(percentile([], 99)).toBeNull();
    expect(percentile([3], 1)).toBe(3);
  });
});
