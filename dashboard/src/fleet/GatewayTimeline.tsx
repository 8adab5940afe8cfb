import { useQuery } from '@apollo/client';
import { useEffect, useId, useMemo, useRef, useState, type KeyboardEvent } from 'react';
import { errorText } from '../api/errors';
import { GATEWAY_TIMELINE } from '../api/operations';
import type { TimelineEntry } from '../api/types';
import { formatAgo, formatDateTime, toMs } from '../format';
import {
  DEFAULT_RANGE,
  isTimelineRange,
  kindClass,
  kindLabel,
  newestFirst,
  sinceFor,
  TIMELINE_LIMIT,
  TIMELINE_RANGES,
  type TimelineRange,
} from './timeline';

const POLL_MS = 10_000;

function EntryTime({ time, nowMs }: { time: string | null; nowMs: number }) {
  const ms = toMs(time);
  if (ms === null) return <>—</>;
  return (
    <>
      <time dateTime={new Date(ms).toISOString()}>{formatDateTime(ms)}</time>
      <span className="muted"> ({formatAgo(ms, nowMs)})</span>
    </>
  );
}

/** One range's entries; remounted when the range changes, so an older range's answer never shows. */
function TimelineEntries({ gatewayId, range, nowMs }: { gatewayId: string; range: TimelineRange; nowMs: number }) {
  // The period ends now: moving `since` every POLL_MS is the poll.
  const [since, setSince] = useState(() => sinceFor(range, Date.now()));
  useEffect(() => {
    const timer = window.setInterval(() => setSince(sinceFor(range, Date.now())), POLL_MS);
    return () => window.clearInterval(timer);
  }, [range]);
  // no-cache: each poll has its own `since`, and the cache would keep every one of them.
  const { data, previousData, error } = useQuery<{ gatewayTimeline: TimelineEntry[] }>(GATEWAY_TIMELINE, {
    variables: { gatewayId, since },
    fetchPolicy: 'no-cache',
  });
  // Kept while the next poll is under way, so a lasting failure is announced once, not every poll.
  const [failure, setFailure] = useState<string | null>(null);
  useEffect(() => {
    if (error) setFailure(errorText(error));
    else if (data) setFailure(null);
  }, [error, data]);
  const answer = data?.gatewayTimeline ?? previousData?.gatewayTimeline;
  const entries = useMemo(() => (answer ? newestFirst(answer) : null), [answer]);
  const label = TIMELINE_RANGES.find((r) => r.value === range)?.label ?? '';

  return (
    <>
      {failure && <p role="alert" className="error-text">{failure}</p>}
      {!entries && !failure && <p>Loading the timeline…</p>}
      {entries && entries.length === 0 && <p data-testid="gateway-timeline-empty">Nothing happened in this period.</p>}
      {entries && entries.length >= TIMELINE_LIMIT && (
        <p className="hint">Only the latest {TIMELINE_LIMIT} entries are shown; choose a shorter period to see all.</p>
      )}
      {entries && entries.length > 0 && (
        <div className="table-scroll" role="region" tabIndex={0} aria-label={`Timeline of ${gatewayId}, scrollable`}>
          <table className="data-table timeline-table">
            <caption className="visually-hidden">Events of {gatewayId}, {label.toLowerCase()}, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Kind</th>
                <th scope="col">What happened</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((entry, i) => (
                <tr key={`${entry.time ?? ''}|${entry.kind}|${entry.summary}|${i}`} data-kind={entry.kind}>
                  <td className="nowrap"><EntryTime time={entry.time} nowMs={nowMs} /></td>
                  <td><span className={`kind ${kindClass(entry.kind)}`}>{kindLabel(entry.kind)}</span></td>
                  <td>{entry.summary}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

/** The panel of one gateway's events; takes the focus when it opens, Escape or Close shuts it. */
export function GatewayTimeline({ gatewayId, nowMs, onClose }: { gatewayId: string; nowMs: number; onClose: () => void }) {
  const [range, setRange] = useState<TimelineRange>(DEFAULT_RANGE);
  const heading = useRef<HTMLHeadingElement>(null);
  const id = useId();
  useEffect(() => {
    heading.current?.focus();
  }, []);
  const onKeyDown = (event: KeyboardEvent) => {
    if (event.key === 'Escape' && !event.defaultPrevented) {
      event.preventDefault();
      onClose();
    }
  };

  return (
    <section id="gateway-timeline" className="panel gateway-timeline" aria-labelledby={`${id}-title`}
      data-testid="gateway-timeline" onKeyDown={onKeyDown}>
      <div className="live-panel-head">
        <h2 id={`${id}-title`} ref={heading} tabIndex={-1}>Timeline of {gatewayId}</h2>
        <div className="inline-form">
          <label htmlFor={`${id}-range`}>Period</label>
          <select id={`${id}-range`} data-testid="gateway-timeline-range" value={range}
            onChange={(e) => isTimelineRange(e.target.value) && setRange(e.target.value)}>
            {TIMELINE_RANGES.map((r) => <option key={r.value} value={r.value}>{r.label}</option>)}
          </select>
        </div>
        <button type="button" data-testid="gateway-timeline-close" onClick={onClose}>
          Close<span className="visually-hidden"> timeline of {gatewayId}</span>
        </button>
      </div>
      <TimelineEntries key={range} gatewayId={gatewayId} range={range} nowMs={nowMs} />
    </section>
  );
}
