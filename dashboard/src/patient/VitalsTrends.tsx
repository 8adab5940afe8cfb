import { useQuery } from '@apollo/client';
import { useEffect, useMemo, useState } from 'react';
import { errorText } from '../api/errors';
import { VITALS_HISTORY } from '../api/operations';
import type { FeatureWindow } from '../api/types';
import { LineChart, type Series } from '../components/LineChart';
import type { Point } from '../components/chartGeometry';
import { toMs } from '../format';

interface Period {
  title: string;
  widthS: 60 | 300;
  spanMs: number;
}

const PERIODS: Period[] = [
  { title: 'Last hour (1-minute windows)', widthS: 60, spanMs: 3_600_000 },
  { title: 'Last 24 hours (5-minute windows)', widthS: 300, spanMs: 86_400_000 },
];

// New windows close every minute; asking more often would only repeat the answer.
const REFRESH_MS = 60_000;

/** Points at each window's middle, so a chart of 5-minute windows lines up with the 1-minute one. */
function points(windows: readonly FeatureWindow[], value: (w: FeatureWindow) => number | null): Point[] {
  return windows
    .map((w): Point | null => {
      const start = toMs(w.start);
      return start === null ? null : [start + (w.widthS * 1000) / 2, value(w)];
    })
    .filter((p): p is Point => p !== null)
    .sort((a, b) => a[0] - b[0]);
}

function TrendPeriod({ pseudonym, period, nowMs }: { pseudonym: string; period: Period; nowMs: number }) {
  const fromMs = nowMs - period.spanMs;
  const { data, error } = useQuery<{ vitalsHistory: FeatureWindow[] }>(VITALS_HISTORY, {
    variables: { userId: pseudonym, widthS: period.widthS, from: new Date(fromMs).toISOString() },
    fetchPolicy: 'cache-and-network',
  });
  const windows = data?.vitalsHistory ?? [];
  const charts = useMemo(() => {
    const hr: Series[] = [{ label: 'HR mean', className: 'series-hr', points: points(windows, (w) => w.hrMean) }];
    const spo2: Series[] = [
      { label: 'SpO2 mean', className: 'series-spo2', points: points(windows, (w) => w.spo2Mean) },
      { label: 'SpO2 min', className: 'series-spo2-min', points: points(windows, (w) => w.spo2Min) },
    ];
    const bp: Series[] = [
      { label: 'Systolic mean', className: 'series-sys', points: points(windows, (w) => w.systolicMean) },
      { label: 'Diastolic mean', className: 'series-dia', points: points(windows, (w) => w.diastolicMean) },
    ];
    const hasBp = windows.some((w) => w.systolicMean !== null || w.diastolicMean !== null);
    return { hr, spo2, bp: hasBp ? bp : null };
  }, [windows]);

  return (
    <section className="trend-period" aria-label={period.title}>
      <h3>{period.title}</h3>
      {error && <p role="alert" className="error-text">{errorText(error)}</p>}
      <div className="chart-row">
        <LineChart title="Heart rate" unit="bpm" series={charts.hr} fromMs={fromMs} toMs={nowMs} />
        <LineChart title="SpO2" unit="%" series={charts.spo2} fromMs={fromMs} toMs={nowMs} />
        {charts.bp && <LineChart title="Blood pressure" unit="mmHg" series={charts.bp} fromMs={fromMs} toMs={nowMs} />}
      </div>
    </section>
  );
}

export function VitalsTrends({ pseudonym }: { pseudonym: string }) {
  // The periods end now and move on each minute, which also fetches the newly closed windows.
  const [nowMs, setNowMs] = useState(() => Date.now());
  useEffect(() => {
    const timer = window.setInterval(() => setNowMs(Date.now()), REFRESH_MS);
    return () => window.clearInterval(timer);
  }, []);
  return (
    <>
      {PERIODS.map((period) => (
        <TrendPeriod key={period.widthS} pseudonym={pseudonym} period={period} nowMs={nowMs} />
      ))}
    </>
  );
}
