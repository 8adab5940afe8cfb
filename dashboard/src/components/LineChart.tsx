import { useId } from 'react';
import { formatHourMinute } from '../format';
import { extent, isolatedPoints, linearScale, linePath, niceTicks, timeTicks, type Point } from './chartGeometry';

export interface Series {
  label: string;
  /** A class naming the series' stroke colour and dash (colour is never the only cue: the legend names each line). */
  className: string;
  points: readonly Point[];
}

interface LineChartProps {
  title: string;
  unit: string;
  series: readonly Series[];
  fromMs: number;
  toMs: number;
  /** A fixed value range; by default the data's own. */
  yDomain?: [number, number];
  width?: number;
  height?: number;
}

const MARGIN = { top: 8, right: 12, bottom: 24, left: 44 };

/** A time-series chart with value and time ticks and a legend. */
export function LineChart({ title, unit, series, fromMs, toMs, yDomain, width = 560, height = 180 }: LineChartProps) {
  const titleId = useId();
  const values = series.flatMap((s) => s.points.map((p) => p[1]));
  const domain = yDomain ?? extent(values);
  const hasData = domain !== null && values.some((v) => v !== null);
  const x = linearScale([fromMs, toMs], [MARGIN.left, width - MARGIN.right]);
  const y = linearScale(domain ?? [0, 1], [height - MARGIN.bottom, MARGIN.top]);
  const yTicks = domain ? niceTicks(domain[0], domain[1], 4) : [];
  const xTicks = timeTicks(fromMs, toMs, 4);

  return (
    <figure className="chart">
      <figcaption id={titleId}>
        {title} <span className="muted">({unit})</span>
      </figcaption>
      {hasData ? (
        <svg viewBox={`0 0 ${width} ${height}`} className="chart-svg" role="img" aria-labelledby={titleId}
          preserveAspectRatio="xMinYMin meet">
          {yTicks.map((t) => (
            <g key={`y${t}`}>
              <line x1={MARGIN.left} x2={width - MARGIN.right} y1={y(t)} y2={y(t)} className="chart-grid" />
              <text x={MARGIN.left - 6} y={y(t)} className="chart-tick" textAnchor="end" dominantBaseline="middle">
                {Number.isInteger(t) ? t : t.toFixed(1)}
              </text>
            </g>
          ))}
          {xTicks.map((t) => (
            <text key={`x${t}`} x={x(t)} y={height - 6} className="chart-tick" textAnchor="middle">
              {formatHourMinute(t)}
            </text>
          ))}
          {series.map((s) => (
            <g key={s.label}>
              <path d={linePath(s.points, x, y)} className={`chart-line ${s.className}`} />
              {isolatedPoints(s.points).map(([px, py]) => (
                <circle key={px} cx={x(px)} cy={y(py)} r={3} className={`chart-line chart-dot ${s.className}`} />
              ))}
            </g>
          ))}
        </svg>
      ) : (
        <p className="muted">No data in this period.</p>
      )}
      {hasData && series.length > 1 && (
        <ul className="legend">
          {series.map((s) => (
            <li key={s.label}>
              <svg width="24" height="8" aria-hidden="true">
                <line x1="0" x2="24" y1="4" y2="4" className={`chart-line ${s.className}`} />
              </svg>
              {s.label}
            </li>
          ))}
        </ul>
      )}
    </figure>
  );
}
