/** A JSON value as nested key/value tables (model metrics, rollout plans, history details). */

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function scalar(value: unknown): string {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toPrecision(4).replace(/\.?0+$/, '');
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  return JSON.stringify(value);
}

export function JsonValue({ value }: { value: unknown }) {
  if (isRecord(value)) return <JsonTable value={value} />;
  if (Array.isArray(value)) {
    if (value.every((v) => !isRecord(v) && !Array.isArray(v))) return <>{value.map(scalar).join(', ') || '—'}</>;
    return <pre className="json">{JSON.stringify(value, null, 2)}</pre>;
  }
  return <>{scalar(value)}</>;
}

export function JsonTable({ value, caption }: { value: unknown; caption?: string }) {
  if (!isRecord(value)) return <JsonValue value={value} />;
  const entries = Object.entries(value);
  if (entries.length === 0) return <span className="muted">none</span>;
  return (
    <table className="json-table">
      {caption && <caption>{caption}</caption>}
      <tbody>
        {entries.map(([key, v]) => (
          <tr key={key}>
            <th scope="row">{key}</th>
            <td><JsonValue value={v} /></td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
