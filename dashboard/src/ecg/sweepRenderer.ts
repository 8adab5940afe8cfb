/**
 * Draws a live ECG as a sweep: the pen moves left to right and wraps, and an erase bar just
 * ahead of it restores the grid over the previous pass. Each frame touches only the newly drawn
 * span; the grid is rendered once to an offscreen canvas and copied back in slices.
 * All drawing is in device pixels, so lines stay sharp at any devicePixelRatio.
 */
import {
  choosePxPerMm,
  gridLines,
  microvoltsToY,
  MAJOR_EVERY_MM,
  pxPerSample,
  samplesPerSweep,
  sweepIndex,
  sweepWidthPx,
  wrapSpan,
} from './ecgGeometry';

export interface SweepOptions {
  seconds: number;
  heightMm: number;
  preferredPxPerMm: number;
}

const PAPER = '#fff4f5';
const MINOR_LINE = '#f5c4cc';
const MAJOR_LINE = '#e3899a';
const TRACE = '#1a1a1a';
const LABEL = '#8a1c2b';
const ERASE_BAR_MM = 6;

export class SweepRenderer {
  private readonly ctx: CanvasRenderingContext2D;
  private readonly grid: HTMLCanvasElement;
  private pxPerMm = 1; // device pixels per millimetre
  private dpr = 1;
  private width = 0;
  private height = 0;
  private baseline = 0;
  private drawn = 0; // samples drawn since the start; their sweep position is drawn mod samples per sweep
  private lastX: number | null = null;
  private lastY = 0;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly options: SweepOptions,
  ) {
    const ctx = canvas.getContext('2d', { alpha: false });
    if (!ctx) throw new Error('2D canvas is not available');
    this.ctx = ctx;
    this.grid = document.createElement('canvas');
  }

  /** Sizes the canvas for a container `cssWidth` wide and repaints the grid (the trace restarts). */
  layout(cssWidth: number, devicePixelRatio: number): void {
    const { seconds, heightMm, preferredPxPerMm } = this.options;
    const cssPxPerMm = choosePxPerMm(cssWidth, seconds, preferredPxPerMm);
    this.dpr = devicePixelRatio > 0 ? devicePixelRatio : 1;
    this.pxPerMm = cssPxPerMm * this.dpr;
    this.width = Math.round(sweepWidthPx(this.pxPerMm, seconds));
    this.height = Math.round(heightMm * this.pxPerMm);
    // Baseline on the major line nearest the middle, as on paper.
    this.baseline = Math.round(heightMm / 2 / MAJOR_EVERY_MM) * MAJOR_EVERY_MM * this.pxPerMm;
    for (const c of [this.canvas, this.grid]) {
      c.width = this.width;
      c.height = this.height;
    }
    this.canvas.style.width = `${this.width / this.dpr}px`;
    this.canvas.style.height = `${this.height / this.dpr}px`;
    this.paintGrid();
    this.ctx.drawImage(this.grid, 0, 0);
    this.lastX = null;
  }

  private paintGrid(): void {
    const g = this.grid.getContext('2d');
    if (!g) return;
    g.fillStyle = PAPER;
    g.fillRect(0, 0, this.width, this.height);
    const vertical = gridLines(this.width, this.pxPerMm);
    const horizontal = gridLines(this.height, this.pxPerMm);
    const thin = Math.max(1, Math.round(this.dpr * 0.75));
    const thick = Math.max(1, Math.round(this.dpr * 1.25));
    const paint = (xs: number[], ys: number[], colour: string, lineWidth: number) => {
      g.fillStyle = colour;
      for (const x of xs) g.fillRect(Math.round(x), 0, lineWidth, this.height);
      for (const y of ys) g.fillRect(0, Math.round(y), this.width, lineWidth);
    };
    paint(vertical.minor, horizontal.minor, MINOR_LINE, thin);
    paint(vertical.major, horizontal.major, MAJOR_LINE, thick);
    g.fillStyle = LABEL;
    g.font = `${Math.round(11 * this.dpr)}px system-ui, sans-serif`;
    g.fillText('25 mm/s  10 mm/mV', 4 * this.dpr, this.height - 4 * this.dpr);
  }

  /** Lifts the pen: the next sample starts a new line (a gap, a skip, a new stream). */
  breakLine(): void {
    this.lastX = null;
  }

  private restore(from: number, to: number): void {
    for (const [a, b] of wrapSpan(from, to, this.width)) {
      const x = Math.max(0, Math.floor(a));
      const w = Math.min(this.width, Math.ceil(b)) - x;
      if (w > 0) this.ctx.drawImage(this.grid, x, 0, w, this.height, x, 0, w, this.height);
    }
  }

  /** Draws `count` samples (µV; NaN = missing) at `sampleRateHz`, continuing where the last call stopped. */
  draw(samples: Float32Array, count: number, sampleRateHz: number): void {
    if (count <= 0 || this.width === 0) return;
    const perSweep = samplesPerSweep(sampleRateHz, this.options.seconds);
    const step = pxPerSample(sampleRateHz, this.pxPerMm);
    const first = sweepIndex(this.drawn, perSweep);
    const erase = ERASE_BAR_MM * this.pxPerMm;
    this.restore(first * step, (first + count) * step + erase);

    const ctx = this.ctx;
    ctx.beginPath();
    ctx.lineWidth = 1.5 * this.dpr;
    ctx.lineJoin = 'round';
    ctx.strokeStyle = TRACE;
    let index = first;
    let penDown = false; // whether the path already ends at (lastX, lastY)
    for (let i = 0; i < count; i++, index++) {
      if (index === perSweep) {
        index = 0;
        this.lastX = null; // the pen jumps back to the left edge
      }
      const value = samples[i]!;
      if (Number.isNaN(value)) {
        this.lastX = null;
        continue;
      }
      const x = index * step;
      const y = microvoltsToY(value, this.baseline, this.pxPerMm);
      if (this.lastX === null) {
        ctx.moveTo(x, y);
      } else {
        if (!penDown) ctx.moveTo(this.lastX, this.lastY); // join last frame's line
        ctx.lineTo(x, y);
      }
      penDown = true;
      this.lastX = x;
      this.lastY = y;
    }
    ctx.stroke();
    this.drawn += count;
  }
}
