import { describe, expect, it } from 'vitest';
import type { Gateway } from '../api/types';
import { EMPTY_FILTER, groupBySite, healthOptions, matchesFilter } from './fleetFilter';
import { deleteView, loadViews, saveView, VIEWS_KEY } from './savedViews';

const gateway = (gatewayId: string, site: string | null, health = 'ok', models: Record<string, string> = {}): Gateway => ({
  gatewayId, site, health, softwareVersion: '1.4.0', modelVersions: models, outboxRecords: 0, outboxBytes: 0,
  oldestUnsentAgeMs: 0, lastHeartbeat: null, connectedDevices: 1,
});

describe('matchesFilter', () => {
  const g = gateway('gw-ward-a-01', 'ward-a', 'degraded', { 'af-detector': '3' });
  it('matches every word of the text anywhere', () => {
    expect(matchesFilter(g, { ...EMPTY_FILTER, text: 'WARD-A af-detector 3' })).toBe(true);
    expect(matchesFilter(g, { ...EMPTY_FILTER, text: 'ward-b' })).toBe(false);
  });
  it('filters by site and health', () => {
    expect(matchesFilter(g, { text: '', site: 'ward-a', health: 'degraded' })).toBe(true);
    expect(matchesFilter(g, { text: '', site: 'ward-b', health: '' })).toBe(false);
    expect(matchesFilter(g, { text: '', site: '', health: 'ok' })).toBe(false);
    expect(matchesFilter(gateway('x', null, ''), { text: '', site: '', health: 'unknown' })).toBe(true);
  });
});

describe('groupBySite', () => {
  it('groups by site name, siteless last, gateways by id', () => {
    const groups = groupBySite(
      [gateway('gw-2', 'b'), gateway('gw-9', null), gateway('gw-1', 'b'), gateway('gw-3', 'a')],
      [{ siteId: 'a', name: 'Zeta ward' }, { siteId: 'b', name: 'Alpha ward' }],
    );
    expect(groups.map((g) => [g.name, g.gateways.map((x) => x.gatewayId)])).toEqual([
      ['Alpha ward', ['gw-1', 'gw-2']],
      ['Zeta ward', ['gw-3']],
      ['No site', ['gw-9']],
    ]);
  });
  it('offers the usual health values and any others', () => {
    expect(healthOptions([gateway('a', null, 'draining')])).toEqual(['ok', 'degraded', 'unknown', 'draining']);
  });
});

describe('saved views', () => {
  const memory = () => {
    const data = new Map<string, string>();
    return { getItem: (k: string) => data.get(k) ?? null, setItem: (k: string, v: string) => void data.set(k, v), data };
  };

  it('saves, replaces by name, sorts and deletes', () => {
    const store = memory();
    saveView(store, 'degraded', { text: '', site: '', health: 'degraded' });
    saveView(store, ' ward A ', { text: 'gw', site: 'ward-a', health: '' });
    const views = saveView(store, 'degraded', { text: 'x', site: '', health: 'degraded' });
    expect(views).toEqual([
      { name: 'degraded', filter: { text: 'x', site: '', health: 'degraded' } },
      { name: 'ward A', filter: { text: 'gw', site: 'ward-a', health: '' } },
    ]);
    expect(deleteView(store, 'degraded').map((v) => v.name)).toEqual(['ward A']);
    expect(loadViews(store).length).toBe(1);
  });

  it('ignores damaged storage', () => {
    const store = memory();
    store.data.set(VIEWS_KEY, '{not json');
    expect(loadViews(store)).toEqual([]);
    store.data.set(VIEWS_KEY, JSON.stringify([{ name: 'ok', filter: { text: '', site: '', health: '' } }, { name: 3 }]));
    expect(loadViews(store).map((v) => v.name)).toEqual(['ok']);
    expect(saveView(store, '  ', EMPTY_FILTER).length).toBe(1);
  });
});
