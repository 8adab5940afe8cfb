import { describe, expect, it } from 'vitest';
import { playout, SampleFeed } from './sampleFeed';

const block = (t0Ms: number, samples: number[], deviceId = 'dev-1', sampleRateHz = 250) => ({
  deviceId, sampleRateHz, t0Ms, samples,
});

function drain(feed: SampleFeed): number[] {
  const out = new Float32Array(feed.length);
  const n = feed.take(out.length, out);
  return Array.from(out.subarray(0, n));
}

describe('SampleFeed', () => {
  it('queues consecutive blocks in order', () => {
    const feed = new SampleFeed(250, 10);
    feed.push(block(1000, [1, 2, 3, 4]));
    feed.push(block(1016, [5, 6])); // 4 samples * 4 ms later
    expect(drain(feed)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('fills a gap with NaN samples', () => {
    const feed = new SampleFeed(250, 10);
    feed.push(block(1000, [1, 2]));
    feed.push(block(1020, [3])); // expected at 1008: 3 samples missing
    const values = drain(feed);
    expect(values.length).toBe(6);
    expect(values.slice(0, 2)).toEqual([1, 2]);
    expect(values.slice(2, 5).every(Number.isNaN)).toBe(true);
    expect(values[5]).toBe(3);
  });

  it('treats one sample period of jitter as no gap', () => {
    const feed = new SampleFeed(250, 10);
    feed.push(block(1000, [1, 2]));
    feed.push(block(1012, [3])); // one period late
    expect(drain(feed)).toEqual([1, 2, 3]);
  });

  it('drops samples that overlap what was queued', () => {
    const feed = new SampleFeed(250, 10);
    feed.push(block(1000, [1, 2, 3, 4]));
    feed.push(block(1008, [3, 4, 5])); // its first two samples are already queued
    expect(drain(feed)).toEqual([1, 2, 3, 4, 5]);
  });

  it('restarts on another device or after a long gap', () => {
    const feed = new SampleFeed(250, 10);
    feed.push(block(1000, [1, 2]));
    const generation = feed.generation;
    feed.push(block(1008, [9], 'dev-2'));
    expect(feed.generation).toBe(generation + 1);
    expect(drain(feed)).toEqual([9]);
    feed.push(block(60_000, [7], 'dev-2'));
    expect(drain(feed)).toEqual([7]);
  });

  it('remembers the largest block', () => {
    const feed = new SampleFeed(250, 10);
    feed.push(block(1000, [1, 2, 3]));
    feed.push(block(1012, [4]));
    expect(feed.largestBlock).toBe(3);
  });

  it('keeps the newest samples when full', () => {
    const feed = new SampleFeed(2, 2); // capacity 4
    feed.push({ deviceId: 'd', sampleRateHz: 2, t0Ms: 0, samples: [1, 2, 3, 4, 5, 6] });
    expect(feed.length).toBe(4);
    expect(drain(feed)).toEqual([3, 4, 5, 6]);
  });
});

describe('playout', () => {
  const limits = { startSamples: 250, maxLagSamples: 750 };

  it('waits for the start buffer', () => {
    const step = playout(200, 16, 250, { playing: false, carry: 0 }, limits);
    expect(step).toEqual({ draw: 0, skip: 0, state: { playing: false, carry: 0 } });
  });

  it('draws at the sample rate and carries the fraction', () => {
    const first = playout(300, 16, 250, { playing: false, carry: 0 }, limits);
    expect(first.draw).toBe(4);
    expect(first.state.carry).toBeCloseTo(0, 9);
    const second = playout(296, 10, 250, first.state, limits);
    expect(second.draw).toBe(2);
    expect(second.state.carry).toBeCloseTo(0.5, 9);
    const third = playout(294, 10, 250, second.state, limits);
    expect(third.draw).toBe(3);
  });

  it('skips ahead when too far behind', () => {
    const step = playout(2000, 20, 250, { playing: true, carry: 0 }, limits);
    expect(step.draw).toBe(5);
    expect(step.skip).toBe(1245);
  });

  it('stops when the queue runs dry', () => {
    const step = playout(3, 40, 250, { playing: true, carry: 0.2 }, limits);
    expect(step.draw).toBe(3);
    expect(step.state).toEqual({ playing: false, carry: 0 });
  });
});
