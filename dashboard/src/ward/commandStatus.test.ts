import { describe, expect, it } from 'vitest';
import type { AlarmCommandState } from '../api/types';
import { describeCommand, isSettled, newCommandId } from './commandStatus';

const base: AlarmCommandState = {
  commandId: 'c1', command: 'acknowledge', patient: 'p-1', gateway: 'gw-1', actor: 'nurse-1', outcome: 'pending',
  error: '', issuedAt: '2026-12-04T08:00:00Z', deliveredAt: null, appliedAt: null,
};

describe('describeCommand', () => {
  it('shows the steps so far', () => {
    expect(describeCommand(base)).toEqual({ text: 'Acknowledge: sent → awaiting the gateway', tone: 'pending' });
    expect(describeCommand({ ...base, deliveredAt: '2026-12-04T08:00:00.2Z' }).text)
      .toBe('Acknowledge: sent → delivered → awaiting the result');
  });

  it('names who applied it', () => {
    const done = { ...base, outcome: 'accepted', deliveredAt: '2026-12-04T08:00:00.2Z', appliedAt: '2026-12-04T08:00:00.3Z' };
    expect(describeCommand(done)).toEqual({ text: 'Acknowledge: sent → delivered → applied by nurse-1', tone: 'done' });
    expect(isSettled(done)).toBe(true);
    expect(isSettled(base)).toBe(false);
  });

  it('says why it failed', () => {
    expect(describeCommand({ ...base, command: 'silence', outcome: 'rejected', deliveredAt: 'x', error: 'no such alarm' }).text)
      .toBe('Silence: sent → delivered → rejected: no such alarm');
    expect(describeCommand({ ...base, outcome: 'expired' })).toEqual({
      text: 'Acknowledge: sent → expired before the gateway applied it', tone: 'failed',
    });
  });
});

describe('newCommandId', () => {
  it('is 24 hex digits behind a prefix', () => {
    expect(newCommandId((b) => b.fill(171))).toBe('dash-abababababababababababab');
    expect(newCommandId()).toMatch(/^dash-[0-9a-f]{24}$/);
  });
});
