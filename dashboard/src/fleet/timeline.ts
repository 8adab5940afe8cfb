/** A gateway's timeline in the fleet console: kind labels, order and the time range asked for. */
import type { TimelineEntry } from '../api/types';
import { toMs } from '../format';

/** The kinds the API reports; any other kind still gets a readable label. */
export const KIND_LABELS: Readonly<Record<string, string>> = {
  first_heartbeat: 'First heartbeat',
  health: 'Health',
  software: 'Software',
  model: 'Model',
  silent: 'Silent',
  back: 'Back',
  rollout: 'Rollout',
};

const isKnown = (kind: string): boolean => Object.prototype.hasOwnProperty.call(KIND_LABELS, kind);

/** "Silent" for `silent`; an unknown `link_flap` becomes "Link flap", an empty kind "Other". */
export function kindLabel(kind: string): string {
  if (isKnown(kind)) return KIND_LABELS[kind]!;
  const words = kind.replace(/[_-]+/g, ' ').trim().toLowerCase();
  return words ? words[0]!.toUpperCase() + words.slice(1) : 'Other';
}

/** A class-name-safe form of the kind, for the badge's style (the label carries the meaning). */
export function kindClass(kind: string): string {
  return isKnown(kind) ? `kind-${kind.replace(/_/g, '-')}` : 'kind-other';
}

/**
 * Newest first. The API answers oldest first, so among equal times the later answer is the
 * newer one; entries without a time go last.
 */
export function newestFirst<T extends Pick<TimelineEntry, 'time'>>(entries: readonly T[]): T[] {
  return entries
    .map((entry, index) => ({ entry, index, ms: toMs(entry.time) }))
    .sort((a, b) => {
      if (a.ms !== b.ms) {
        if (a.ms === null) return 1;
        if (b.ms === null) return -1;
        return b.ms - a.ms;
      }
      return b.index - a.index;
    })
    .map((x) => x.entry);
}

export type TimelineRange = '1h' | '24h' | '7d';

export const TIMELINE_RANGES: ReadonlyArray<{ value: TimelineRange; label: string; spanMs: number }> = [
  { value: '1h', label: 'Last hour', spanMs: 3_600_000 },
  { value: '24h', label: 'Last 24 hours', spanMs: 86_400_000 },
  { value: '7d', label: 'Last 7 days', spanMs: 7 * 86_400_000 },
];

export const DEFAULT_RANGE: TimelineRange = '24h';

export function isTimelineRange(value: string): value is TimelineRange {
  return TIMELINE_RANGES.some((r) => r.value === value);
}

/** The `since` argument for a range ending at `nowMs`, as an ISO string in UTC. */
export function sinceFor(range: TimelineRange, nowMs: number): string {
  const span = TIMELINE_RANGES.find((r) => r.value === range)?.spanMs ?? 86_400_000;
  return new Date(nowMs - span).toISOString();
}

/** The API answers at most this many entries, the latest ones. */
export const TIMELINE_LIMIT = 500;
