import type { RiskReport } from '../api/types';
import { formatDateTime, formatFraction, formatNumber } from '../format';

export function RiskPanel({ report }: { report: RiskReport | null }) {
  if (!report) return <p>No risk report yet.</p>;
  return (
    <div className="risk-panel">
      <dl className="facts">
        <div><dt>Score</dt><dd className="risk-score">{report.score.toFixed(2)}</dd></div>
        <div><dt>Level</dt><dd>{report.level}</dd></div>
        <div><dt>Confidence</dt><dd>{formatFraction(report.confidence)}</dd></div>
        <div><dt>NEWS2</dt><dd>{formatNumber(report.news2)}</dd></div>
        <div><dt>Computed</dt><dd>{formatDateTime(report.computedAt)}</dd></div>
        <div><dt>Model</dt><dd>{report.modelName} version {report.modelVersion}</dd></div>
      </dl>
      {report.baseline && (
        <p className="note" data-testid="risk-baseline">
          Baseline: this score comes from the rule baseline {report.modelName} (version {report.modelVersion}), not from a
          trained model.
        </p>
      )}
      {report.provisional && (
        <p className="note">
          Provisional: assessed at once on an alarm ({report.trigger || 'alarm'}); the window's own report will replace it.
        </p>
      )}
      <table className="data-table">
        <caption>Risk factors</caption>
        <thead>
          <tr>
            <th scope="col">Factor</th>
            <th scope="col" className="num">Value</th>
            <th scope="col" className="num">Contribution</th>
            <th scope="col">Description</th>
          </tr>
        </thead>
        <tbody>
          {report.factors.length === 0 && (
            <tr><td colSpan={4}>No factors in this report.</td></tr>
          )}
          {report.factors.map((f) => (
            <tr key={f.name}>
              <th scope="row">{f.name}</th>
              <td className="num">{formatNumber(f.value, 2)}</td>
              <td className="num">{formatNumber(f.contribution, 3)}</td>
              <td>{f.description}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {report.recommendations.length > 0 && (
        <>
          <h3>Recommendations</h3>
          <ul>
            {report.recommendations.map((r) => <li key={r}>{r}</li>)}
          </ul>
        </>
      )}
    </div>
  );
}
