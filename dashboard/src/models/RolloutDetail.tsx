import { useMutation, useQuery } from '@apollo/client';
import { useState } from 'react';
import { errorText, type ErrorLike } from '../api/errors';
import { ROLLOUT, ROLLOUT_ACTIONS, ROLLOUTS, type RolloutAction } from '../api/operations';
import type { Rollout } from '../api/types';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { formatDateTime, formatDuration, formatFraction, formatNumber } from '../format';
import { JsonTable, JsonValue } from './JsonTable';
import { ACTION_TEXT, allowedActions } from './rolloutActions';

const POLL_MS = 2000;
const ORDER: RolloutAction[] = ['pause', 'resume', 'promote', 'abort'];

function stageState(index: number, rollout: Rollout): string {
  if (index < rollout.stage) return 'passed';
  if (index === rollout.stage && (rollout.state === 'running' || rollout.state === 'paused')) return rollout.state === 'paused' ? 'paused' : 'baking';
  return rollout.state === 'aborted' && index === rollout.stage ? 'aborted' : 'waiting';
}

export function RolloutDetail({ rolloutId, canManage, onClose }: { rolloutId: string; canManage: boolean; onClose: () => void }) {
  const { data, error } = useQuery<{ rollout: Rollout | null }>(ROLLOUT, {
    variables: { rolloutId },
    pollInterval: POLL_MS,
    fetchPolicy: 'cache-and-network',
  });
  const [asking, setAsking] = useState<RolloutAction | null>(null);
  const [act, acting] = useMutation(asking ? ROLLOUT_ACTIONS[asking] : ROLLOUT_ACTIONS.pause, {
    refetchQueries: [{ query: ROLLOUT, variables: { rolloutId } }, { query: ROLLOUTS }],
  });
  const rollout = data?.rollout;
  const allowed = allowedActions(rollout?.state ?? '');

  const confirm = async (reason: string) => {
    try {
      await act({ variables: { rolloutId, reason } });
      setAsking(null);
    } catch {
      // stays open with the error
    }
  };

  return (
    <section className="panel rollout-detail" aria-labelledby="rollout-detail-title" data-testid="rollout-detail">
      <div className="live-panel-head">
        <h2 id="rollout-detail-title">Rollout {rolloutId}</h2>
        <button type="button" onClick={onClose}>Close<span className="visually-hidden"> rollout details</span></button>
      </div>
      {error && <p role="alert" className="error-text">{errorText(error)}</p>}
      {!rollout && !error && <p>Loading…</p>}
      {data && !rollout && <p>No such rollout.</p>}
      {rollout && (
        <>
          <dl className="facts">
            <div><dt>Model</dt><dd>{rollout.model}</dd></div>
            <div><dt>Candidate</dt><dd>{rollout.candidateVersion}</dd></div>
            <div><dt>Baseline</dt><dd>{rollout.baselineVersion ?? '—'}</dd></div>
            <div><dt>State</dt><dd data-testid="rollout-detail-state">{rollout.state}</dd></div>
            <div><dt>Started</dt><dd>{formatDateTime(rollout.createdAt)}</dd></div>
            <div><dt>Finished</dt><dd>{formatDateTime(rollout.finishedAt)}</dd></div>
            <div><dt>Decision</dt><dd>{rollout.decision || '—'}</dd></div>
          </dl>

          {canManage && (
            <div className="button-row" role="group" aria-label="Rollout actions">
              {ORDER.map((action) => (
                <button key={action} type="button" data-testid={`rollout-${action}`}
                  className={ACTION_TEXT[action].danger ? 'danger' : undefined}
                  disabled={!allowed.has(action)} onClick={() => setAsking(action)}>
                  {ACTION_TEXT[action].label}
                </button>
              ))}
            </div>
          )}

          <h3>Stages</h3>
          <ol className="stages">
            {rollout.stageSizes.map((size, i) => (
              <li key={i} className={`stage stage-${stageState(i, rollout)}`}>
                Stage {i + 1}: {size} gateway{size === 1 ? '' : 's'} in total — {stageState(i, rollout)}
              </li>
            ))}
          </ol>

          <h3>Gateways</h3>
          <div className="table-scroll" role="region" tabIndex={0} aria-label="Rollout gateways, scrollable">
            <table className="data-table">
              <caption className="visually-hidden">Gateways of rollout {rolloutId}</caption>
              <thead>
                <tr>
                  <th scope="col">Gateway</th>
                  <th scope="col" className="num">Stage</th>
                  <th scope="col">Status</th>
                  <th scope="col">Active version</th>
                  <th scope="col" className="num">Windows</th>
                  <th scope="col" className="num">Agreement</th>
                  <th scope="col" className="num">Shadow time</th>
                  <th scope="col" className="num">p99 candidate / live (ms)</th>
                  <th scope="col" className="num">Alarm rate candidate / live</th>
                  <th scope="col" className="num">Errors · load failures · crashes</th>
                  <th scope="col">Refusal</th>
                  <th scope="col">Last report</th>
                </tr>
              </thead>
              <tbody>
                {rollout.members.length === 0 && <tr><td colSpan={12}>No gateways yet.</td></tr>}
                {rollout.members.map((m) => (
                  <tr key={m.gatewayId} data-testid={`member-${m.gatewayId}`}>
                    <th scope="row">{m.gatewayId}</th>
                    <td className="num">{m.stage + 1}</td>
                    <td>{m.status}{m.alarmActive && <span className="tag tag-warn">alarm active</span>}</td>
                    <td>{m.activeVersion || '—'}</td>
                    <td className="num">{m.windows}</td>
                    <td className="num">{formatFraction(m.agreement, 1)}</td>
                    <td className="num">{formatDuration(m.shadowS * 1000)}</td>
                    <td className="num">{formatNumber(m.candidateP99Ms, 1)} / {formatNumber(m.liveP99Ms, 1)}</td>
                    <td className="num">{formatNumber(m.candidateAlarmRate, 3)} / {formatNumber(m.liveAlarmRate, 3)}</td>
                    <td className="num">{m.candidateErrors} · {m.loadFailures} · {m.crashes}</td>
                    <td>{m.refusalCode ? `${m.refusalCode}${m.refusalDetail ? `: ${m.refusalDetail}` : ''}` : '—'}</td>
                    <td>{formatDateTime(m.lastReportAt)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>

          <h3>History</h3>
          <div className="table-scroll" role="region" tabIndex={0} aria-label="Rollout history, scrollable">
            <table className="data-table">
              <caption className="visually-hidden">History of rollout {rolloutId}</caption>
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">Event</th>
                  <th scope="col">Gateway</th>
                  <th scope="col">By</th>
                  <th scope="col">Detail</th>
                </tr>
              </thead>
              <tbody>
                {rollout.history.map((h, i) => (
                  <tr key={i}>
                    <td>{formatDateTime(h.at)}</td>
                    <td>{h.kind}</td>
                    <td>{h.gatewayId ?? '—'}</td>
                    <td>{h.actor || '—'}</td>
                    <td><JsonValue value={h.detail} /></td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>

          <details>
            <summary>Plan</summary>
            <JsonTable value={rollout.plan} />
          </details>
        </>
      )}

      {asking && (
        <ConfirmDialog
          title={`${ACTION_TEXT[asking].label} rollout ${rolloutId}`}
          message={ACTION_TEXT[asking].question}
          confirmLabel={ACTION_TEXT[asking].label}
          danger={ACTION_TEXT[asking].danger}
          busy={acting.loading}
          error={acting.error ? errorText(acting.error as ErrorLike) : null}
          onConfirm={(reason) => void confirm(reason)}
          onCancel={() => {
            acting.reset();
            setAsking(null);
          }}
        />
      )}
    </section>
  );
}
