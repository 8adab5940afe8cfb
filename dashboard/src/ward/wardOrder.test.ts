import { describe, expect, it } from 'vitest';
import type { Alarm } from '../api/types';
import { orderWard, priorityRank, sortAlarms, tilePriority, topAlarm } from './wardOrder';

function alarm(alarmId: string, priority: string, state = 'raised', raisedAt = '2026-12-04T08:00:00Z'): Alarm {
  return {
    alarmId, priority, state, raisedAt, deviceId: 'd', gateway: 'g', condition: 'hr_high',
    value: 0, limit: 0, clearedAt: null, updatedAt: null,
  };
}

function entry(pseudonym: string, alarms: Alarm[], score: number | null) {
  return { pseudonym, activeAlarms: alarms, risk: score === null ? null : { score } };
}

describe('priorityRank', () => {
  it('ranks high first and no alarm last', () => {
    expect([priorityRank('high'), priorityRank('medium'), priorityRank('low'), priorityRank('technical'), priorityRank(null)])
      .toEqual([0, 1, 2, 3, 4]);
    expect(priorityRank('strange')).toBe(3);
  });
});

describe('topAlarm', () => {
  it('takes the highest priority', () => {
    expect(topAlarm([alarm('a', 'low'), alarm('b', 'high'), alarm('c', 'medium')])?.alarmId).toBe('b');
  });

  it('prefers an unanswered alarm, then the newest', () => {
    const answered = alarm('old-ack', 'high', 'acknowledged', '2026-12-04T08:05:00Z');
    const older = alarm('older', 'high', 'raised', '2026-12-04T08:00:00Z');
    const newer = alarm('newer', 'high', 'escalated', '2026-12-04T08:01:00Z');
    expect(topAlarm([answered, older, newer])?.alarmId).toBe('newer');
    expect(sortAlarms([answered, older, newer]).map((a) => a.alarmId)).toEqual(['newer', 'older', 'old-ack']);
  });

  it('is null without alarms', () => {
    expect(topAlarm([])).toBeNull();
    expect(tilePriority([])).toBe('none');
    expect(tilePriority([alarm('t', 'technical'), alarm('l', 'low')])).toBe('low');
  });
});

describe('orderWard', () => {
  it('sorts by priority, then risk score descending, then pseudonym', () => {
    const ward = [
      entry('p-quiet-b', [], 0.2),
      entry('p-tech', [alarm('1', 'technical')], 0.9),
      entry('p-high-low-risk', [alarm('2', 'high')], 0.1),
      entry('p-quiet-a', [], 0.2),
      entry('p-medium', [alarm('3', 'medium'), alarm('4', 'low')], 0.5),
      entry('p-high-high-risk', [alarm('5', 'high', 'acknowledged')], 0.7),
      entry('p-no-risk', [], null),
      entry('p-low', [alarm('6', 'low')], 0.3),
      entry('p-quiet-risky', [], 0.8),
    ];
    expect(orderWard(ward).map((e) => e.pseudonym)).toEqual([
      'p-high-high-risk',
      'p-high-low-risk',
      'p-medium',
      'p-low',
      'p-tech',
      'p-quiet-risky',
      'p-quiet-a',
      'p-quiet-b',
      'p-no-risk',
    ]);
  });

  it('does not reorder its input', () => {
    const ward = [entry('b', [], 0), entry('a', [], 0)];
    orderWard(ward);
    expect(ward.map((e) => e.pseudonym)).toEqual(['b', 'a']);
  });
});
