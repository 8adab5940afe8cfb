/** An alarm's record on the patient page: the alarm itself with who acted on it, comments and labels. */
import type { Alarm, AlarmActivity, AlarmCommandState, AlarmComment, AlarmLabel } from '../api/types';
import { toMs } from '../format';

export interface AlarmHistoryEntry {
  alarm: Alarm;
  commands: AlarmCommandState[];
  comments: AlarmComment[];
  labels: AlarmLabel[];
}

const byTime = <T>(time: (item: T) => string | null) => (a: T, b: T) => (toMs(time(a)) ?? 0) - (toMs(time(b)) ?? 0);

/** Alarms newest first, each with its activity in time order. */
export function mergeAlarmHistory(alarms: readonly Alarm[], activity: readonly AlarmActivity[]): AlarmHistoryEntry[] {
  const byAlarm = new Map(activity.map((a) => [a.alarmId, a]));
  return [...alarms]
    .sort((a, b) => (toMs(b.raisedAt) ?? 0) - (toMs(a.raisedAt) ?? 0) || (a.alarmId < b.alarmId ? -1 : 1))
    .map((alarm) => {
      const found = byAlarm.get(alarm.alarmId);
      return {
        alarm,
        commands: [...(found?.commands ?? [])].sort(byTime((c) => c.issuedAt)),
        comments: [...(found?.comments ?? [])].sort(byTime((c) => c.at)),
        labels: [...(found?.labels ?? [])].sort(byTime((l) => l.at)),
      };
    });
}

/** The label `author` gave, if any (a second answer replaces the first). */
export function labelBy(labels: readonly AlarmLabel[], author: string): AlarmLabel | null {
  let latest: AlarmLabel | null = null;
  for (const label of labels) if (label.author === author) latest = label;
  return latest;
}
