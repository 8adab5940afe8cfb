/** Which alarm a tile shows first, and in which order the ward's tiles stand. */
import type { Alarm, AlarmPriority } from '../api/types';

export type TilePriority = AlarmPriority | 'none';

const PRIORITY_RANK: Record<string, number> = { high: 0, medium: 1, low: 2, technical: 3 };
const NO_ALARM_RANK = 4;

/** 0 is the most urgent; an unknown priority ranks with technical alarms, still above none. */
export function priorityRank(priority: string | null | undefined): number {
  if (priority == null) return NO_ALARM_RANK;
  return PRIORITY_RANK[priority] ?? PRIORITY_RANK.technical!;
}

// States still asking for someone's attention come before those already answered.
const ANSWERED_STATES = new Set(['acknowledged', 'silenced']);

function timeMs(iso: string | null): number {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? -Infinity : t;
}

/** Orders alarms most urgent first: priority, then unanswered before answered, then newest, then id. */
export function compareAlarms(a: Alarm, b: Alarm): number {
  return (
    priorityRank(a.priority) - priorityRank(b.priority) ||
    Number(ANSWERED_STATES.has(a.state)) - Number(ANSWERED_STATES.has(b.state)) ||
    timeMs(b.raisedAt) - timeMs(a.raisedAt) ||
    (a.alarmId < b.alarmId ? -1 : a.alarmId > b.alarmId ? 1 : 0)
  );
}

export function sortAlarms(alarms: readonly Alarm[]): Alarm[] {
  return [...alarms].sort(compareAlarms);
}

/** The alarm a tile acts on: the most urgent of the active ones, or null. */
export function topAlarm(alarms: readonly Alarm[]): Alarm | null {
  let best: Alarm | null = null;
  for (const alarm of alarms) if (best === null || compareAlarms(alarm, best) < 0) best = alarm;
  return best;
}

export function tilePriority(alarms: readonly Alarm[]): TilePriority {
  const top = topAlarm(alarms);
  if (!top) return 'none';
  return (top.priority in PRIORITY_RANK ? top.priority : 'technical') as TilePriority;
}

export interface WardEntry {
  pseudonym: string;
  activeAlarms: readonly Alarm[];
  risk: { score: number } | null;
}

/** Tiles by alarm priority (high > medium > low > technical > none), then risk score (highest first), then pseudonym. */
export function compareWardEntries(a: WardEntry, b: WardEntry): number {
  const scoreA = a.risk?.score ?? -Infinity;
  const scoreB = b.risk?.score ?? -Infinity;
  return (
    priorityRank(topAlarm(a.activeAlarms)?.priority) - priorityRank(topAlarm(b.activeAlarms)?.priority) ||
    (scoreA === scoreB ? 0 : scoreB > scoreA ? 1 : -1) ||
    (a.pseudonym < b.pseudonym ? -1 : a.pseudonym > b.pseudonym ? 1 : 0)
  );
}

export function orderWard<T extends WardEntry>(entries: readonly T[]): T[] {
  return [...entries].sort(compareWardEntries);
}
