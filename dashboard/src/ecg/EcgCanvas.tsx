import { useEffect, useRef } from 'react';
import { DEFAULT_PX_PER_MM, SWEEP_SECONDS } from './ecgGeometry';
import { recordFrameTime } from './frameTimes';
import { playout, type PlayoutState, type SampleFeed } from './sampleFeed';
import { SweepRenderer } from './sweepRenderer';

interface EcgCanvasProps {
  feed: SampleFeed;
  label: string;
  heightMm?: number;
  seconds?: number;
}

// Drawing starts once a bit more than one block is queued (blocks come every 0.5-1 s), so the pen
// keeps moving while the next block is on its way; more than 3 s behind, it skips ahead.
const MIN_START_S = 0.5;
const BLOCK_MARGIN = 1.2;
const MAX_LAG_S = 3;

/** A live ECG sweep: one animation-frame loop that draws only the samples due since the last frame. */
export function EcgCanvas({ feed, label, heightMm = 40, seconds = SWEEP_SECONDS }: EcgCanvasProps) {
  const wrapRef = useRef<HTMLDivElement>(null);
  const canvasRef = useRef<HTMLCanvasElement>(null);

  useEffect(() => {
    const wrap = wrapRef.current;
    const canvas = canvasRef.current;
    if (!wrap || !canvas) return undefined;
    const renderer = new SweepRenderer(canvas, { seconds, heightMm, preferredPxPerMm: DEFAULT_PX_PER_MM });
    let laidOutWidth = -1;
    let laidOutRatio = -1;
    const layout = () => {
      const width = wrap.clientWidth;
      const ratio = window.devicePixelRatio || 1;
      if (width === laidOutWidth && ratio === laidOutRatio) return;
      laidOutWidth = width;
      laidOutRatio = ratio;
      renderer.layout(width, ratio);
    };
    layout();
    const observer = new ResizeObserver(layout);
    observer.observe(wrap);

    let scratch = new Float32Array(Math.round(feed.sampleRateHz * MAX_LAG_S) + 1);
    let state: PlayoutState = { playing: false, carry: 0 };
    let generation = feed.generation;
    let last = performance.now();
    let frame = 0;

    const tick = (now: number) => {
      frame = requestAnimationFrame(tick);
      const started = performance.now();
      if (feed.generation !== generation) {
        generation = feed.generation;
        state = { playing: false, carry: 0 };
        renderer.breakLine();
      }
      const rate = feed.sampleRateHz;
      const maxLagSamples = Math.round(rate * MAX_LAG_S);
      const startSamples = Math.min(
        Math.max(Math.round(rate * MIN_START_S), Math.ceil(feed.largestBlock * BLOCK_MARGIN)),
        maxLagSamples - 1,
      );
      const step = playout(feed.length, now - last, rate, state, { startSamples, maxLagSamples });
      last = now;
      state = step.state;
      if (step.skip > 0) {
        feed.discard(step.skip);
        renderer.breakLine();
      }
      if (step.draw > 0) {
        if (scratch.length < step.draw) scratch = new Float32Array(step.draw);
        const taken = feed.take(step.draw, scratch);
        renderer.draw(scratch, taken, rate);
        recordFrameTime(performance.now() - started);
      }
    };
    frame = requestAnimationFrame(tick);
    return () => {
      cancelAnimationFrame(frame);
      observer.disconnect();
    };
  }, [feed, heightMm, seconds]);

  return (
    <div ref={wrapRef} className="ecg-wrap">
      <canvas ref={canvasRef} className="ecg-canvas" role="img" aria-label={label} />
    </div>
  );
}
