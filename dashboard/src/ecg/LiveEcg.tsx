import type { LiveStatus } from '../live/liveSocket';
import { useLiveFeed, type LiveFeed } from '../live/useLiveFeed';
import { EcgCanvas } from './EcgCanvas';

const STATUS_TEXT: Record<LiveStatus, string> = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Connection lost, reconnecting…',
  forbidden: 'Live data refused: you are not permitted to view this patient.',
  unauthenticated: 'Session ended.',
  unavailable: 'Live data is not available from this server.',
};

export function liveStatusText(status: LiveStatus): string {
  return STATUS_TEXT[status];
}

interface LiveEcgViewProps {
  live: LiveFeed;
  pseudonym: string;
  heightMm?: number;
}

/** The strip and its connection state, for a feed the caller already follows. */
export function LiveEcgView({ live, pseudonym, heightMm }: LiveEcgViewProps) {
  return (
    <div className="live-ecg">
      <p className={`live-status live-${live.status}`} role="status">
        <span className="live-dot" aria-hidden="true" /> ECG: {liveStatusText(live.status)}
      </p>
      <EcgCanvas
        feed={live.feed}
        heightMm={heightMm}
        label={`Live ECG of ${pseudonym}, 25 mm per second, 10 mm per millivolt`}
      />
    </div>
  );
}

/** A live strip that follows the patient's socket itself. */
export function LiveEcg({ pseudonym, heightMm }: { pseudonym: string; heightMm?: number }) {
  const live = useLiveFeed(pseudonym);
  return <LiveEcgView live={live} pseudonym={pseudonym} heightMm={heightMm} />;
}
