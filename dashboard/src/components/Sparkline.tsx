import { sparklinePoints } from './chartGeometry';

interface SparklineProps {
  values: readonly number[];
  label: string;
  width?: number;
  height?: number;
}

/** A tiny trend line on a fixed 0..1 scale (risk scores). */
export function Sparkline({ values, label, width = 64, height = 18 }: SparklineProps) {
  const points = sparklinePoints(values, width, height);
  return (
    <svg className="sparkline" width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img" aria-label={label}>
      <line x1={0} x2={width} y1={height - 0.5} y2={height - 0.5} className="sparkline-axis" />
      {points && <polyline points={points} className="sparkline-line" />}
    </svg>
  );
}
