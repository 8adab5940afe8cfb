/** Named filter sets of the fleet console, kept in the browser's localStorage. */
import type { FleetFilter } from './fleetFilter';

export const VIEWS_KEY = 'cardiogate.fleet.views';

export interface SavedView {
  name: string;
  filter: FleetFilter;
}

type KeyValueStore = Pick<Storage, 'getItem' | 'setItem'>;

function isView(value: unknown): value is SavedView {
  if (value === null || typeof value !== 'object') return false;
  const v = value as { name?: unknown; filter?: Record<string, unknown> };
  return (
    typeof v.name === 'string' && v.name.length > 0 && v.filter !== null && typeof v.filter === 'object' &&
    typeof v.filter.text === 'string' && typeof v.filter.site === 'string' && typeof v.filter.health === 'string'
  );
}

export function loadViews(store: KeyValueStore): SavedView[] {
  try {
    const parsed: unknown = JSON.parse(store.getItem(VIEWS_KEY) ?? '[]');
    return Array.isArray(parsed) ? parsed.filter(isView) : [];
  } catch {
    return [];
  }
}

function write(store: KeyValueStore, views: SavedView[]): SavedView[] {
  const sorted = [...views].sort((a, b) => a.name.localeCompare(b.name));
  store.setItem(VIEWS_KEY, JSON.stringify(sorted));
  return sorted;
}

/** Saves `filter` under `name` (replacing a view of that name); returns the views now saved. */
export function saveView(store: KeyValueStore, name: string, filter: FleetFilter): SavedView[] {
  const trimmed = name.trim();
  if (!trimmed) return loadViews(store);
  const { text, site, health } = filter;
  return write(store, [...loadViews(store).filter((v) => v.name !== trimmed), { name: trimmed, filter: { text, site, health } }]);
}

export function deleteView(store: KeyValueStore, name: string): SavedView[] {
  return write(store, loadViews(store).filter((v) => v.name !== name));
}
