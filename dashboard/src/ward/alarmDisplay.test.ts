import { describe, expect, it } from 'vitest';
import {
  afFlagText, alarmFlashes, conditionLabel, connectionLabel, priorityCue, rhythmLabel, showsAf, showsValue, vitalValue,
} from './alarmDisplay';

describe('priorityCue', () => {
  it('gives text and a symbol for every priority', () => {
    expect(priorityCue('high')).toMatchObject({ text: 'HIGH', symbol: '!!!' });
    expect(priorityCue('medium')).toMatchObject({ text: 'MED', symbol: '!!' });
    expect(priorityCue('low')).toMatchObject({ text: 'LOW', symbol: '!' });
    expect(priorityCue('whatever').text).toBe('TECH');
  });
});

describe('labels', () => {
  it('names conditions, rhythms and connection', () => {
    expect(conditionLabel('spo2_low')).toBe('SpO2 low');
    expect(conditionLabel('new_thing')).toBe('New thing');
    expect(rhythmLabel('A')).toBe('AF');
    expect(rhythmLabel('~')).toBe('Noisy');
    expect(rhythmLabel(null)).toBe('—');
    expect(connectionLabel(null)).toBe('unknown');
    expect(connectionLabel(false)).toBe('disconnected');
  });
});

describe('showsAf', () => {
  it('flags AF rhythm or a burden of 10 % or more', () => {
    expect(showsAf('A', 0)).toBe(true);
    expect(showsAf('N', 0.1)).toBe(true);
    expect(showsAf('N', 0.099)).toBe(false);
    expect(showsAf(null, null)).toBe(false);
  });
});

describe('alarmFlashes', () => {
  it('flashes high alarms until acknowledged', () => {
    expect(alarmFlashes('high', 'raised')).toBe(true);
    expect(alarmFlashes('high', 'silenced')).toBe(true);
    expect(alarmFlashes('high', 'acknowledged')).toBe(false);
    expect(alarmFlashes('medium', 'raised')).toBe(false);
  });
});

describe('vitalValue', () => {
  it('takes the first name present', () => {
    const vitals = [{ name: 'pulse_rate_bpm', value: 71, time: null, deviceId: 'd' }];
    expect(vitalValue(vitals, 'heart_rate_bpm', 'pulse_rate_bpm')).toBe(71);
    expect(vitalValue(vitals, 'spo2_percent')).toBeNull();
  });
});

describe('afFlagText and showsValue', () => {
  it('adds the burden only when there is some', () => {
    expect(afFlagText(0)).toBe('AF');
    expect(afFlagText(null)).toBe('AF');
    expect(afFlagText(0.234)).toBe('AF 23%');
  });

  it('hides values of rhythm alarms and technical alarms', () => {
    expect(showsValue('high', 'hr_high')).toBe(true);
    expect(showsValue('low', 'af')).toBe(false);
    expect(showsValue('technical', 'lead_off')).toBe(false);
  });
});
