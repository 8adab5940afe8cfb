import type { Model } from '../api/types';
import { formatDateTime, toMs } from '../format';
import { JsonTable } from './JsonTable';

/** Registered versions, grouped by model, newest first. */
export function ModelRegistry({ models }: { models: readonly Model[] }) {
  if (models.length === 0) return <p>No models registered.</p>;
  const byName = new Map<string, Model[]>();
  for (const m of models) byName.set(m.name, [...(byName.get(m.name) ?? []), m]);
  return (
    <>
      {[...byName.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, versions]) => (
        <section key={name} aria-labelledby={`model-${name}`} className="model-group">
          <h3 id={`model-${name}`}>{name}</h3>
          <div className="table-scroll" role="region" tabIndex={0} aria-label={`Versions of ${name}, scrollable`}>
            <table className="data-table">
              <caption className="visually-hidden">Versions of {name}</caption>
              <thead>
                <tr>
                  <th scope="col">Version</th>
                  <th scope="col">Aliases</th>
                  <th scope="col">Task</th>
                  <th scope="col">Registered</th>
                  <th scope="col">SHA-256</th>
                  <th scope="col">Metrics</th>
                  <th scope="col">Card</th>
                </tr>
              </thead>
              <tbody>
                {[...versions]
                  .sort((a, b) => (toMs(b.createdAt) ?? 0) - (toMs(a.createdAt) ?? 0))
                  .map((m) => (
                    <tr key={m.version} data-testid={`model-${m.name}-${m.version}`}>
                      <th scope="row">{m.version}</th>
                      <td>{m.aliases.length ? m.aliases.map((a) => <span key={a} className="tag">{a}</span>) : '—'}</td>
                      <td>{m.task}</td>
                      <td>{formatDateTime(m.createdAt)}</td>
                      <td><code title={m.sha256}>{m.sha256.slice(0, 12)}</code></td>
                      <td><JsonTable value={m.metrics} /></td>
                      <td>
                        {m.card ? (
                          <details>
                            <summary>Model card<span className="visually-hidden"> of {m.name} {m.version}</span></summary>
                            <pre className="card-text">{m.card}</pre>
                          </details>
                        ) : '—'}
                      </td>
                    </tr>
                  ))}
              </tbody>
            </table>
          </div>
        </section>
      ))}
    </>
  );
}
