/** Text for numbers, times and sizes, with an em dash where a value is missing. */

export const MISSING = '—';

export function formatNumber(value: number | null | undefined, digits = 0): string {
  return value == null || !Number.isFinite(value) ? MISSING : value.toFixed(digits);
}

/** A 0..1 fraction as a percentage. */
export function formatFraction(value: number | null | undefined, digits = 0): string {
  return value == null || !Number.isFinite(value) ? MISSING : `${(value * 100).toFixed(digits)}%`;
}

export function toMs(time: string | number | null | undefined): number | null {
  if (time == null) return null;
  const ms = typeof time === 'number' ? time : Date.parse(time);
  return Number.isFinite(ms) ? ms : null;
}

/** "12 s ago", "3 min ago", "2 h ago", "4 d ago"; "never" without a time. */
export function formatAgo(time: string | number | null | undefined, nowMs: number): string {
  const ms = toMs(time);
  if (ms === null) return 'never';
  const seconds = Math.floor((nowMs - ms) / 1000);
  if (seconds < 1) return 'just now';
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

/** "45 s", "3 min 5 s", "2 h 4 min". */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  if (total < 60) return `${total} s`;
  if (total < 3600) {
    const s = total % 60;
    return `${Math.floor(total / 60)} min${s ? ` ${s} s` : ''}`;
  }
  const m = Math.floor((total % 3600) / 60);
  return `${Math.floor(total / 3600)} h${m ? ` ${m} min` : ''}`;
}

export function formatBytes(bytes: number): string {
  if (!(bytes >= 0)) return MISSING;
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** Local date and time to the second, for tables. */
export function formatDateTime(time: string | number | null | undefined): string {
  const ms = toMs(time);
  if (ms === null) return MISSING;
  return new Date(ms).toLocaleString(undefined, {
    year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

export function formatClock(time: string | number | null | undefined): string {
  const ms = toMs(time);
  if (ms === null) return MISSING;
  return new Date(ms).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** "07:45" on a 24-hour clock, for chart axes. */
export function formatHourMinute(time: string | number | null | undefined): string {
  const ms = toMs(time);
  if (ms === null) return MISSING;
  return new Date(ms).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
}
