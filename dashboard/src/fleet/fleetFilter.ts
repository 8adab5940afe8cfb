/** Filtering and grouping of the fleet console's gateways. */
import type { Gateway, Site } from '../api/types';

export interface FleetFilter {
  /** Matched against gateway id, site, software and model versions (case-insensitive). */
  text: string;
  /** A site id, or '' for all. */
  site: string;
  /** A health value ('unknown' for none reported), or '' for all. */
  health: string;
}

export const EMPTY_FILTER: FleetFilter = { text: '', site: '', health: '' };

export function healthLabel(health: string): string {
  return health || 'unknown';
}

function haystack(g: Gateway): string {
  const models = Object.entries(g.modelVersions ?? {}).map(([name, version]) => `${name} ${version}`);
  return [g.gatewayId, g.site ?? '', g.softwareVersion, healthLabel(g.health), ...models].join(' ').toLowerCase();
}

export function matchesFilter(g: Gateway, filter: FleetFilter): boolean {
  if (filter.site && g.site !== filter.site) return false;
  if (filter.health && healthLabel(g.health) !== filter.health) return false;
  const words = filter.text.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return true;
  const text = haystack(g);
  return words.every((w) => text.includes(w));
}

export interface SiteGroup {
  siteId: string;
  name: string;
  gateways: Gateway[];
}

export const NO_SITE = '';

/** Gateways by site in site-name order (gateways without a site last), each sorted by id. */
export function groupBySite(gateways: readonly Gateway[], sites: readonly Site[]): SiteGroup[] {
  const names = new Map(sites.map((s) => [s.siteId, s.name]));
  const groups = new Map<string, SiteGroup>();
  for (const g of gateways) {
    const siteId = g.site ?? NO_SITE;
    let group = groups.get(siteId);
    if (!group) {
      group = { siteId, name: siteId === NO_SITE ? 'No site' : (names.get(siteId) ?? siteId), gateways: [] };
      groups.set(siteId, group);
    }
    group.gateways.push(g);
  }
  for (const group of groups.values()) group.gateways.sort((a, b) => (a.gatewayId < b.gatewayId ? -1 : 1));
  return [...groups.values()].sort((a, b) =>
    a.siteId === NO_SITE ? 1 : b.siteId === NO_SITE ? -1 : a.name.localeCompare(b.name) || (a.siteId < b.siteId ? -1 : 1),
  );
}

/** The health values to offer: the usual ones plus any the fleet reports. */
export function healthOptions(gateways: readonly Gateway[]): string[] {
  const seen = new Set(['ok', 'degraded', 'unknown']);
  for (const g of gateways) seen.add(healthLabel(g.health));
  return [...seen];
}

/** A heartbeat older than this marks the gateway as silent. */
export const STALE_HEARTBEAT_MS = 120_000;
