/** The rollout form's values, checked as the API's plan is (cloud/rollout/plan.py), and the plan JSON. */

export interface RolloutFormValues {
  model: string;
  version: string;
  sites: string[];
  canaryShare: string;
  growth: string;
  bakeS: string;
  minDevices: string;
  minAgreement: string;
  maxLatencyP99Ms: string;
  latencySlackMs: string;
}

export const DEFAULT_FORM: RolloutFormValues = {
  model: '',
  version: '',
  sites: [],
  canaryShare: '0.1',
  growth: '2',
  bakeS: '3600',
  minDevices: '2',
  minAgreement: '0.9',
  maxLatencyP99Ms: '250',
  latencySlackMs: '10',
};

export interface RolloutPlanJson {
  sites?: string[];
  canary_share: number;
  growth: number;
  bake_s: number;
  min_devices_per_stage: number;
  gates: { min_agreement: number; max_latency_p99_ms: number; latency_slack_ms: number };
}

export type FormErrors = Partial<Record<keyof RolloutFormValues, string>>;

export type PlanResult = { ok: true; plan: RolloutPlanJson } | { ok: false; errors: FormErrors };

function number(text: string): number | null {
  if (text.trim() === '') return null;
  const value = Number(text);
  return Number.isFinite(value) ? value : null;
}

export function buildRolloutPlan(form: RolloutFormValues): PlanResult {
  const errors: FormErrors = {};
  if (!form.model) errors.model = 'Choose a model.';
  if (!form.version) errors.version = 'Choose the candidate version.';
  const canary = number(form.canaryShare);
  if (canary === null || !(canary > 0 && canary <= 1)) errors.canaryShare = 'Canary share must be above 0 and at most 1.';
  const growth = number(form.growth);
  if (growth === null || !(growth > 1)) errors.growth = 'Growth must be above 1 (stages must grow).';
  const bake = number(form.bakeS);
  if (bake === null || bake < 0) errors.bakeS = 'Bake time must be 0 s or more.';
  const minDevices = number(form.minDevices);
  if (minDevices === null || !Number.isInteger(minDevices) || minDevices < 1) {
    errors.minDevices = 'Minimum gateways per stage must be a whole number of at least 1.';
  }
  const agreement = number(form.minAgreement);
  if (agreement === null || agreement < 0 || agreement > 1) errors.minAgreement = 'Minimum agreement must lie within 0..1.';
  const p99 = number(form.maxLatencyP99Ms);
  if (p99 === null || !(p99 > 0)) errors.maxLatencyP99Ms = 'Maximum p99 latency must be above 0 ms.';
  // Slow-downs smaller than this never breach the latency-ratio gate: tiny models jitter by milliseconds.
  const slack = number(form.latencySlackMs);
  if (slack === null || slack < 0) errors.latencySlackMs = 'Latency slack must be 0 ms or more.';
  if (Object.keys(errors).length > 0) return { ok: false, errors };
  const plan: RolloutPlanJson = {
    canary_share: canary!,
    growth: growth!,
    bake_s: bake!,
    min_devices_per_stage: minDevices!,
    gates: { min_agreement: agreement!, max_latency_p99_ms: p99!, latency_slack_ms: slack! },
  };
  if (form.sites.length > 0) plan.sites = [...form.sites].sort();
  return { ok: true, plan };
}

/** Cumulative gateways per stage for a cohort, as the controller computes them: 10, 20 %, x2 -> [2, 4, 8, 10]. */
export function stageSizes(cohort: number, canaryShare: number, growth: number, minPerStage: number): number[] {
  const sizes: number[] = [];
  let share = canaryShare;
  for (let guard = 0; cohort > 0 && guard < 64; guard++) {
    const size = Math.min(cohort, Math.max(minPerStage, Math.ceil(cohort * share - 1e-9)));
    if (sizes.length === 0 || size > sizes[sizes.length - 1]!) sizes.push(size);
    if (size >= cohort) break;
    share *= growth;
  }
  return sizes;
}
