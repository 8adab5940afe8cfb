import { useMutation } from '@apollo/client';
import { useMemo, useState, type FormEvent, type ReactNode } from 'react';
import { errorText, type ErrorLike } from '../api/errors';
import { ROLLOUTS, START_ROLLOUT } from '../api/operations';
import type { Model, RolloutSummary, Site } from '../api/types';
import { toMs } from '../format';
import { buildRolloutPlan, DEFAULT_FORM, type FormErrors, type RolloutFormValues } from './rolloutPlan';

interface RolloutFormProps {
  models: readonly Model[];
  sites: readonly Site[];
  onStarted: (rolloutId: string) => void;
}

interface FieldProps {
  id: string;
  label: string;
  error?: string;
  hint?: string;
  children: ReactNode;
}

function Field({ id, label, error, hint, children }: FieldProps) {
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      {children}
      {hint && <span id={`${id}-hint`} className="hint">{hint}</span>}
      {error && <span id={`${id}-error`} className="error-text">{error}</span>}
    </div>
  );
}

const described = (id: string, errors: FormErrors, key: keyof RolloutFormValues, hint = false) => ({
  'aria-invalid': errors[key] ? true : undefined,
  'aria-describedby': [hint ? `${id}-hint` : '', errors[key] ? `${id}-error` : ''].filter(Boolean).join(' ') || undefined,
});

export function RolloutForm({ models, sites, onStarted }: RolloutFormProps) {
  const [form, setForm] = useState<RolloutFormValues>(DEFAULT_FORM);
  const [errors, setErrors] = useState<FormErrors>({});
  const [message, setMessage] = useState<string | null>(null);
  const [start, { loading, error }] = useMutation<{ startRollout: RolloutSummary }>(START_ROLLOUT, {
    refetchQueries: [{ query: ROLLOUTS }],
  });

  const names = useMemo(() => [...new Set(models.map((m) => m.name))].sort(), [models]);
  const versions = useMemo(
    () => models.filter((m) => m.name === form.model).sort((a, b) => (toMs(b.createdAt) ?? 0) - (toMs(a.createdAt) ?? 0)),
    [models, form.model],
  );
  const set = (patch: Partial<RolloutFormValues>) => setForm((f) => ({ ...f, ...patch }));

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setMessage(null);
    const result = buildRolloutPlan(form);
    if (!result.ok) {
      setErrors(result.errors);
      return;
    }
    setErrors({});
    try {
      const response = await start({ variables: { model: form.model, version: form.version, plan: result.plan } });
      const rollout = response.data?.startRollout;
      if (rollout) {
        setMessage(`Rollout ${rollout.rolloutId} started: ${rollout.model} ${rollout.candidateVersion}.`);
        onStarted(rollout.rolloutId);
      }
    } catch {
      // shown from `error`
    }
  };

  return (
    <form className="rollout-form" onSubmit={submit} noValidate aria-labelledby="rollout-form-title">
      <h2 id="rollout-form-title">Start rollout</h2>
      <div className="form-grid">
        <Field id="rollout-model" label="Model" error={errors.model}>
          <select id="rollout-model" value={form.model} {...described('rollout-model', errors, 'model')}
            onChange={(e) => set({ model: e.target.value, version: '' })}>
            <option value="">Choose a model</option>
            {names.map((n) => <option key={n} value={n}>{n}</option>)}
          </select>
        </Field>
        <Field id="rollout-version" label="Candidate version" error={errors.version}>
          <select id="rollout-version" value={form.version} disabled={!form.model}
            {...described('rollout-version', errors, 'version')} onChange={(e) => set({ version: e.target.value })}>
            <option value="">Choose a version</option>
            {versions.map((m) => (
              <option key={m.version} value={m.version}>
                {m.version}{m.aliases.length ? ` (${m.aliases.join(', ')})` : ''}
              </option>
            ))}
          </select>
        </Field>
        <Field id="rollout-canary-share" label="Canary share (0–1]" error={errors.canaryShare}
          hint="Share of the cohort in the first stage">
          <input id="rollout-canary-share" type="number" inputMode="decimal" min="0.01" max="1" step="0.01"
            value={form.canaryShare} {...described('rollout-canary-share', errors, 'canaryShare', true)}
            onChange={(e) => set({ canaryShare: e.target.value })} />
        </Field>
        <Field id="rollout-growth" label="Growth per stage (>1)" error={errors.growth}>
          <input id="rollout-growth" type="number" inputMode="decimal" min="1.01" step="0.1" value={form.growth}
            {...described('rollout-growth', errors, 'growth')} onChange={(e) => set({ growth: e.target.value })} />
        </Field>
        <Field id="rollout-bake-s" label="Bake time per stage (s)" error={errors.bakeS}>
          <input id="rollout-bake-s" type="number" inputMode="numeric" min="0" step="1" value={form.bakeS}
            {...described('rollout-bake-s', errors, 'bakeS')} onChange={(e) => set({ bakeS: e.target.value })} />
        </Field>
        <Field id="rollout-min-devices" label="Minimum gateways per stage" error={errors.minDevices}>
          <input id="rollout-min-devices" type="number" inputMode="numeric" min="1" step="1" value={form.minDevices}
            {...described('rollout-min-devices', errors, 'minDevices')} onChange={(e) => set({ minDevices: e.target.value })} />
        </Field>
        <Field id="rollout-min-agreement" label="Gate: minimum shadow agreement (0–1)" error={errors.minAgreement}>
          <input id="rollout-min-agreement" type="number" inputMode="decimal" min="0" max="1" step="0.01"
            value={form.minAgreement} {...described('rollout-min-agreement', errors, 'minAgreement')}
            onChange={(e) => set({ minAgreement: e.target.value })} />
        </Field>
        <Field id="rollout-max-p99" label="Gate: maximum p99 latency (ms)" error={errors.maxLatencyP99Ms}>
          <input id="rollout-max-p99" type="number" inputMode="decimal" min="1" step="1" value={form.maxLatencyP99Ms}
            {...described('rollout-max-p99', errors, 'maxLatencyP99Ms')} onChange={(e) => set({ maxLatencyP99Ms: e.target.value })} />
        </Field>
        <Field id="rollout-latency-slack" label="Gate: latency slack (ms)" error={errors.latencySlackMs}>
          <input id="rollout-latency-slack" type="number" inputMode="decimal" min="0" step="1" value={form.latencySlackMs}
            {...described('rollout-latency-slack', errors, 'latencySlackMs')} onChange={(e) => set({ latencySlackMs: e.target.value })} />
        </Field>
      </div>
      <fieldset className="site-choice">
        <legend>Sites (none chosen: every site)</legend>
        {sites.length === 0 && <p className="muted">No sites registered.</p>}
        {sites.map((s) => (
          <label key={s.siteId} className="check">
            <input type="checkbox" id={`rollout-site-${s.siteId}`} checked={form.sites.includes(s.siteId)}
              onChange={(e) => set({
                sites: e.target.checked ? [...form.sites, s.siteId] : form.sites.filter((x) => x !== s.siteId),
              })} />
            {s.name || s.siteId}
          </label>
        ))}
      </fieldset>
      {error && <p role="alert" className="error-text">Rollout not started: {errorText(error as ErrorLike)}</p>}
      {Object.keys(errors).length > 0 && <p role="alert" className="error-text">Correct the marked fields.</p>}
      {message && <p role="status" className="ok-text">{message}</p>}
      <button type="submit" className="primary" data-testid="rollout-start" disabled={loading}>
        {loading ? 'Starting…' : 'Start rollout'}
      </button>
    </form>
  );
}
