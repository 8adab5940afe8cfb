import { describe, expect, it } from 'vitest';
import { MISSING } from '../format';
import { analyteById, formatAmount, formatQuantity, labFromForm, referenceRange, servingText, statusCue } from './nutrition';

describe('statusCue', () => {
  it('gives each status words and a symbol, not a colour alone', () => {
    expect(statusCue('low')).toEqual({ text: 'Low', symbol: '▼', tone: 'low' });
    expect(statusCue('HIGH')).toEqual({ text: 'High', symbol: '▲', tone: 'high' });
    expect(statusCue('borderline_low')).toEqual({ text: 'Borderline low', symbol: '•', tone: 'other' });
    expect(statusCue('').text).toBe('Unknown');
  });
});

describe('amounts', () => {
  it('drops trailing zeros and keeps small values readable', () => {
    expect(formatAmount(3)).toBe('3');
    expect(formatAmount(3.25)).toBe('3.25');
    expect(formatAmount(12.345)).toBe('12.3');
    expect(formatAmount(2300.4)).toBe('2300');
    expect(formatAmount(0.0004)).toBe('0.0004');
    expect(formatAmount(null)).toBe(MISSING);
    expect(formatAmount(Number.NaN)).toBe(MISSING);
    expect(formatQuantity(3, 'mmol/L')).toBe('3 mmol/L');
    expect(formatQuantity(null, 'mmol/L')).toBe(MISSING);
  });
});

describe('referenceRange', () => {
  it('shows whichever bounds the source gives', () => {
    expect(referenceRange({ referenceLow: 3.5, referenceHigh: 5, unit: 'mmol/L' })).toBe('3.5–5 mmol/L');
    expect(referenceRange({ referenceLow: 50, referenceHigh: null, unit: 'nmol/L' })).toBe('≥ 50 nmol/L');
    expect(referenceRange({ referenceLow: null, referenceHigh: 2300, unit: 'mg' })).toBe('≤ 2300 mg');
    expect(referenceRange({ referenceLow: null, referenceHigh: null, unit: 'mg' })).toBe(MISSING);
  });
});

describe('servingText', () => {
  it('names the serving and its weight when the food table has them', () => {
    expect(servingText({ amountPerServing: 422, unit: 'mg', servingDescription: '1 medium', servingGrams: 118 }))
      .toBe('422 mg per 1 medium (118 g)');
    expect(servingText({ amountPerServing: 422, unit: 'mg', servingDescription: null, servingGrams: 118 }))
      .toBe('422 mg per 118 g');
    expect(servingText({ amountPerServing: null, unit: 'mg', servingDescription: '1 cup', servingGrams: 240 }))
      .toBe(MISSING);
  });
});

describe('labFromForm', () => {
  it('builds the lab the API takes', () => {
    expect(labFromForm('potassium', ' 3,0 ', 'mmol/L')).toEqual({ analyte: 'potassium', value: 3, unit: 'mmol/L' });
    expect(analyteById('potassium')?.label).toBe('Potassium');
  });

  it('refuses what the API would refuse, with the reason', () => {
    expect(labFromForm('', '3', 'mmol/L')).toEqual({ error: 'Choose an analyte.' });
    expect(labFromForm('potassium', '', 'mmol/L')).toEqual({ error: 'Enter a value.' });
    expect(labFromForm('potassium', 'abc', 'mmol/L')).toEqual({ error: '“abc” is not a number.' });
    expect(labFromForm('potassium', '-1', 'mmol/L')).toEqual({ error: 'A lab value cannot be negative.' });
    expect(labFromForm('potassium', '3', 'g/L')).toEqual({ error: 'Choose a unit for Potassium.' });
  });
});
