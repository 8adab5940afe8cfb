import { memo, useState, type KeyboardEvent, type MouseEvent } from 'react';
import type { Patient } from '../api/types';
import { Sparkline } from '../components/Sparkline';
import { AudioPausedIcon } from '../components/icons';
import { formatFraction, formatNumber, MISSING } from '../format';
import { AlarmList } from './AlarmList';
import { afFlagText, conditionLabel, connectionLabel, priorityCue, rhythmLabel, showsAf, vitalValue } from './alarmDisplay';
import { SilenceDialog } from './SilenceDialog';
import { useAlarmCommand } from './useAlarmCommand';
import { sortAlarms, tilePriority } from './wardOrder';

interface PatientTileProps {
  patient: Patient;
  selected: boolean;
  canCommand: boolean;
  onSelect: (pseudonym: string) => void;
}

const INTERACTIVE = 'button, a, input, select, textarea, label, dialog';

function PatientTileImpl({ patient, selected, canCommand, onSelect }: PatientTileProps) {
  const ps = patient.pseudonym;
  const alarms = sortAlarms(patient.activeAlarms);
  const top = alarms[0] ?? null;
  const priority = tilePriority(alarms);
  const { status, send } = useAlarmCommand(ps);
  const [silencing, setSilencing] = useState(false);

  const hr = vitalValue(patient.vitals, 'heart_rate_bpm', 'pulse_rate_bpm');
  const spo2 = vitalValue(patient.vitals, 'spo2_percent');
  const sys = vitalValue(patient.vitals, 'systolic_mmhg');
  const dia = vitalValue(patient.vitals, 'diastolic_mmhg');
  const af = showsAf(patient.rhythm, patient.afBurden);
  const audioPaused = patient.audioPaused || top?.state === 'silenced';
  const risk = patient.risk;
  const connection = connectionLabel(patient.connected);

  // Clicks on the tile's own controls act on those controls, not on the selection.
  const click = (event: MouseEvent<HTMLElement>) => {
    if ((event.target as Element).closest(INTERACTIVE)) return;
    onSelect(ps);
  };
  const key = (event: KeyboardEvent<HTMLElement>) => {
    if (event.target !== event.currentTarget) return;
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      onSelect(ps);
    }
  };

  const titleId = `tile-title-${ps}`;
  return (
    <article
      className={`tile tile-${priority}${selected ? ' tile-selected' : ''}`}
      data-testid={`tile-${ps}`}
      data-priority={priority}
      data-alarm-state={top?.state ?? 'none'}
      data-selected={selected ? 'true' : 'false'}
      tabIndex={0}
      aria-labelledby={titleId}
      onClick={click}
      onKeyDown={key}
    >
      <header className="tile-header">
        <h2 id={titleId} className="tile-title">
          {ps}
          {top && (
            <span className="visually-hidden">, {priorityCue(top.priority).spoken} alarm: {conditionLabel(top.condition)}</span>
          )}
        </h2>
        {selected && <span className="tile-selected-mark">ECG shown</span>}
      </header>

      <dl className="vitals">
        <div><dt>HR</dt><dd>{formatNumber(hr)}<span className="unit"> bpm</span></dd></div>
        <div><dt>SpO2</dt><dd>{formatNumber(spo2)}<span className="unit"> %</span></dd></div>
        <div>
          <dt>BP</dt>
          <dd>{sys === null && dia === null ? MISSING : `${formatNumber(sys)}/${formatNumber(dia)}`}<span className="unit"> mmHg</span></dd>
        </div>
        <div><dt>NEWS2</dt><dd>{formatNumber(patient.news2)}</dd></div>
        <div>
          <dt>Rhythm</dt>
          <dd>
            {rhythmLabel(patient.rhythm)}
            {af && (
              <span className="af-flag" title={`AF burden ${formatFraction(patient.afBurden)}`}>
                {afFlagText(patient.afBurden)}
              </span>
            )}
          </dd>
        </div>
        <div>
          <dt>Risk</dt>
          <dd className="risk">
            {risk ? `${risk.score.toFixed(2)} ${risk.level}` : MISSING}
            {patient.riskTrend.length > 1 && (
              <Sparkline
                values={patient.riskTrend}
                label={`Risk trend, ${patient.riskTrend.length} points, from ${patient.riskTrend[0]!.toFixed(2)} to ${patient.riskTrend[patient.riskTrend.length - 1]!.toFixed(2)}`}
              />
            )}
          </dd>
        </div>
      </dl>

      <p className="device-line">
        <span className={`conn conn-${connection}`}>{connection}</span>
        <span>Battery {formatNumber(patient.batteryPercent)}%</span>
        <span>Signal {formatFraction(patient.signalQuality)}</span>
      </p>

      <AlarmList alarms={alarms} />

      {audioPaused && (
        <p className="audio-paused">
          <AudioPausedIcon /> Audio paused
        </p>
      )}

      {canCommand && top && (
        <div className="tile-actions">
          <button type="button" data-testid={`ack-${ps}`} onClick={() => void send({ kind: 'acknowledge', alarmId: top.alarmId })}>
            Acknowledge<span className="visually-hidden"> {conditionLabel(top.condition)} for {ps}</span>
          </button>
          {top.state === 'silenced' ? (
            <button type="button" data-testid={`unsilence-${ps}`} onClick={() => void send({ kind: 'unsilence', alarmId: top.alarmId })}>
              Resume audio<span className="visually-hidden"> for {ps}</span>
            </button>
          ) : (
            <button type="button" data-testid={`silence-${ps}`} onClick={() => setSilencing(true)}>
              Silence<span className="visually-hidden"> {conditionLabel(top.condition)} for {ps}</span>
            </button>
          )}
        </div>
      )}
      <p className={`cmd-status cmd-${status?.tone ?? 'none'}`} data-testid={`cmd-${ps}`} role="status">
        {status?.text ?? ''}
      </p>

      {silencing && top && (
        <SilenceDialog
          pseudonym={ps}
          alarmText={`${priorityCue(top.priority).text} ${conditionLabel(top.condition)}`}
          onCancel={() => setSilencing(false)}
          onSubmit={(durationS, reason) => {
            setSilencing(false);
            void send({ kind: 'silence', alarmId: top.alarmId, durationS, reason });
          }}
        />
      )}
    </article>
  );
}

export const PatientTile = memo(PatientTileImpl);
