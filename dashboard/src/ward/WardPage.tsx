import { useQuery } from '@apollo/client';
import { useCallback, useMemo, useState } from 'react';
import { Link, useSearchParams } from 'react-router-dom';
import { errorText } from '../api/errors';
import { PATIENTS } from '../api/operations';
import type { Patient } from '../api/types';
import { useSession } from '../auth/AuthContext';
import { canCommandAlarms } from '../auth/permissions';
import { LiveEcg } from '../ecg/LiveEcg';
import { PatientTile } from './PatientTile';
import { orderWard } from './wardOrder';

// A new alarm must show within 1-2 s.
const POLL_MS = 1000;
const MAX_STRIPS = 24;

/** `?strips=N`: also show live strips for the first N patients (a load test of the ECG drawing). */
function stripCount(params: URLSearchParams): number {
  const n = Number.parseInt(params.get('strips') ?? '', 10);
  return Number.isFinite(n) && n > 0 ? Math.min(n, MAX_STRIPS) : 0;
}

export function WardPage() {
  const { identity } = useSession();
  const [params] = useSearchParams();
  const [selected, setSelected] = useState<string | null>(null);
  const { data, error, loading } = useQuery<{ patients: Patient[] }>(PATIENTS, {
    pollInterval: POLL_MS,
    fetchPolicy: 'cache-and-network',
  });
  const patients = useMemo(() => orderWard(data?.patients ?? []), [data]);
  const select = useCallback((ps: string) => setSelected((current) => (current === ps ? null : ps)), []);
  const canCommand = canCommandAlarms(identity.role);
  const strips = stripCount(params);
  const selectedPatient = selected ? patients.find((p) => p.pseudonym === selected) : undefined;

  return (
    <div className="ward">
      <div className="page-heading">
        <h1>Ward</h1>
        <p className="muted">
          {patients.length} patient{patients.length === 1 ? '' : 's'}, most urgent first
        </p>
      </div>
      {error && (
        <p role="alert" className="error-text">
          {data ? `Latest update failed (${errorText(error)}); showing the last data received.` : errorText(error)}
        </p>
      )}
      {loading && !data && <p>Loading patients…</p>}
      {data && patients.length === 0 && <p>No patients to show.</p>}

      <ul className="tile-grid" aria-label="Patients, most urgent first">
        {patients.map((patient) => (
          <li key={patient.pseudonym}>
            <PatientTile patient={patient} selected={patient.pseudonym === selected} canCommand={canCommand} onSelect={select} />
          </li>
        ))}
      </ul>

      {selectedPatient && (
        <section className="live-panel" aria-labelledby="live-panel-title" data-testid="live-panel">
          <div className="live-panel-head">
            <h2 id="live-panel-title">Live ECG: {selectedPatient.pseudonym}</h2>
            <Link to={`/patients/${encodeURIComponent(selectedPatient.pseudonym)}`} data-testid={`open-${selectedPatient.pseudonym}`}>
              Open<span className="visually-hidden"> the patient page of {selectedPatient.pseudonym}</span>
            </Link>
            <button type="button" onClick={() => setSelected(null)}>
              Close<span className="visually-hidden"> the live ECG</span>
            </button>
          </div>
          <LiveEcg key={selectedPatient.pseudonym} pseudonym={selectedPatient.pseudonym} heightMm={30} />
        </section>
      )}

      {strips > 0 && (
        <section aria-labelledby="strips-title" className="strip-wall">
          <h2 id="strips-title">Live strips</h2>
          <ul className="strip-grid">
            {patients.slice(0, strips).map((p) => (
              <li key={p.pseudonym}>
                <h3>{p.pseudonym}</h3>
                <LiveEcg pseudonym={p.pseudonym} heightMm={20} />
              </li>
            ))}
          </ul>
        </section>
      )}
    </div>
  );
}
