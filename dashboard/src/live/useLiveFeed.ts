import { useEffect, useMemo, useState } from 'react';
import { useAuth } from '../auth/AuthContext';
import { SampleFeed } from '../ecg/sampleFeed';
import type { VitalsMessage } from './liveMessages';
import { openLiveSocket, type LiveStatus } from './liveSocket';

/** The newest value of each vital across the patient's devices, and when the last one came. */
export interface LiveVitals {
  values: Record<string, number>;
  timeMs: number;
  deviceId: string;
}

export interface LiveFeed {
  /** ECG samples waiting to be drawn; the canvas pulls from it each frame, outside React. */
  feed: SampleFeed;
  status: LiveStatus;
  vitals: LiveVitals | null;
}

/** Follows one patient's live socket while mounted. */
export function useLiveFeed(userId: string): LiveFeed {
  const { session, signOut } = useAuth();
  const token = session?.token;
  const feed = useMemo(() => new SampleFeed(), [userId]);
  const [status, setStatus] = useState<LiveStatus>('connecting');
  const [vitals, setVitals] = useState<LiveVitals | null>(null);

  useEffect(() => {
    if (!token) return undefined;
    setVitals(null);
    const close = openLiveSocket(userId, token, {
      onEcg: (message) => feed.push(message),
      // Each device reports its own vitals (ECG strap: heart rate, oximeter: SpO2): merge them.
      onVitals: (m: VitalsMessage) =>
        setVitals((prev) => ({ deviceId: m.deviceId, timeMs: m.timeMs, values: { ...prev?.values, ...m.values } })),
      onStatus: (next) => {
        setStatus(next);
        if (next === 'unauthenticated') signOut('Your session has ended. Sign in again.');
      },
    });
    return () => {
      close();
      feed.clear();
    };
  }, [userId, token, feed, signOut]);

  return { feed, status, vitals };
}
