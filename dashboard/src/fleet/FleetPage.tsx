import { useQuery } from '@apollo/client';
import { useMemo, useState, type FormEvent } from 'react';
import { errorText } from '../api/errors';
import { FLEET } from '../api/operations';
import type { Gateway, Site } from '../api/types';
import { useNow } from '../components/useNow';
import { formatAgo, formatBytes, formatDateTime, formatDuration, toMs } from '../format';
import {
  EMPTY_FILTER,
  groupBySite,
  healthLabel,
  healthOptions,
  matchesFilter,
  STALE_HEARTBEAT_MS,
  type FleetFilter,
} from './fleetFilter';
import { GatewayTimeline } from './GatewayTimeline';
import { deleteView, loadViews, saveView, type SavedView } from './savedViews';

const POLL_MS = 5000;

interface RowProps {
  gateway: Gateway;
  nowMs: number;
  timelineOpen: boolean;
  onTimeline: (gatewayId: string) => void;
}

function GatewayRow({ gateway, nowMs, timelineOpen, onTimeline }: RowProps) {
  const health = healthLabel(gateway.health);
  const heartbeat = toMs(gateway.lastHeartbeat);
  const silent = heartbeat === null || nowMs - heartbeat > STALE_HEARTBEAT_MS;
  const models = Object.entries(gateway.modelVersions ?? {});
  return (
    <tr data-testid={`gateway-${gateway.gatewayId}`} data-health={health}>
      <th scope="row">{gateway.gatewayId}</th>
      <td><span className={`health health-${health}`}>{health}</span></td>
      <td>{gateway.softwareVersion || '—'}</td>
      <td>
        {models.length === 0 ? '—' : (
          <ul className="plain">
            {models.map(([name, version]) => <li key={name}>{name}: {version || 'none'}</li>)}
          </ul>
        )}
      </td>
      <td className="num">{gateway.outboxRecords}</td>
      <td className="num">{formatBytes(gateway.outboxBytes)}</td>
      <td className="num">{gateway.oldestUnsentAgeMs > 0 ? formatDuration(gateway.oldestUnsentAgeMs) : '—'}</td>
      <td title={formatDateTime(gateway.lastHeartbeat)}>
        {formatAgo(gateway.lastHeartbeat, nowMs)}
        {silent && <span className="tag tag-warn">silent</span>}
      </td>
      <td className="num">{gateway.connectedDevices}</td>
      <td>
        <button type="button" data-testid={`timeline-${gateway.gatewayId}`} aria-expanded={timelineOpen}
          aria-controls={timelineOpen ? 'gateway-timeline' : undefined} onClick={() => onTimeline(gateway.gatewayId)}>
          Timeline<span className="visually-hidden"> of {gateway.gatewayId}</span>
        </button>
      </td>
    </tr>
  );
}

function SavedViews({ filter, onApply }: { filter: FleetFilter; onApply: (f: FleetFilter) => void }) {
  const [views, setViews] = useState<SavedView[]>(() => loadViews(localStorage));
  const [name, setName] = useState('');
  const save = (event: FormEvent) => {
    event.preventDefault();
    if (!name.trim()) return;
    setViews(saveView(localStorage, name, filter));
    setName('');
  };
  return (
    <section aria-labelledby="views-title" className="saved-views">
      <h2 id="views-title">Saved views</h2>
      <form onSubmit={save} className="inline-form">
        <label htmlFor="view-name">View name</label>
        <input id="view-name" data-testid="view-name" value={name} maxLength={60} onChange={(e) => setName(e.target.value)} />
        <button type="submit" data-testid="save-view" disabled={!name.trim()}>Save view</button>
      </form>
      {views.length === 0 ? (
        <p className="muted">No saved views yet.</p>
      ) : (
        <ul className="view-list">
          {views.map((view) => (
            <li key={view.name}>
              <button type="button" data-testid={`view-${view.name}`} onClick={() => onApply(view.filter)}>
                Apply<span className="visually-hidden"> view</span> “{view.name}”
              </button>
              <button type="button" className="link-button" onClick={() => setViews(deleteView(localStorage, view.name))}>
                Delete<span className="visually-hidden"> view “{view.name}”</span>
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function FleetPage() {
  const { data, error, loading } = useQuery<{ sites: Site[]; gateways: Gateway[] }>(FLEET, {
    pollInterval: POLL_MS,
    fetchPolicy: 'cache-and-network',
  });
  const [filter, setFilter] = useState<FleetFilter>(EMPTY_FILTER);
  const [timelineOf, setTimelineOf] = useState<string | null>(null);
  const nowMs = useNow(1000);
  const gateways = data?.gateways ?? [];
  const sites = data?.sites ?? [];
  const groups = useMemo(
    () => groupBySite(gateways.filter((g) => matchesFilter(g, filter)), sites),
    [gateways, sites, filter],
  );
  const shown = groups.reduce((n, g) => n + g.gateways.length, 0);
  const set = (patch: Partial<FleetFilter>) => setFilter((f) => ({ ...f, ...patch }));
  const closeTimeline = () => {
    const gatewayId = timelineOf;
    setTimelineOf(null);
    // Back to the button that opened it, when that gateway is still shown.
    if (gatewayId !== null) {
      document.querySelector<HTMLButtonElement>(`[data-testid="timeline-${CSS.escape(gatewayId)}"]`)?.focus();
    }
  };

  return (
    <div className="fleet">
      <div className="page-heading">
        <h1>Fleet</h1>
        <p className="muted">{shown} of {gateways.length} gateways shown</p>
      </div>
      {error && <p role="alert" className="error-text">{errorText(error)}</p>}

      <div className="fleet-controls">
        <form className="filters" role="search" aria-label="Filter gateways" onSubmit={(e) => e.preventDefault()}>
          <div className="field">
            <label htmlFor="fleet-search">Search</label>
            <input id="fleet-search" type="search" data-testid="fleet-search" value={filter.text}
              placeholder="gateway, version, model…" onChange={(e) => set({ text: e.target.value })} />
          </div>
          <div className="field">
            <label htmlFor="fleet-site">Site</label>
            <select id="fleet-site" data-testid="fleet-site" value={filter.site} onChange={(e) => set({ site: e.target.value })}>
              <option value="">All sites</option>
              {sites.map((s) => <option key={s.siteId} value={s.siteId}>{s.name || s.siteId}</option>)}
            </select>
          </div>
          <div className="field">
            <label htmlFor="fleet-health">Health</label>
            <select id="fleet-health" data-testid="fleet-health" value={filter.health} onChange={(e) => set({ health: e.target.value })}>
              <option value="">Any health</option>
              {healthOptions(gateways).map((h) => <option key={h} value={h}>{h}</option>)}
            </select>
          </div>
          <button type="button" onClick={() => setFilter(EMPTY_FILTER)}>Clear filters</button>
        </form>
        <SavedViews filter={filter} onApply={setFilter} />
      </div>

      {timelineOf !== null && (
        <GatewayTimeline key={timelineOf} gatewayId={timelineOf} nowMs={nowMs} onClose={closeTimeline} />
      )}

      {loading && !data && <p>Loading the fleet…</p>}
      {data && shown === 0 && <p>No gateways match.</p>}
      {groups.map((group) => (
        <section key={group.siteId} aria-labelledby={`site-${group.siteId || 'none'}`} className="panel">
          <h2 id={`site-${group.siteId || 'none'}`}>
            {group.name} {group.siteId && group.name !== group.siteId && <span className="muted">({group.siteId})</span>}
          </h2>
          <div className="table-scroll" role="region" tabIndex={0} aria-label={`Gateways of ${group.name}, scrollable`}>
            <table className="data-table">
              <caption className="visually-hidden">Gateways of {group.name}</caption>
              <thead>
                <tr>
                  <th scope="col">Gateway</th>
                  <th scope="col">Health</th>
                  <th scope="col">Software</th>
                  <th scope="col">Models</th>
                  <th scope="col" className="num">Outbox records</th>
                  <th scope="col" className="num">Outbox size</th>
                  <th scope="col" className="num">Oldest unsent</th>
                  <th scope="col">Last heartbeat</th>
                  <th scope="col" className="num">Devices</th>
                  <th scope="col"><span className="visually-hidden">Timeline</span></th>
                </tr>
              </thead>
              <tbody>
                {group.gateways.map((g) => (
                  <GatewayRow key={g.gatewayId} gateway={g} nowMs={nowMs} timelineOpen={g.gatewayId === timelineOf}
                    onTimeline={(id) => setTimelineOf((open) => (open === id ? null : id))} />
                ))}
              </tbody>
            </table>
          </div>
        </section>
      ))}
    </div>
  );
}
