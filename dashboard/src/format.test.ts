import { describe, expect, it } from 'vitest';
import { formatAgo, formatBytes, formatDuration, formatFraction, formatNumber } from './format';

describe('formatAgo', () => {
  const now = Date.parse('2026-12-04T08:00:00Z');
  it('says how long ago in the largest whole unit', () => {
    expect(formatAgo('2026-12-04T07:59:48Z', now)).toBe('12 s ago');
    expect(formatAgo('2026-12-04T07:57:00Z', now)).toBe('3 min ago');
    expect(formatAgo('2026-12-04T05:30:00Z', now)).toBe('2 h ago');
    expect(formatAgo('2026-11-30T08:00:00Z', now)).toBe('4 d ago');
    expect(formatAgo(now + 3000, now)).toBe('just now');
    expect(formatAgo(null, now)).toBe('never');
  });
});

describe('formatDuration', () => {
  it('uses seconds, minutes and hours', () => {
    expect(formatDuration(45_400)).toBe('45 s');
    expect(formatDuration(185_000)).toBe('3 min 5 s');
    expect(formatDuration(120_000)).toBe('2 min');
    expect(formatDuration(7_440_000)).toBe('2 h 4 min');
  });
});

describe('numbers', () => {
  it('formats sizes, fractions and missing values', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(3 * 1024 * 1024)).toBe('3.0 MiB');
    expect(formatFraction(0.853)).toBe('85%');
    expect(formatFraction(null)).toBe('—');
    expect(formatNumber(97.46, 1)).toBe('97.5');
    expect(formatNumber(undefined)).toBe('—');
  });
});
