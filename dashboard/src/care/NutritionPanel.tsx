/**
 * The nutrition analysis of a cardiac patient: findings from the recorded labs (each with its reference
 * range and why it matters), the diet's constraints, foods that help within them, and what the analysis
 * rests on. Clinicians can record a lab result here; the report is asked for again after it.
 */
import { useMutation, useQuery } from '@apollo/client';
import { type FormEvent, useId, useState } from 'react';
import { errorText, type ErrorLike } from '../api/errors';
import { NUTRITION_ANALYSIS, RECORD_LAB_RESULTS } from '../api/operations';
import type { FoodItem, Nutrient, NutritionEvidence, NutritionReport } from '../api/types';
import { formatDateTime } from '../format';
import { ANALYTES, analyteById, formatQuantity, labFromForm, referenceRange, servingText, statusCue } from './nutrition';

interface NutritionPanelProps {
  pseudonym: string;
  canRecord: boolean;
}

function nameLabel(name: string): string {
  const words = name.replace(/_/g, ' ').trim();
  return words ? words[0]!.toUpperCase() + words.slice(1) : name;
}

export function NutritionPanel({ pseudonym, canRecord }: NutritionPanelProps) {
  const query = useQuery<{ getNutritionAnalysis: NutritionReport | null }>(NUTRITION_ANALYSIS, {
    variables: { userId: pseudonym },
    fetchPolicy: 'cache-and-network',
  });
  const report = query.data?.getNutritionAnalysis ?? null;
  return (
    <div className="nutrition" data-testid="nutrition-panel">
      {query.error && <p role="alert" className="error-text">{errorText(query.error)}</p>}
      {!query.data && !query.error && <p>Loading…</p>}
      {query.data && !report && <p className="muted">No nutrition analysis for this patient.</p>}
      {report && <Report report={report} />}
      {canRecord && <LabForm pseudonym={pseudonym} />}
    </div>
  );
}

function Report({ report }: { report: NutritionReport }) {
  return (
    <>
      {report.notice && <p className="notice" data-testid="nutrition-notice">{report.notice}</p>}
      <p className="hint">Analysis of {formatDateTime(report.generatedAt)}</p>
      <Findings kind="deficiencies" title="Deficiencies" nutrients={report.deficiencies}
        none="No deficiency found in the recorded data." />
      <Findings kind="excesses" title="Excesses" nutrients={report.excesses} none="No excess found in the recorded data." />
      <h3>Dietary constraints</h3>
      {report.constraints.length === 0 ? (
        <p className="muted">No constraints from the recorded conditions or medications.</p>
      ) : (
        <ul data-testid="nutrition-constraints">
          {report.constraints.map((c, i) => <li key={i}>{c}</li>)}
        </ul>
      )}
      <Foods foods={report.suggestedFoods} />
      <Evidence evidence={report.evidence} />
    </>
  );
}

interface FindingsProps {
  kind: 'deficiencies' | 'excesses';
  title: string;
  nutrients: readonly Nutrient[];
  none: string;
}

function Findings({ kind, title, nutrients, none }: FindingsProps) {
  if (nutrients.length === 0) {
    return (
      <>
        <h3>{title}</h3>
        <p className="muted" data-testid={`nutrition-${kind}-none`}>{none}</p>
      </>
    );
  }
  return (
    <div className="table-scroll">
      <table className="data-table nutrition-findings" data-testid={`nutrition-${kind}`}>
        <caption>{title}</caption>
        <thead>
          <tr>
            <th scope="col">Nutrient</th>
            <th scope="col" className="num">Value</th>
            <th scope="col">Status</th>
            <th scope="col">Reference range</th>
            <th scope="col">Why it matters</th>
          </tr>
        </thead>
        <tbody>
          {nutrients.map((n, i) => {
            const cue = statusCue(n.status);
            return (
              <tr key={`${n.name}-${i}`} data-testid={`nutrient-${n.name}`} data-status={n.status}>
                <th scope="row">{nameLabel(n.name)}</th>
                <td className="num">
                  {formatQuantity(n.amount, n.unit)}
                  {n.measuredAt && <span className="hint nutrition-when"> {formatDateTime(n.measuredAt)}</span>}
                </td>
                <td>
                  <span className={`nutrient-status nutrient-${cue.tone}`}>
                    <span aria-hidden="true">{cue.symbol}</span> {cue.text}
                  </span>
                </td>
                <td>
                  {referenceRange(n)}
                  {n.referenceSource && <span className="hint nutrition-source">{n.referenceSource}</span>}
                </td>
                <td>
                  {n.why}
                  {n.evidence && <span className="hint nutrition-source">From: {n.evidence}</span>}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function Foods({ foods }: { foods: readonly FoodItem[] }) {
  if (foods.length === 0) {
    return (
      <>
        <h3>Suggested foods</h3>
        <p className="muted">No food suggestions.</p>
      </>
    );
  }
  return (
    <div className="table-scroll">
      <table className="data-table" data-testid="nutrition-foods">
        <caption>Suggested foods</caption>
        <thead>
          <tr>
            <th scope="col">Food</th>
            <th scope="col">For</th>
            <th scope="col" className="num">Per 100 g</th>
            <th scope="col">Per serving</th>
            <th scope="col" className="num">Sodium per 100 g</th>
          </tr>
        </thead>
        <tbody>
          {foods.map((f, i) => (
            <tr key={`${f.ndbNo}-${f.nutrient}-${i}`} data-testid={`food-${f.ndbNo}`}>
              <th scope="row">
                {f.name}
                {f.reason && <span className="hint nutrition-source">{f.reason}</span>}
              </th>
              <td>{nameLabel(f.nutrient)}</td>
              <td className="num">{formatQuantity(f.amountPer100g, f.unit)}</td>
              <td>{servingText(f)}</td>
              <td className="num">{formatQuantity(f.sodiumMgPer100g, 'mg')}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Evidence({ evidence }: { evidence: readonly NutritionEvidence[] }) {
  return (
    <>
      <h3>What the analysis rests on</h3>
      {evidence.length === 0 ? (
        <p className="muted">No labs, conditions, medications or meals recorded.</p>
      ) : (
        <ul className="nutrition-evidence" data-testid="nutrition-evidence">
          {evidence.map((e, i) => (
            <li key={i}>
              <span className="tag">{e.kind}</span> {e.label}: {e.value}
              {e.at && <span className="hint"> ({formatDateTime(e.at)})</span>}
              {e.source && <span className="hint"> · {e.source}</span>}
            </li>
          ))}
        </ul>
      )}
    </>
  );
}

function LabForm({ pseudonym }: { pseudonym: string }) {
  const ids = useId();
  const first = ANALYTES[0]!;
  const [analyte, setAnalyte] = useState(first.id);
  const [value, setValue] = useState('');
  const [unit, setUnit] = useState(first.units[0]!);
  const [problem, setProblem] = useState<string | null>(null);
  const [stored, setStored] = useState<string | null>(null);
  const [record, recording] = useMutation<{ recordLabResults: number }>(RECORD_LAB_RESULTS, {
    refetchQueries: [{ query: NUTRITION_ANALYSIS, variables: { userId: pseudonym } }],
    awaitRefetchQueries: true,
  });
  const units = analyteById(analyte)?.units ?? [];

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setStored(null);
    const lab = labFromForm(analyte, value, unit);
    if ('error' in lab) {
      setProblem(lab.error);
      return;
    }
    setProblem(null);
    try {
      const result = await record({ variables: { userId: pseudonym, labs: [lab] } });
      const rows = result.data?.recordLabResults ?? 0;
      setStored(`Stored ${rows} lab ${rows === 1 ? 'result' : 'results'}; the analysis is up to date.`);
      setValue('');
    } catch {
      // shown from recording.error
    }
  };

  return (
    <form className="lab-form" onSubmit={submit} aria-labelledby={`${ids}-title`} data-testid="lab-form">
      <h3 id={`${ids}-title`}>Record a lab result</h3>
      <div className="lab-fields">
        <div className="field">
          <label htmlFor="lab-analyte">Analyte</label>
          <select id="lab-analyte" value={analyte} onChange={(e) => {
            setAnalyte(e.target.value);
            setUnit(analyteById(e.target.value)?.units[0] ?? '');
          }}>
            {ANALYTES.map((a) => <option key={a.id} value={a.id}>{a.label}</option>)}
          </select>
        </div>
        <div className="field">
          <label htmlFor="lab-value">Value</label>
          <input id="lab-value" inputMode="decimal" autoComplete="off" value={value}
            aria-invalid={problem !== null} onChange={(e) => setValue(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor="lab-unit">Unit</label>
          <select id="lab-unit" value={unit} onChange={(e) => setUnit(e.target.value)}>
            {units.map((u) => <option key={u} value={u}>{u}</option>)}
          </select>
        </div>
        <button type="submit" className="primary" data-testid="lab-submit" disabled={recording.loading}>Record</button>
      </div>
      {problem && <p role="alert" className="error-text">{problem}</p>}
      {recording.error && <p role="alert" className="error-text">{errorText(recording.error as ErrorLike)}</p>}
      {stored && <p role="status" className="ok-text" data-testid="lab-stored">{stored}</p>}
    </form>
  );
}
