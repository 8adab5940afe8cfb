import type { Alarm } from '../api/types';
import { formatNumber } from '../format';
import { alarmFlashes, conditionLabel, priorityClass, priorityCue, showsValue, stateLabel } from './alarmDisplay';

/** One alarm in IEC 60601-1-8 colours, with its priority also in words and symbols. */
export function AlarmBadge({ alarm }: { alarm: Alarm }) {
  const cue = priorityCue(alarm.priority);
  const flashing = alarmFlashes(alarm.priority, alarm.state);
  const kind = priorityClass(alarm.priority);
  return (
    <span
      className={`alarm alarm-${kind}${flashing ? ' flashing' : ''}`}
      data-alarm-id={alarm.alarmId}
    >
      <span className="alarm-cue">
        <span aria-hidden="true">{cue.symbol}</span> {cue.text}
        <span className="visually-hidden"> ({cue.spoken})</span>
      </span>{' '}
      <span className="alarm-condition">{conditionLabel(alarm.condition)}</span>
      {showsValue(alarm.priority, alarm.condition) && Number.isFinite(alarm.value) && (
        <span className="alarm-value"> {formatNumber(alarm.value, alarm.value % 1 ? 1 : 0)}</span>
      )}
      <span className="alarm-state"> · {stateLabel(alarm.state)}</span>
    </span>
  );
}

export function AlarmList({ alarms }: { alarms: readonly Alarm[] }) {
  if (alarms.length === 0) return <p className="no-alarms">No active alarms</p>;
  return (
    <ul className="alarm-list" aria-label="Active alarms">
      {alarms.map((alarm) => (
        <li key={alarm.alarmId}>
          <AlarmBadge alarm={alarm} />
        </li>
      ))}
    </ul>
  );
}
