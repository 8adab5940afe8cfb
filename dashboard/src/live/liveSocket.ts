/** One patient's live socket: authenticates with its first message and reconnects until closed. */
import { socketUrl } from '../api/socketUrl';
import { parseLiveMessage, reconnectDelayS, type EcgMessage, type VitalsMessage } from './liveMessages';

export type LiveStatus = 'connecting' | 'live' | 'reconnecting' | 'forbidden' | 'unauthenticated' | 'unavailable';

export interface LiveHandlers {
  onEcg: (message: EcgMessage) => void;
  onVitals: (message: VitalsMessage) => void;
  onStatus: (status: LiveStatus) => void;
}

// Close codes after which reconnecting cannot help.
const CLOSE_REFUSALS: Record<number, LiveStatus> = { 4401: 'unauthenticated', 4403: 'forbidden', 4404: 'unavailable' };
const ERROR_REFUSALS: Record<string, LiveStatus> = {
  UNAUTHENTICATED: 'unauthenticated',
  FORBIDDEN: 'forbidden',
  NOT_AVAILABLE: 'unavailable',
};

/** Opens the socket for `userId`; the returned function closes it for good. */
export function openLiveSocket(userId: string, token: string, handlers: LiveHandlers): () => void {
  let socket: WebSocket | null = null;
  let attempt = 0;
  let retryTimer: number | undefined;
  let stopped = false;

  const connect = () => {
    handlers.onStatus(attempt === 0 ? 'connecting' : 'reconnecting');
    const ws = new WebSocket(socketUrl(`/ws/live?userId=${encodeURIComponent(userId)}`));
    socket = ws;
    let refused: LiveStatus | null = null;
    ws.onopen = () => ws.send(JSON.stringify({ token }));
    ws.onmessage = (event: MessageEvent) => {
      if (typeof event.data !== 'string') return;
      const message = parseLiveMessage(event.data);
      if (!message) return;
      switch (message.type) {
        case 'ready':
          attempt = 0;
          handlers.onStatus('live');
          break;
        case 'ecg':
          handlers.onEcg(message);
          break;
        case 'vitals':
          handlers.onVitals(message);
          break;
        case 'error':
          refused = ERROR_REFUSALS[message.code] ?? refused;
          break;
      }
    };
    ws.onclose = (event: CloseEvent) => {
      if (stopped) return;
      refused = CLOSE_REFUSALS[event.code] ?? refused;
      if (refused) {
        handlers.onStatus(refused);
        return;
      }
      handlers.onStatus('reconnecting');
      retryTimer = window.setTimeout(connect, reconnectDelayS(attempt++) * 1000);
    };
  };

  connect();
  return () => {
    stopped = true;
    window.clearTimeout(retryTimer);
    socket?.close(1000);
  };
}
