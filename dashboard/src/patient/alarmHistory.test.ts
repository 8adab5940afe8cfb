import { describe, expect, it } from 'vitest';
import type { Alarm, AlarmActivity } from '../api/types';
import { labelBy, mergeAlarmHistory } from './alarmHistory';

const alarm = (alarmId: string, raisedAt: string): Alarm => ({
  alarmId, raisedAt, deviceId: 'd', gateway: 'g', condition: 'hr_high', priority: 'high', state: 'raised',
  value: 140, limit: 130, clearedAt: null, updatedAt: null,
});

describe('mergeAlarmHistory', () => {
  it('orders alarms newest first and attaches their activity in time order', () => {
    const activity: AlarmActivity[] = [{
      alarmId: 'a1',
      commands: [],
      comments: [
        { alarmId: 'a1', author: 'n2', role: 'nurse', text: 'second', at: '2026-12-04T08:02:00Z' },
        { alarmId: 'a1', author: 'n1', role: 'nurse', text: 'first', at: '2026-12-04T08:01:00Z' },
      ],
      labels: [],
    }];
    const merged = mergeAlarmHistory([alarm('a1', '2026-12-04T08:00:00Z'), alarm('a2', '2026-12-04T08:05:00Z')], activity);
    expect(merged.map((e) => e.alarm.alarmId)).toEqual(['a2', 'a1']);
    expect(merged[1]!.comments.map((c) => c.text)).toEqual(['first', 'second']);
    expect(merged[0]!.comments).toEqual([]);
  });
});

describe('labelBy', () => {
  it('takes the author\'s last answer', () => {
    const labels = [
      { alarmId: 'a', author: 'c1', isTrue: true, note: '', at: '1' },
      { alarmId: 'a', author: 'c2', isTrue: true, note: '', at: '2' },
      { alarmId: 'a', author: 'c1', isTrue: false, note: '', at: '3' },
    ];
    expect(labelBy(labels, 'c1')?.isTrue).toBe(false);
    expect(labelBy(labels, 'c3')).toBeNull();
  });
});
