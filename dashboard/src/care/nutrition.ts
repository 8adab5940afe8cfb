/** How the nutrition report is shown, and the lab-entry form's rules: pure, so tested without a browser. */
import type { FoodItem, LabInput, Nutrient } from '../api/types';
import { MISSING } from '../format';

export interface StatusCue {
  /** Shown beside the value. */
  text: string;
  /** Repeats the status for readers who cannot tell the colours apart. */
  symbol: string;
  /** CSS modifier. */
  tone: 'low' | 'high' | 'other';
}

/** A finding's status in words and a symbol; never colour alone. */
export function statusCue(status: string): StatusCue {
  switch (status.trim().toLowerCase()) {
    case 'low':
      return { text: 'Low', symbol: '▼', tone: 'low' };
    case 'high':
      return { text: 'High', symbol: '▲', tone: 'high' };
    default: {
      const words = status.replace(/_/g, ' ').trim();
      return { text: words ? words[0]!.toUpperCase() + words.slice(1) : 'Unknown', symbol: '•', tone: 'other' };
    }
  }
}

/** Up to three significant decimals, trailing zeros dropped: 3 → "3", 3.25 → "3.25", 0.0004 → "0.0004". */
export function formatAmount(value: number | null | undefined): string {
  if (value == null || !Number.isFinite(value)) return MISSING;
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 4;
  return String(Number(value.toFixed(digits)));
}

/** "3.2 mmol/L"; the dash alone when there is no value. */
export function formatQuantity(value: number | null | undefined, unit: string): string {
  const amount = formatAmount(value);
  return amount === MISSING || !unit ? amount : `${amount} ${unit}`;
}

/** "3.5–5 mmol/L", "≥ 3.5 mmol/L", "≤ 145 mmol/L", or the dash when the source gives no bounds. */
export function referenceRange(nutrient: Pick<Nutrient, 'referenceLow' | 'referenceHigh' | 'unit'>): string {
  const { referenceLow: low, referenceHigh: high, unit } = nutrient;
  const suffix = unit ? ` ${unit}` : '';
  const hasLow = low != null && Number.isFinite(low);
  const hasHigh = high != null && Number.isFinite(high);
  if (hasLow && hasHigh) return `${formatAmount(low)}–${formatAmount(high)}${suffix}`;
  if (hasLow) return `≥ ${formatAmount(low)}${suffix}`;
  if (hasHigh) return `≤ ${formatAmount(high)}${suffix}`;
  return MISSING;
}

/** "93 mg per 1 medium (118 g)", or the dash when the food table gives no serving. */
export function servingText(food: Pick<FoodItem, 'amountPerServing' | 'unit' | 'servingDescription' | 'servingGrams'>): string {
  if (food.amountPerServing == null || !Number.isFinite(food.amountPerServing)) return MISSING;
  const grams = food.servingGrams != null && Number.isFinite(food.servingGrams) ? `${formatAmount(food.servingGrams)} g` : '';
  const described = food.servingDescription?.trim() ?? '';
  const serving = described && grams ? `${described} (${grams})` : described || grams;
  const amount = formatQuantity(food.amountPerServing, food.unit);
  return serving ? `${amount} per ${serving}` : amount;
}

export interface Analyte {
  /** The API's name for it. */
  id: string;
  label: string;
  /** Units the API converts from; the first is offered first. */
  units: string[];
}

/**
 * The labs a clinician may enter here: the API's analytes (its LabInput) with the units it converts
 * from, the canonical unit first. The API checks the value against physiologic bounds.
 */
export const ANALYTES: readonly Analyte[] = [
  { id: 'potassium', label: 'Potassium', units: ['mmol/L', 'mEq/L'] },
  { id: 'magnesium', label: 'Magnesium', units: ['mg/dL', 'mmol/L', 'mEq/L'] },
  { id: 'sodium', label: 'Sodium', units: ['mmol/L', 'mEq/L'] },
  { id: 'calcium', label: 'Calcium (total)', units: ['mg/dL', 'mmol/L'] },
  { id: 'haemoglobin', label: 'Haemoglobin', units: ['g/dL', 'g/L', 'mmol/L'] },
  { id: 'ferritin', label: 'Ferritin', units: ['ng/mL', 'ug/L'] },
  { id: 'ldl', label: 'LDL cholesterol', units: ['mg/dL', 'mmol/L'] },
  { id: 'hdl', label: 'HDL cholesterol', units: ['mg/dL', 'mmol/L'] },
  { id: 'total_cholesterol', label: 'Total cholesterol', units: ['mg/dL', 'mmol/L'] },
  { id: 'triglycerides', label: 'Triglycerides', units: ['mg/dL', 'mmol/L'] },
  { id: 'glucose', label: 'Glucose', units: ['mg/dL', 'mmol/L'] },
  { id: 'hba1c', label: 'HbA1c', units: ['%', 'mmol/mol'] },
];

export function analyteById(id: string, analytes: readonly Analyte[] = ANALYTES): Analyte | null {
  return analytes.find((a) => a.id === id) ?? null;
}

/**
 * The form's fields as one lab for recordLabResults, or the reason it cannot be sent. The API checks
 * again; this only spares the clinician a round trip for an empty or impossible value.
 */
export function labFromForm(
  analyteId: string,
  valueText: string,
  unit: string,
  analytes: readonly Analyte[] = ANALYTES,
): LabInput | { error: string } {
  const analyte = analyteById(analyteId, analytes);
  if (!analyte) return { error: 'Choose an analyte.' };
  const text = valueText.trim().replace(',', '.');
  if (!text) return { error: 'Enter a value.' };
  const value = Number(text);
  if (!Number.isFinite(value)) return { error: `“${valueText.trim()}” is not a number.` };
  if (value < 0) return { error: 'A lab value cannot be negative.' };
  if (!analyte.units.includes(unit)) return { error: `Choose a unit for ${analyte.label}.` };
  return { analyte: analyte.id, value, unit };
}
