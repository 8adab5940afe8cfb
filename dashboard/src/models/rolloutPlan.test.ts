import { describe, expect, it } from 'vitest';
import { buildRolloutPlan, DEFAULT_FORM, stageSizes } from './rolloutPlan';

describe('buildRolloutPlan', () => {
  it('builds the plan JSON the API takes', () => {
    const result = buildRolloutPlan({
      ...DEFAULT_FORM, model: 'af-detector', version: '4', sites: ['ward-b', 'ward-a'], canaryShare: '0.25',
      bakeS: '600', minAgreement: '0.95', maxLatencyP99Ms: '120', latencySlackMs: '500',
    });
    expect(result).toEqual({
      ok: true,
      plan: {
        sites: ['ward-a', 'ward-b'], canary_share: 0.25, growth: 2, bake_s: 600, min_devices_per_stage: 2,
        gates: { min_agreement: 0.95, max_latency_p99_ms: 120, latency_slack_ms: 500 },
      },
    });
  });

  it('leaves sites out when none is chosen', () => {
    const result = buildRolloutPlan({ ...DEFAULT_FORM, model: 'm', version: '1' });
    expect(result.ok && 'sites' in result.plan).toBe(false);
  });

  it('refuses what the API would refuse', () => {
    const result = buildRolloutPlan({
      ...DEFAULT_FORM, canaryShare: '0', growth: '1', bakeS: '-1', minDevices: '1.5', minAgreement: '1.2', maxLatencyP99Ms: '', latencySlackMs: '-1',
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(Object.keys(result.errors).sort()).toEqual(
      ['bakeS', 'canaryShare', 'growth', 'latencySlackMs', 'maxLatencyP99Ms', 'minAgreement', 'minDevices', 'model',
        'version'],
    );
  });
});

describe('stageSizes', () => {
  it('matches the controller', () => {
    expect(stageSizes(10, 0.2, 2, 2)).toEqual([2, 4, 8, 10]);
    expect(stageSizes(10, 0.1, 2, 2)).toEqual([2, 4, 8, 10]);
    expect(stageSizes(3, 0.1, 2, 2)).toEqual([2, 3]);
    expect(stageSizes(1, 0.1, 2, 2)).toEqual([1]);
    expect(stageSizes(0, 0.1, 2, 2)).toEqual([]);
    expect(stageSizes(100, 0.05, 3, 1)).toEqual([5, 15, 45, 100]);
  });
});
