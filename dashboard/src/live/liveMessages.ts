/** Messages of the per-patient live socket `/ws/live`. */

export interface EcgMessage {
  type: 'ecg';
  deviceId: string;
  lead: string | null;
  sampleRateHz: number;
  t0Ms: number;
  unit: string;
  samples: number[];
}

export interface VitalsMessage {
  type: 'vitals';
  deviceId: string;
  timeMs: number;
  values: Record<string, number>;
}

export interface ReadyMessage {
  type: 'ready';
  userId: string;
}

export interface ErrorMessage {
  type: 'error';
  code: string;
  message: string;
}

export type LiveMessage = EcgMessage | VitalsMessage | ReadyMessage | ErrorMessage;

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isString = (v: unknown): v is string => typeof v === 'string';

/** The message in a text frame, or null if it is not one this dashboard understands. */
export function parseLiveMessage(text: string): LiveMessage | null {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  if (raw === null || typeof raw !== 'object') return null;
  const m = raw as Record<string, unknown>;
  switch (m.type) {
    case 'ecg': {
      if (!isString(m.deviceId) || !isNumber(m.sampleRateHz) || m.sampleRateHz <= 0 || !isNumber(m.t0Ms)) return null;
      if (!Array.isArray(m.samples)) return null;
      const unit = isString(m.unit) ? m.unit : 'uV';
      // Only microvolts are drawn to scale; millivolts are converted, anything else is refused.
      const scale = unit === 'uV' ? 1 : unit === 'mV' ? 1000 : null;
      if (scale === null) return null;
      const samples = m.samples.map((s) => (isNumber(s) ? s * scale : NaN));
      return {
        type: 'ecg', deviceId: m.deviceId, lead: isString(m.lead) ? m.lead : null,
        sampleRateHz: m.sampleRateHz, t0Ms: m.t0Ms, unit: 'uV', samples,
      };
    }
    case 'vitals': {
      if (!isString(m.deviceId) || !isNumber(m.timeMs) || m.values === null || typeof m.values !== 'object') return null;
      const values: Record<string, number> = {};
      for (const [name, value] of Object.entries(m.values as Record<string, unknown>)) {
        if (isNumber(value)) values[name] = value;
      }
      return { type: 'vitals', deviceId: m.deviceId, timeMs: m.timeMs, values };
    }
    case 'ready':
      return isString(m.userId) ? { type: 'ready', userId: m.userId } : null;
    case 'error':
      return { type: 'error', code: isString(m.code) ? m.code : 'UNKNOWN', message: isString(m.message) ? m.message : '' };
    default:
      return null;
  }
}

/** Seconds to wait before reconnect attempt `attempt` (0-based): 1, 2, 4, 8, then 15. */
export function reconnectDelayS(attempt: number): number {
  return Math.min(15, 2 ** Math.max(0, attempt));
}
