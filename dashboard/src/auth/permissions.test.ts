import { describe, expect, it } from 'vitest';
import { canLabelAlarms, canReadPatients, homePath, navSections } from './permissions';

describe('navSections', () => {
  it('gives each role its pages', () => {
    expect(navSections('nurse')).toEqual(['ward']);
    expect(navSections('clinician')).toEqual(['ward']);
    expect(navSections('operator')).toEqual(['fleet', 'models']);
    expect(navSections('admin')).toEqual(['ward', 'fleet', 'models']);
  });
});

describe('role checks', () => {
  it('keeps operators away from patient data and labels with clinicians', () => {
    expect(canReadPatients('operator')).toBe(false);
    expect(canReadPatients('admin')).toBe(true);
    expect(canLabelAlarms('clinician')).toBe(true);
    expect(canLabelAlarms('nurse')).toBe(false);
    expect(homePath('operator')).toBe('/fleet');
    expect(homePath('nurse')).toBe('/');
  });
});
