import { useQuery } from '@apollo/client';
import { useSearchParams } from 'react-router-dom';
import { errorText } from '../api/errors';
import { MODELS, ROLLOUTS } from '../api/operations';
import type { Model, RolloutSummary, Site } from '../api/types';
import { useSession } from '../auth/AuthContext';
import { canManageRollouts } from '../auth/permissions';
import { formatDateTime } from '../format';
import { ModelRegistry } from './ModelRegistry';
import { RolloutDetail } from './RolloutDetail';
import { RolloutForm } from './RolloutForm';

const ROLLOUTS_POLL_MS = 2000;
const MODELS_POLL_MS = 30_000;

function stageText(r: RolloutSummary): string {
  const total = r.stageSizes.length;
  if (total === 0) return '—';
  const shown = Math.min(r.stage + 1, total);
  return `${shown} of ${total} (${r.stageSizes.join(', ')})`;
}

export function ModelsPage() {
  const { identity } = useSession();
  const canManage = canManageRollouts(identity.role);
  const [params, setParams] = useSearchParams();
  const selected = params.get('rollout');
  const select = (id: string | null) => setParams(id ? { rollout: id } : {}, { replace: false });

  const models = useQuery<{ models: Model[]; sites: Site[] }>(MODELS, { pollInterval: MODELS_POLL_MS, fetchPolicy: 'cache-and-network' });
  const rollouts = useQuery<{ rollouts: RolloutSummary[] }>(ROLLOUTS, { pollInterval: ROLLOUTS_POLL_MS, fetchPolicy: 'cache-and-network' });
  const list = rollouts.data?.rollouts ?? [];

  return (
    <div className="models">
      <div className="page-heading">
        <h1>Models and rollouts</h1>
      </div>

      <section className="panel" aria-labelledby="rollouts-title">
        <h2 id="rollouts-title">Rollouts</h2>
        {rollouts.error && <p role="alert" className="error-text">{errorText(rollouts.error)}</p>}
        {rollouts.data && list.length === 0 && <p>No rollouts yet.</p>}
        {list.length > 0 && (
          <div className="table-scroll" role="region" tabIndex={0} aria-label="Rollouts, scrollable">
            <table className="data-table">
              <caption className="visually-hidden">Rollouts, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Rollout</th>
                  <th scope="col">Model</th>
                  <th scope="col">Candidate</th>
                  <th scope="col">Baseline</th>
                  <th scope="col">State</th>
                  <th scope="col">Stage</th>
                  <th scope="col">Started</th>
                  <th scope="col">Decision</th>
                  <th scope="col"><span className="visually-hidden">Details</span></th>
                </tr>
              </thead>
              <tbody>
                {list.map((r) => (
                  <tr key={r.rolloutId} data-testid={`rollout-${r.rolloutId}`} data-state={r.state}
                    className={r.rolloutId === selected ? 'row-selected' : undefined}>
                    <th scope="row"><code>{r.rolloutId}</code></th>
                    <td>{r.model}</td>
                    <td>{r.candidateVersion}</td>
                    <td>{r.baselineVersion ?? '—'}</td>
                    <td><span className={`state state-${r.state}`}>{r.state}</span></td>
                    <td>{stageText(r)}</td>
                    <td>{formatDateTime(r.createdAt)}</td>
                    <td>{r.decision || '—'}</td>
                    <td>
                      <button type="button" data-testid={`rollout-open-${r.rolloutId}`} aria-pressed={r.rolloutId === selected}
                        onClick={() => select(r.rolloutId === selected ? null : r.rolloutId)}>
                        Details<span className="visually-hidden"> of rollout {r.rolloutId}</span>
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      {selected && <RolloutDetail key={selected} rolloutId={selected} canManage={canManage} onClose={() => select(null)} />}

      {canManage && models.data && (
        <section className="panel">
          <RolloutForm models={models.data.models} sites={models.data.sites} onStarted={(id) => select(id)} />
        </section>
      )}

      <section className="panel" aria-labelledby="registry-title">
        <h2 id="registry-title">Registry</h2>
        {models.error && <p role="alert" className="error-text">{errorText(models.error)}</p>}
        {models.loading && !models.data && <p>Loading models…</p>}
        {models.data && <ModelRegistry models={models.data.models} />}
      </section>
    </div>
  );
}
