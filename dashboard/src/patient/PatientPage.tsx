import { useQuery, useSubscription } from '@apollo/client';
import { useCallback, useMemo, useState } from 'react';
import { Link, useParams } from 'react-router-dom';
import { errorCode, errorText } from '../api/errors';
import { PATIENT_ALARMS, PATIENTS, RISK_ASSESSMENT, RISK_UPDATES } from '../api/operations';
import type { Alarm, AlarmActivity, Patient, RiskReport, RiskUpdate } from '../api/types';
import { useSession } from '../auth/AuthContext';
import { canChat, canCommentAlarms, canLabelAlarms, canReadPatients, canRecordCare } from '../auth/permissions';
import { ChatPanel, type DiscussRequest } from '../care/ChatPanel';
import { NutritionPanel } from '../care/NutritionPanel';
import { Forbidden, PATIENT_FORBIDDEN } from '../components/Forbidden';
import { LiveEcgView } from '../ecg/LiveEcg';
import { formatClock, formatFraction, formatNumber, MISSING, toMs } from '../format';
import { useLiveFeed, type LiveVitals } from '../live/useLiveFeed';
import { afFlagText, conditionLabel, connectionLabel, rhythmLabel, showsAf, vitalValue } from '../ward/alarmDisplay';
import { AlarmList } from '../ward/AlarmList';
import { sortAlarms } from '../ward/wardOrder';
import { AlarmHistory } from './AlarmHistory';
import { mergeAlarmHistory } from './alarmHistory';
import { RiskPanel } from './RiskPanel';
import { VitalsTrends } from './VitalsTrends';

const ALARMS_POLL_MS = 5000;
const SUMMARY_POLL_MS = 5000;
const RISK_POLL_MS = 30_000;

function ForbiddenPatient() {
  return <Forbidden title="Patient" message={PATIENT_FORBIDDEN} />;
}

export function PatientPage() {
  const { id = '' } = useParams();
  const { identity } = useSession();
  // Operators never see patient data: refuse here without asking the API.
  if (!canReadPatients(identity.role)) return <ForbiddenPatient />;
  return <PatientGate key={id} pseudonym={id} />;
}

interface AlarmsData {
  alarms: Alarm[];
  alarmActivity: AlarmActivity[];
}

/** Shows the patient only once the API has granted the first patient read; a refusal shows nothing else. */
function PatientGate({ pseudonym }: { pseudonym: string }) {
  const alarms = useQuery<AlarmsData>(PATIENT_ALARMS, {
    variables: { userId: pseudonym },
    pollInterval: ALARMS_POLL_MS,
    fetchPolicy: 'cache-and-network',
  });
  if (errorCode(alarms.error) === 'FORBIDDEN') return <ForbiddenPatient />;
  if (!alarms.data) {
    return (
      <>
        <h1>Patient {pseudonym}</h1>
        {alarms.error ? <p role="alert" className="error-text">{errorText(alarms.error)}</p> : <p>Loading…</p>}
      </>
    );
  }
  return <PatientView pseudonym={pseudonym} alarms={alarms.data} alarmsError={alarms.error ? errorText(alarms.error) : null} />;
}

/** Latest vitals: the live socket's when it has sent some, else the API's last stored values. */
function currentVital(live: LiveVitals | null, patient: Patient | undefined, ...names: string[]): number | null {
  for (const name of names) {
    const value = live?.values[name];
    if (value !== undefined) return value;
  }
  return patient ? vitalValue(patient.vitals, ...names) : null;
}

function newerReport(a: RiskReport | null | undefined, b: RiskReport | null | undefined): RiskReport | null {
  if (!a) return b ?? null;
  if (!b) return a;
  return (toMs(b.computedAt) ?? 0) > (toMs(a.computedAt) ?? 0) ? b : a;
}

function PatientView({ pseudonym, alarms, alarmsError }: { pseudonym: string; alarms: AlarmsData; alarmsError: string | null }) {
  const { identity } = useSession();
  const summary = useQuery<{ patients: Patient[] }>(PATIENTS, { pollInterval: SUMMARY_POLL_MS, fetchPolicy: 'cache-and-network' });
  const risk = useQuery<{ getRiskAssessment: RiskReport | null }>(RISK_ASSESSMENT, {
    variables: { userId: pseudonym },
    pollInterval: RISK_POLL_MS,
    fetchPolicy: 'cache-and-network',
  });
  const riskLive = useSubscription<{ realTimeRiskUpdate: RiskUpdate | null }>(RISK_UPDATES, { variables: { userId: pseudonym } });
  const live = useLiveFeed(pseudonym);

  const patient = summary.data?.patients.find((p) => p.pseudonym === pseudonym);
  const report = newerReport(risk.data?.getRiskAssessment, riskLive.data?.realTimeRiskUpdate?.report);
  const history = useMemo(() => mergeAlarmHistory(alarms.alarms, alarms.alarmActivity), [alarms]);
  const active = sortAlarms(patient?.activeAlarms ?? alarms.alarms.filter((a) => !a.clearedAt));

  const hr = currentVital(live.vitals, patient, 'heart_rate_bpm', 'pulse_rate_bpm');
  const spo2 = currentVital(live.vitals, patient, 'spo2_percent');
  const sys = currentVital(live.vitals, patient, 'systolic_mmhg');
  const dia = currentVital(live.vitals, patient, 'diastolic_mmhg');
  // "Discuss" on an alarm opens (or starts) that alarm's session in the chat panel.
  const [discuss, setDiscuss] = useState<DiscussRequest | null>(null);
  const discussAlarm = useCallback((alarm: Alarm) => {
    setDiscuss((previous) => ({ alarmId: alarm.alarmId, title: `${conditionLabel(alarm.condition)} alarm`,
      nonce: (previous?.nonce ?? 0) + 1 }));
  }, []);

  return (
    <div className="patient-page">
      <div className="page-heading">
        <h1>Patient {pseudonym}</h1>
        <p className="muted">
          {patient?.site ? `Site ${patient.site} · ` : ''}
          <Link to="/">Back to the ward</Link>
        </p>
      </div>

      <section aria-labelledby="now-title" className="panel">
        <h2 id="now-title">Now</h2>
        <dl className="vitals vitals-large">
          <div><dt>HR</dt><dd>{formatNumber(hr)}<span className="unit"> bpm</span></dd></div>
          <div><dt>SpO2</dt><dd>{formatNumber(spo2)}<span className="unit"> %</span></dd></div>
          <div><dt>BP</dt><dd>{sys === null && dia === null ? MISSING : `${formatNumber(sys)}/${formatNumber(dia)}`}<span className="unit"> mmHg</span></dd></div>
          <div><dt>NEWS2</dt><dd>{formatNumber(patient?.news2)}</dd></div>
          <div>
            <dt>Rhythm</dt>
            <dd>
              {rhythmLabel(patient?.rhythm)}
              {showsAf(patient?.rhythm, patient?.afBurden) && <span className="af-flag">{afFlagText(patient?.afBurden)}</span>}
            </dd>
          </div>
          <div><dt>Connection</dt><dd>{connectionLabel(patient?.connected)}</dd></div>
          <div><dt>Battery</dt><dd>{formatNumber(patient?.batteryPercent)}%</dd></div>
          <div><dt>Signal</dt><dd>{formatFraction(patient?.signalQuality)}</dd></div>
        </dl>
        {live.vitals && <p className="muted">Live vitals from {live.vitals.deviceId} at {formatClock(live.vitals.timeMs)}</p>}
        <h3>Active alarms</h3>
        <AlarmList alarms={active} />
      </section>

      <section aria-labelledby="ecg-title" className="panel">
        <h2 id="ecg-title">Live ECG</h2>
        <LiveEcgView live={live} pseudonym={pseudonym} heightMm={40} />
      </section>

      <section aria-labelledby="risk-title" className="panel">
        <h2 id="risk-title">Risk assessment</h2>
        {risk.error && !report && <p role="alert" className="error-text">{errorText(risk.error)}</p>}
        <RiskPanel report={report} />
      </section>

      <section aria-labelledby="trends-title" className="panel">
        <h2 id="trends-title">Vitals trends</h2>
        <VitalsTrends pseudonym={pseudonym} />
      </section>

      <section aria-labelledby="history-title" className="panel">
        <h2 id="history-title">Alarm history</h2>
        {alarmsError && <p role="alert" className="error-text">Latest update failed: {alarmsError}</p>}
        <AlarmHistory
          pseudonym={pseudonym}
          entries={history}
          username={identity.username}
          canComment={canCommentAlarms(identity.role)}
          canLabel={canLabelAlarms(identity.role)}
          onDiscuss={discussAlarm}
        />
      </section>

      <section aria-labelledby="care-chat-title" className="panel">
        <h2 id="care-chat-title">Care-team chat</h2>
        <ChatPanel pseudonym={pseudonym} username={identity.username} alarms={alarms.alarms} canWrite={canChat(identity.role)} discuss={discuss} />
      </section>

      <section aria-labelledby="nutrition-title" className="panel">
        <h2 id="nutrition-title">Nutrition</h2>
        <NutritionPanel pseudonym={pseudonym} canRecord={canRecordCare(identity.role)} />
      </section>
    </div>
  );
}
