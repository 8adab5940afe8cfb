import { useMutation } from '@apollo/client';
import { useState, type FormEvent } from 'react';
import { errorText, type ErrorLike } from '../api/errors';
import { COMMENT_ALARM, LABEL_ALARM, PATIENT_ALARMS } from '../api/operations';
import type { Alarm } from '../api/types';
import { formatDateTime, formatNumber } from '../format';
import { commandName } from '../ward/commandStatus';
import { AlarmBadge } from '../ward/AlarmList';
import { labelBy, type AlarmHistoryEntry } from './alarmHistory';

interface AlarmHistoryProps {
  pseudonym: string;
  entries: AlarmHistoryEntry[];
  username: string;
  canComment: boolean;
  canLabel: boolean;
  /** Opens the alarm's discussion in the chat panel (the alarm view of the chat). */
  onDiscuss?: (alarm: Alarm) => void;
}

export function AlarmHistory({ pseudonym, entries, username, canComment, canLabel, onDiscuss }: AlarmHistoryProps) {
  if (entries.length === 0) return <p>No alarms recorded for this patient.</p>;
  return (
    <ol className="alarm-history">
      {entries.map((entry) => (
        <AlarmRecord key={entry.alarm.alarmId} pseudonym={pseudonym} entry={entry} username={username}
          canComment={canComment} canLabel={canLabel} onDiscuss={onDiscuss} />
      ))}
    </ol>
  );
}

interface AlarmRecordProps {
  pseudonym: string;
  entry: AlarmHistoryEntry;
  username: string;
  canComment: boolean;
  canLabel: boolean;
  onDiscuss?: ((alarm: Alarm) => void) | undefined;
}

function AlarmRecord({ pseudonym, entry, username, canComment, canLabel, onDiscuss }: AlarmRecordProps) {
  const { alarm, commands, comments, labels } = entry;
  const id = alarm.alarmId;
  const refetch = { refetchQueries: [{ query: PATIENT_ALARMS, variables: { userId: pseudonym } }], awaitRefetchQueries: true };
  const [comment, setComment] = useState('');
  const [addComment, commenting] = useMutation(COMMENT_ALARM, refetch);
  const [addLabel, labelling] = useMutation(LABEL_ALARM, refetch);
  const mine = labelBy(labels, username);

  const submitComment = async (event: FormEvent) => {
    event.preventDefault();
    const text = comment.trim();
    if (!text) return;
    try {
      await addComment({ variables: { userId: pseudonym, alarmId: id, text } });
      setComment('');
    } catch {
      // shown from commenting.error
    }
  };
  const label = (isTrue: boolean) => {
    addLabel({ variables: { userId: pseudonym, alarmId: id, isTrue, note: '' } }).catch(() => undefined);
  };

  return (
    <li className="alarm-record" id={`alarm-record-${id}`} data-testid={`alarm-${id}`} aria-labelledby={`alarm-title-${id}`}>
      <h3 id={`alarm-title-${id}`} className="alarm-record-title">
        <AlarmBadge alarm={alarm} />
      </h3>
      <dl className="facts">
        <div><dt>Raised</dt><dd>{formatDateTime(alarm.raisedAt)}</dd></div>
        <div><dt>Cleared</dt><dd>{alarm.clearedAt ? formatDateTime(alarm.clearedAt) : 'still active'}</dd></div>
        <div><dt>Value / limit</dt><dd>{formatNumber(alarm.value, 1)} / {formatNumber(alarm.limit, 1)}</dd></div>
        <div><dt>Device</dt><dd>{alarm.deviceId} via {alarm.gateway}</dd></div>
      </dl>

      {(commands.length > 0 || comments.length > 0 || labels.length > 0) && (
        <ul className="activity">
          {commands.map((c) => (
            <li key={c.commandId}>
              {formatDateTime(c.issuedAt)}: <strong>{commandName(c.command)}</strong> by {c.actor} — {c.outcome}
              {c.error ? ` (${c.error})` : ''}
            </li>
          ))}
          {comments.map((c, i) => (
            <li key={`comment-${i}`}>
              {formatDateTime(c.at)}: comment by {c.author} ({c.role}): “{c.text}”
            </li>
          ))}
          {labels.map((l, i) => (
            <li key={`label-${i}`}>
              {formatDateTime(l.at)}: {l.author} labelled it a <strong>{l.isTrue ? 'true' : 'false'} alarm</strong>
              {l.note ? ` (${l.note})` : ''}
            </li>
          ))}
        </ul>
      )}

      {onDiscuss && (
        <div className="button-row">
          <button type="button" data-testid={`discuss-${id}`} aria-describedby={`alarm-title-${id}`} onClick={() => onDiscuss(alarm)}>
            Discuss in chat
          </button>
        </div>
      )}

      {canLabel && (
        <div className="button-row" role="group" aria-label={`Label alarm ${id}`}>
          <button type="button" data-testid={`label-true-${id}`} aria-pressed={mine?.isTrue === true}
            disabled={labelling.loading} onClick={() => label(true)}>
            True alarm
          </button>
          <button type="button" data-testid={`label-false-${id}`} aria-pressed={mine?.isTrue === false}
            disabled={labelling.loading} onClick={() => label(false)}>
            False alarm
          </button>
          {labelling.error && <span role="alert" className="error-text">{errorText(labelling.error as ErrorLike)}</span>}
        </div>
      )}

      {canComment && (
        <form className="comment-form" onSubmit={submitComment}>
          <label htmlFor={`comment-${id}`}>Comment</label>
          <textarea id={`comment-${id}`} data-testid={`comment-${id}`} rows={2} maxLength={2000} value={comment}
            onChange={(e) => setComment(e.target.value)} />
          <button type="submit" data-testid={`comment-submit-${id}`} disabled={commenting.loading || !comment.trim()}>
            Add comment
          </button>
          {commenting.error && <p role="alert" className="error-text">{errorText(commenting.error as ErrorLike)}</p>}
        </form>
      )}
    </li>
  );
}
