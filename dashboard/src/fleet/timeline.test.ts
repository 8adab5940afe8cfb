import { describe, expect, it } from 'vitest';
import { DEFAULT_RANGE, isTimelineRange, kindClass, kindLabel, newestFirst, sinceFor, TIMELINE_RANGES } from './timeline';

describe('kindLabel', () => {
  it('names every kind the API reports', () => {
    expect(['first_heartbeat', 'health', 'software', 'model', 'silent', 'back', 'rollout'].map(kindLabel)).toEqual([
      'First heartbeat', 'Health', 'Software', 'Model', 'Silent', 'Back', 'Rollout',
    ]);
  });
  it('makes a label of an unknown kind', () => {
    expect(kindLabel('link_flap')).toBe('Link flap');
    expect(kindLabel('CERT-renewed')).toBe('Cert renewed');
    expect(kindLabel('')).toBe('Other');
    expect(kindLabel('__')).toBe('Other');
    expect(kindLabel('toString')).toBe('Tostring');
  });
  it('gives a style class per known kind', () => {
    expect(kindClass('first_heartbeat')).toBe('kind-first-heartbeat');
    expect(kindClass('silent')).toBe('kind-silent');
    expect(kindClass('whatever')).toBe('kind-other');
    expect(kindClass('toString')).toBe('kind-other');
  });
});

describe('newestFirst', () => {
  it('sorts by time, newest first, later answers first on ties, no time last', () => {
    const entries = [
      { time: '2024-05-10T10:00:00Z', summary: 'a' },
      { time: null, summary: 'b' },
      { time: '2024-05-10T11:00:00Z', summary: 'c' },
      { time: '2024-05-10T10:00:00Z', summary: 'd' },
      { time: '2024-05-10T09:59:59.500Z', summary: 'e' },
      { time: 'not a time', summary: 'f' },
    ];
    expect(newestFirst(entries).map((e) => e.summary)).toEqual(['c', 'd', 'a', 'e', 'f', 'b']);
    expect(entries[0]!.summary).toBe('a');
    expect(newestFirst([])).toEqual([]);
  });
});

describe('sinceFor', () => {
  const now = Date.UTC(2024, 4, 10, 12, 30, 15, 250);
  it('goes back the range from now, in UTC', () => {
    expect(sinceFor('1h', now)).toBe('2024-05-10T11:30:15.250Z');
    expect(sinceFor('24h', now)).toBe('2024-05-09T12:30:15.250Z');
    expect(sinceFor('7d', now)).toBe('2024-05-03T12:30:15.250Z');
  });
  it('offers 1 h, 24 h (default) and 7 days', () => {
    expect(TIMELINE_RANGES.map((r) => [r.value, r.label])).toEqual([
      ['1h', 'Last hour'], ['24h', 'Last 24 hours'], ['7d', 'Last 7 days'],
    ]);
    expect(DEFAULT_RANGE).toBe('24h');
    expect(isTimelineRange('7d')).toBe(true);
    expect(isTimelineRange('30d')).toBe(false);
  });
});
