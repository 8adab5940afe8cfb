/** The round trip of an alarm command in words: "Acknowledge: sent → delivered → applied by nurse-1". */
import type { AlarmCommandState } from '../api/types';

const NAMES: Record<string, string> = { acknowledge: 'Acknowledge', silence: 'Silence', unsilence: 'Unsilence' };

export type CommandTone = 'pending' | 'done' | 'failed';

export interface CommandText {
  text: string;
  tone: CommandTone;
}

export function commandName(command: string): string {
  return NAMES[command] ?? command;
}

export function isSettled(state: Pick<AlarmCommandState, 'outcome'>): boolean {
  return state.outcome !== 'pending';
}

export function describeCommand(state: AlarmCommandState): CommandText {
  const steps = ['sent'];
  if (state.deliveredAt) steps.push('delivered');
  let tone: CommandTone = 'pending';
  switch (state.outcome) {
    case 'accepted':
      steps.push(state.actor ? `applied by ${state.actor}` : 'applied');
      tone = 'done';
      break;
    case 'rejected':
      steps.push(state.error ? `rejected: ${state.error}` : 'rejected');
      tone = 'failed';
      break;
    case 'expired':
      steps.push('expired before the gateway applied it');
      tone = 'failed';
      break;
    default:
      steps.push(state.deliveredAt ? 'awaiting the result' : 'awaiting the gateway');
  }
  return { text: `${commandName(state.command)}: ${steps.join(' → ')}`, tone };
}

/** A client-chosen command id, so a retried request is applied once (the API's id rule: [A-Za-z0-9._:-]). */
export function newCommandId(random: (bytes: Uint8Array) => Uint8Array = (b) => crypto.getRandomValues(b)): string {
  const bytes = random(new Uint8Array(12));
  return `dash-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}
