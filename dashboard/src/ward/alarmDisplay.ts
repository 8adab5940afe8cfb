/** How alarms and a patient's readings are shown: words and symbols, never colour alone. */
import type { Vital } from '../api/types';

export interface PriorityCue {
  /** Short text shown on the alarm. */
  text: string;
  /** A symbol that repeats the priority for those who cannot tell the colours apart. */
  symbol: string;
  /** Spoken name. */
  spoken: string;
}

const CUES: Record<string, PriorityCue> = {
  high: { text: 'HIGH', symbol: '!!!', spoken: 'high priority' },
  medium: { text: 'MED', symbol: '!!', spoken: 'medium priority' },
  low: { text: 'LOW', symbol: '!', spoken: 'low priority' },
  technical: { text: 'TECH', symbol: '(i)', spoken: 'technical' },
};

/** The colour class of a priority: high, medium, low, or technical for anything else. */
export function priorityClass(priority: string): 'high' | 'medium' | 'low' | 'technical' {
  return priority === 'high' || priority === 'medium' || priority === 'low' ? priority : 'technical';
}

export function priorityCue(priority: string): PriorityCue {
  return CUES[priority] ?? CUES.technical!;
}

const CONDITIONS: Record<string, string> = {
  hr_high: 'Heart rate high',
  hr_low: 'Heart rate low',
  spo2_low: 'SpO2 low',
  sbp_high: 'Systolic BP high',
  sbp_low: 'Systolic BP low',
  asystole: 'Asystole',
  vt: 'Ventricular tachycardia',
  vt_unconfirmed: 'VT (unconfirmed)',
  vf: 'Ventricular fibrillation/flutter',
  vf_unconfirmed: 'VF (unconfirmed)',
  af: 'Atrial fibrillation',
  news2: 'NEWS2 high',
  lead_off: 'Lead off',
  poor_signal: 'Poor signal',
  device_lost: 'Device lost',
  battery_low: 'Battery low',
  outbox_near_full: 'Gateway outbox near full',
  model_failure: 'Model failure',
  uplink_refused: 'Uplink refused',
};

export function conditionLabel(condition: string): string {
  const known = CONDITIONS[condition];
  if (known) return known;
  const words = condition.replace(/_/g, ' ').trim();
  return words ? words[0]!.toUpperCase() + words.slice(1) : 'Alarm';
}

// Conditions that are a rhythm class, not a measurement: their value says nothing to the reader.
const NO_VALUE = new Set(['af', 'vt', 'vt_unconfirmed', 'vf', 'vf_unconfirmed']);

/** Whether an alarm's value is worth showing next to its condition. */
export function showsValue(priority: string, condition: string): boolean {
  return priorityClass(priority) !== 'technical' && !NO_VALUE.has(condition);
}

/** The AF flag's text: "AF", with the burden when there is some. */
export function afFlagText(afBurden: number | null | undefined): string {
  return afBurden != null && afBurden >= 0.005 ? `AF ${Math.round(afBurden * 100)}%` : 'AF';
}

const STATES: Record<string, string> = {
  raised: 'active',
  escalated: 'escalated',
  acknowledged: 'acknowledged',
  silenced: 'audio paused',
  unsilenced: 'audio resumed',
  latched: 'latched',
};

export function stateLabel(state: string): string {
  return STATES[state] ?? state;
}

/** Whether the alarm still flashes: acknowledging stops the flashing, the colour stays. */
export function alarmFlashes(priority: string, state: string): boolean {
  return priority === 'high' && state !== 'acknowledged';
}

export function vitalValue(vitals: readonly Vital[], ...names: string[]): number | null {
  for (const name of names) {
    const vital = vitals.find((v) => v.name === name);
    if (vital && Number.isFinite(vital.value)) return vital.value;
  }
  return null;
}

const RHYTHMS: Record<string, string> = { N: 'Normal', A: 'AF', O: 'Other', '~': 'Noisy' };

export function rhythmLabel(rhythm: string | null | undefined): string {
  if (!rhythm) return '—';
  return RHYTHMS[rhythm] ?? rhythm;
}

export const AF_BURDEN_FLAG = 0.1;

/** The AF flag: the current rhythm is AF, or AF took at least 10 % of the recent window. */
export function showsAf(rhythm: string | null | undefined, afBurden: number | null | undefined): boolean {
  return rhythm === 'A' || (afBurden != null && afBurden >= AF_BURDEN_FLAG);
}

export type ConnectionLabel = 'connected' | 'disconnected' | 'unknown';

export function connectionLabel(connected: boolean | null | undefined): ConnectionLabel {
  return connected == null ? 'unknown' : connected ? 'connected' : 'disconnected';
}
