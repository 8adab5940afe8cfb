import { describe, expect, it } from 'vitest';
import { parseLiveMessage, reconnectDelayS } from './liveMessages';

describe('parseLiveMessage', () => {
  it('reads an ECG block', () => {
    const msg = parseLiveMessage(JSON.stringify({
      type: 'ecg', deviceId: 'aa:bb', lead: null, sampleRateHz: 250, t0Ms: 1733299200000.5, unit: 'uV', samples: [1, -2.5, 'x'],
    }));
    expect(msg?.type).toBe('ecg');
    if (msg?.type !== 'ecg') return;
    expect(msg.samples.slice(0, 2)).toEqual([1, -2.5]);
    expect(Number.isNaN(msg.samples[2])).toBe(true);
    expect(msg.t0Ms).toBe(1733299200000.5);
  });

  it('converts millivolts and refuses unknown units', () => {
    const mv = parseLiveMessage(JSON.stringify({ type: 'ecg', deviceId: 'd', sampleRateHz: 250, t0Ms: 0, unit: 'mV', samples: [1.2] }));
    expect(mv?.type === 'ecg' && mv.samples[0]).toBe(1200);
    expect(parseLiveMessage(JSON.stringify({ type: 'ecg', deviceId: 'd', sampleRateHz: 250, t0Ms: 0, unit: 'adc', samples: [1] })))
      .toBeNull();
  });

  it('keeps only numeric vitals', () => {
    expect(parseLiveMessage(JSON.stringify({
      type: 'vitals', deviceId: 'd', timeMs: 5, values: { heart_rate_bpm: 88, note: 'x' },
    }))).toEqual({ type: 'vitals', deviceId: 'd', timeMs: 5, values: { heart_rate_bpm: 88 } });
  });

  it('reads errors and ignores noise', () => {
    expect(parseLiveMessage('{"type":"error","code":"FORBIDDEN","message":"no"}'))
      .toEqual({ type: 'error', code: 'FORBIDDEN', message: 'no' });
    expect(parseLiveMessage('not json')).toBeNull();
    expect(parseLiveMessage('{"type":"other"}')).toBeNull();
    expect(parseLiveMessage('{"type":"ecg","deviceId":"d","sampleRateHz":0,"t0Ms":0,"samples":[]}')).toBeNull();
  });
});

describe('reconnectDelayS', () => {
  it('backs off exponentially up to 15 s', () => {
    expect([0, 1, 2, 3, 4, 10].map(reconnectDelayS)).toEqual([1, 2, 4, 8, 15, 15]);
  });
});
