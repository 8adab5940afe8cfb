/**
 * Care-team chat on a patient and on its alarms: sessions with the caller's unread counts, the open
 * session's messages, and a composer. Message text is only ever rendered as React text nodes (with
 * CSS pre-wrap for line breaks): whatever a colleague or the assistant typed is shown, never run.
 */
import { type ApolloCache, useApolloClient, useMutation, useQuery, useSubscription } from '@apollo/client';
import { type FormEvent, type RefObject, useEffect, useId, useMemo, useRef, useState } from 'react';
import { errorCode, errorText, type ErrorLike } from '../api/errors';
import {
  ASK_ASSISTANT,
  CHAT_MESSAGE_ADDED,
  CHAT_MESSAGES,
  CHAT_SESSIONS,
  MARK_CHAT_READ,
  SEND_CHAT_MESSAGE,
  START_CHAT_SESSION,
} from '../api/operations';
import type { Alarm, ChatMessage, ChatSession } from '../api/types';
import { formatClock, formatDateTime } from '../format';
import { conditionLabel } from '../ward/alarmDisplay';
import {
  arrivalText,
  authorLine,
  composerState,
  formatStripRange,
  groupMessages,
  mergeMessages,
  sessionLabel,
  shouldMarkRead,
  sortSessions,
  stripFromInputs,
  unreadBadge,
} from './chat';

/** The most messages one session shows (the API's default page). */
export const MESSAGE_LIMIT = 200;
// The subscription delivers new messages; these polls only repair a dropped socket.
const SESSIONS_POLL_MS = 60_000;
const MESSAGES_POLL_MS = 60_000;
const PREVIEW_CHARS = 80;

/** A request from the alarm history to discuss one alarm; `nonce` makes a repeated click a new request. */
export interface DiscussRequest {
  alarmId: string;
  title: string;
  nonce: number;
}

interface ChatPanelProps {
  pseudonym: string;
  /** The signed-in user: their own messages are not announced to them. */
  username: string;
  alarms: readonly Alarm[];
  canWrite: boolean;
  discuss: DiscussRequest | null;
}

type SessionsData = { chatSessions: ChatSession[] };
type MessagesData = { chatMessages: ChatMessage[] };

/** Puts a message into the cached list of its session, if that list has been loaded. */
function cacheMessage(cache: ApolloCache<unknown>, message: ChatMessage): void {
  cache.updateQuery<MessagesData>(
    { query: CHAT_MESSAGES, variables: { sessionId: message.sessionId, limit: MESSAGE_LIMIT } },
    (data) => (data ? { chatMessages: mergeMessages(data.chatMessages, message) } : undefined),
  );
}

function useDocumentVisible(): boolean {
  const [visible, setVisible] = useState(() => document.visibilityState === 'visible');
  useEffect(() => {
    const update = () => setVisible(document.visibilityState === 'visible');
    document.addEventListener('visibilitychange', update);
    return () => document.removeEventListener('visibilitychange', update);
  }, []);
  return visible;
}

function preview(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > PREVIEW_CHARS ? `${line.slice(0, PREVIEW_CHARS - 1)}…` : line;
}

export function ChatPanel({ pseudonym, username, alarms, canWrite, discuss }: ChatPanelProps) {
  const client = useApolloClient();
  const sessionsQuery = useQuery<SessionsData>(CHAT_SESSIONS, {
    variables: { userId: pseudonym },
    pollInterval: SESSIONS_POLL_MS,
    fetchPolicy: 'cache-and-network',
  });
  const sessions = useMemo(() => sortSessions(sessionsQuery.data?.chatSessions ?? []), [sessionsQuery.data]);
  const [openId, setOpenId] = useState<string | null>(null);
  const [latest, setLatest] = useState<Record<string, ChatMessage>>({});
  const [announcement, setAnnouncement] = useState('');
  const openRef = useRef<string | null>(null);
  openRef.current = openId;
  const sessionsRef = useRef<ChatSession[]>(sessions);
  sessionsRef.current = sessions;
  const composerRef = useRef<HTMLTextAreaElement | null>(null);
  const panelRef = useRef<HTMLDivElement | null>(null);

  useSubscription<{ chatMessageAdded: ChatMessage | null }>(CHAT_MESSAGE_ADDED, {
    variables: { userId: pseudonym },
    onData: ({ client: apollo, data }) => {
      const message = data.data?.chatMessageAdded;
      if (!message) return;
      cacheMessage(apollo.cache, message);
      setLatest((previous) => ({ ...previous, [message.sessionId]: message }));
      // Unread counts are the caller's own and kept by the API: ask for them again.
      void sessionsQuery.refetch().catch(() => undefined);
      if (message.sessionId !== openRef.current && message.sender !== username) {
        const session = sessionsRef.current.find((s) => s.id === message.sessionId);
        setAnnouncement(arrivalText(message, session ? sessionLabel(session) : null));
      }
    },
  });

  const [startSession, starting] = useMutation<{ startChatSession: ChatSession | null }>(START_CHAT_SESSION);
  const [title, setTitle] = useState('');

  const open = (id: string) => {
    setOpenId(id);
    setAnnouncement('');
  };

  const start = async (alarmId: string | null, sessionTitle: string): Promise<string | null> => {
    try {
      const result = await startSession({ variables: { userId: pseudonym, alarmId, title: sessionTitle || null } });
      const created = result.data?.startChatSession;
      if (!created) return null;
      await sessionsQuery.refetch().catch(() => undefined);
      open(created.id);
      return created.id;
    } catch {
      return null; // shown from starting.error
    }
  };

  const submitStart = async (event: FormEvent) => {
    event.preventDefault();
    if (await start(null, title.trim())) setTitle('');
  };

  // "Discuss" on an alarm: open the alarm's session, starting one when there is none yet.
  const handledNonce = useRef<number | null>(null);
  useEffect(() => {
    if (!discuss || handledNonce.current === discuss.nonce || !sessionsQuery.data) return;
    handledNonce.current = discuss.nonce;
    const existing = sortSessions(sessionsQuery.data.chatSessions).find((s) => s.alarmId === discuss.alarmId);
    const opened = existing ? Promise.resolve(existing.id) : canWrite ? start(discuss.alarmId, discuss.title) : Promise.resolve(null);
    if (existing) open(existing.id);
    void opened.then((id) => {
      panelRef.current?.scrollIntoView({ block: 'start' });
      if (id) composerRef.current?.focus();
    });
    // Keyed on the request (its nonce), not on start(): a new closure each render must not repeat it.
  }, [discuss, sessionsQuery.data, canWrite]);

  const openSession = sessions.find((s) => s.id === openId) ?? null;
  const sessionsError = sessionsQuery.error ? errorText(sessionsQuery.error) : null;
  const chatOff = errorCode(sessionsQuery.error) === 'NOT_AVAILABLE';

  return (
    <div className="chat" ref={panelRef} data-testid="chat-panel">
      <p className="visually-hidden" aria-live="polite" data-testid="chat-announcement">{announcement}</p>
      <div className="chat-layout">
        <div className="chat-sessions-column">
          <h3 id="chat-sessions-title">Discussions</h3>
          {sessionsError && <p role="alert" className="error-text">{sessionsError}</p>}
          {!sessionsQuery.data && !sessionsError && <p>Loading…</p>}
          {sessionsQuery.data && sessions.length === 0 && <p className="muted">No discussions about this patient yet.</p>}
          {sessions.length > 0 && (
            <ul className="chat-sessions plain" aria-labelledby="chat-sessions-title">
              {sessions.map((session) => (
                <SessionItem key={session.id} session={session} selected={session.id === openId}
                  latest={latest[session.id] ?? null} onOpen={() => open(session.id)} />
              ))}
            </ul>
          )}
          {canWrite && !chatOff && (
            <form className="chat-start" onSubmit={submitStart}>
              <label htmlFor="chat-topic">Topic of a new discussion (optional)</label>
              <input id="chat-topic" data-testid="chat-topic" maxLength={200} value={title}
                onChange={(e) => setTitle(e.target.value)} />
              <button type="submit" data-testid="chat-start" disabled={starting.loading}>Start discussion</button>
              {starting.error && <p role="alert" className="error-text">{errorText(starting.error as ErrorLike)}</p>}
            </form>
          )}
        </div>
        <div className="chat-session-column">
          {openSession ? (
            <OpenSession key={openSession.id} session={openSession} alarms={alarms}
              canWrite={canWrite} composerRef={composerRef} onSent={() => void sessionsQuery.refetch().catch(() => undefined)}
              cacheMessage={(m) => cacheMessage(client.cache, m)} />
          ) : (
            <p className="muted">Choose a discussion to read it{canWrite ? ', or start one' : ''}.</p>
          )}
        </div>
      </div>
    </div>
  );
}

interface SessionItemProps {
  session: ChatSession;
  selected: boolean;
  latest: ChatMessage | null;
  onOpen: () => void;
}

function SessionItem({ session, selected, latest, onOpen }: SessionItemProps) {
  const badge = unreadBadge(session.unreadCount);
  const label = sessionLabel(session);
  return (
    <li className={`chat-session${selected ? ' chat-session-open' : ''}`} data-testid={`chat-session-${session.id}`}
      data-unread={session.unreadCount}>
      <button type="button" className="chat-session-button" aria-current={selected ? 'true' : undefined}
        onClick={onOpen}>
        <span className="chat-session-title">{label}</span>
        {badge && <span className="chat-unread" data-testid="chat-unread">{badge}</span>}
      </button>
      <span className="hint">
        {session.alarmId ? `Alarm ${session.alarmId} · ` : ''}
        {session.messageCount} {session.messageCount === 1 ? 'message' : 'messages'}
        {session.lastMessageAt ? ` · last ${formatClock(session.lastMessageAt)}` : ` · started by ${session.startedBy}`}
      </span>
      {latest && !selected && (
        <span className="chat-preview" data-testid="chat-preview">
          {latest.automated ? 'assistant' : latest.sender}: {preview(latest.text)}
        </span>
      )}
    </li>
  );
}

interface OpenSessionProps {
  session: ChatSession;
  alarms: readonly Alarm[];
  canWrite: boolean;
  composerRef: RefObject<HTMLTextAreaElement | null>;
  onSent: () => void;
  cacheMessage: (message: ChatMessage) => void;
}

function OpenSession({ session, alarms, canWrite, composerRef, onSent, cacheMessage: remember }: OpenSessionProps) {
  const messagesQuery = useQuery<MessagesData>(CHAT_MESSAGES, {
    variables: { sessionId: session.id, limit: MESSAGE_LIMIT },
    pollInterval: MESSAGES_POLL_MS,
    fetchPolicy: 'cache-and-network',
  });
  const messages = messagesQuery.data?.chatMessages ?? [];
  const groups = useMemo(() => groupMessages(messages), [messages]);
  const visible = useDocumentVisible();
  const [markRead] = useMutation(MARK_CHAT_READ);
  const lastMarked = useRef<string | null>(null);
  const lastId = messages[messages.length - 1]?.id ?? null;

  // Read marks are the writers' (the API keeps them for nurses and clinicians only).
  useEffect(() => {
    const wanted = canWrite && shouldMarkRead({ visible, session, lastMessageId: lastId, lastMarked: lastMarked.current });
    if (!wanted) return;
    lastMarked.current = `${session.id}:${lastId}`;
    markRead({ variables: { sessionId: session.id } }).catch(() => undefined);
  }, [canWrite, visible, session, lastId, markRead]);

  // Keep the newest message in view as messages arrive.
  const listRef = useRef<HTMLOListElement | null>(null);
  useEffect(() => {
    const list = listRef.current;
    if (list) list.scrollTop = list.scrollHeight;
  }, [lastId]);

  const label = sessionLabel(session);
  return (
    <section className="chat-open" aria-labelledby="chat-open-title" data-testid="chat-open">
      <h3 id="chat-open-title">{label}</h3>
      <p className="hint">
        Started by {session.startedBy} at {formatDateTime(session.startedAt)}
        {session.alarmId ? <> · about <a href={`#alarm-record-${session.alarmId}`}>alarm {session.alarmId}</a></> : null}
      </p>
      {messagesQuery.error && <p role="alert" className="error-text">{errorText(messagesQuery.error)}</p>}
      {!messagesQuery.data && !messagesQuery.error && <p>Loading…</p>}
      {messagesQuery.data && messages.length === 0 && <p className="muted">No messages yet.</p>}
      {groups.length > 0 && (
        // A scrolling region must be reachable by keyboard.
        <ol className="chat-messages" ref={listRef} tabIndex={0} aria-label={`Messages in ${label}`}
          data-testid="chat-messages">
          {groups.map((group) => (
            <li key={group.messages[0]!.id} className={`chat-group${group.automated ? ' chat-group-automated' : ''}`}>
              <p className="chat-author">
                <strong>{authorLine(group)}</strong>
                {group.automated && <span className="tag chat-automated">Automated</span>}
              </p>
              {group.messages.map((message) => <MessageItem key={message.id} message={message} />)}
            </li>
          ))}
        </ol>
      )}
      {canWrite && <Composer session={session} alarms={alarms} composerRef={composerRef} onSent={(m) => {
        remember(m);
        onSent();
      }} />}
    </section>
  );
}

function MessageItem({ message }: { message: ChatMessage }) {
  const [showStrip, setShowStrip] = useState(false);
  const strip = formatStripRange(message.stripFrom, message.stripTo);
  return (
    <div className="chat-message" data-testid={`chat-message-${message.id}`}>
      <time className="chat-time" dateTime={message.sentAt}>{formatClock(message.sentAt)}</time>
      <p className="chat-text" data-testid="chat-text">{message.text}</p>
      {(message.alarmId || strip) && (
        <p className="chat-attachments">
          {message.alarmId && <a href={`#alarm-record-${message.alarmId}`} className="tag">Alarm {message.alarmId}</a>}
          {strip && (
            <button type="button" className="link-button" aria-expanded={showStrip} onClick={() => setShowStrip((v) => !v)}>
              ECG strip {strip}
            </button>
          )}
          {strip && showStrip && (
            <span className="chat-strip-detail">
              ECG strip from {formatDateTime(message.stripFrom)} to {formatDateTime(message.stripTo)}
            </span>
          )}
        </p>
      )}
      {message.citations.length > 0 && (
        <>
          <p className="hint chat-sources-title">Based on:</p>
          <ul className="chat-citations">
            {message.citations.map((c, i) => (
              <li key={`${c.kind}-${i}`}>
                <span className="tag">{c.kind}</span> {c.label}: {c.value}
                {c.at ? <span className="hint"> ({formatDateTime(c.at)})</span> : null}
              </li>
            ))}
          </ul>
        </>
      )}
    </div>
  );
}

interface ComposerProps {
  session: ChatSession;
  alarms: readonly Alarm[];
  composerRef: RefObject<HTMLTextAreaElement | null>;
  onSent: (message: ChatMessage) => void;
}

function Composer({ session, alarms, composerRef, onSent }: ComposerProps) {
  const ids = useId();
  const [text, setText] = useState('');
  const [alarmId, setAlarmId] = useState('');
  const [stripFrom, setStripFrom] = useState('');
  const [stripTo, setStripTo] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  const [assistantOff, setAssistantOff] = useState(false);
  const [send, sending] = useMutation<{ sendChatMessage: ChatMessage | null }>(SEND_CHAT_MESSAGE);
  const [ask, asking] = useMutation<{ askAssistant: ChatMessage | null }>(ASK_ASSISTANT);
  const state = composerState(text);
  const busy = sending.loading || asking.loading;
  const failure = sending.error ?? (asking.error && errorCode(asking.error as ErrorLike) !== 'NOT_AVAILABLE' ? asking.error : undefined);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (state.problem) {
      setProblem(state.problem);
      return;
    }
    const strip = stripFromInputs(stripFrom, stripTo);
    if ('error' in strip) {
      setProblem(strip.error);
      return;
    }
    setProblem(null);
    try {
      const result = await send({ variables: { sessionId: session.id, message: text, alarmId: alarmId || null, ...strip } });
      const sent = result.data?.sendChatMessage;
      if (sent) onSent(sent);
      setText('');
      setAlarmId('');
      setStripFrom('');
      setStripTo('');
    } catch {
      // shown from sending.error
    }
  };

  const askAssistant = async () => {
    if (state.problem) {
      setProblem(state.problem);
      return;
    }
    setProblem(null);
    // The API posts the question as the caller's message and then the answer; both also arrive by the
    // subscription, and the answer comes back here at once.
    try {
      const result = await ask({ variables: { sessionId: session.id, question: text } });
      const answer = result.data?.askAssistant;
      setText('');
      if (answer) onSent(answer);
    } catch (error) {
      if (errorCode(error as ErrorLike) === 'NOT_AVAILABLE') setAssistantOff(true);
    }
  };

  return (
    <form className="chat-composer" onSubmit={submit} aria-label="Write a message">
      <label htmlFor={`${ids}-text`}>Message</label>
      <textarea id={`${ids}-text`} ref={composerRef} data-testid="chat-input" rows={3} value={text}
        aria-invalid={state.tooLong} aria-describedby={`${ids}-count`}
        onChange={(e) => {
          setText(e.target.value);
          setProblem(null);
        }} />
      <span id={`${ids}-count`} className={`hint chat-counter${state.tooLong ? ' error-text' : ''}`}
        data-testid="chat-counter">
        {state.counter} characters{state.tooLong ? ' (too long)' : ''}
      </span>
      <details className="chat-attach">
        <summary>Attach an alarm or an ECG strip</summary>
        <div className="chat-attach-fields">
          <div className="field">
            <label htmlFor={`${ids}-alarm`}>Alarm</label>
            <select id={`${ids}-alarm`} value={alarmId} onChange={(e) => setAlarmId(e.target.value)}>
              <option value="">None</option>
              {alarms.map((a) => (
                <option key={a.alarmId} value={a.alarmId}>
                  {conditionLabel(a.condition)} ({a.priority}) at {formatDateTime(a.raisedAt)}
                </option>
              ))}
            </select>
          </div>
          <div className="field">
            <label htmlFor={`${ids}-from`}>Strip from</label>
            <input id={`${ids}-from`} type="datetime-local" step={1} value={stripFrom}
              onChange={(e) => setStripFrom(e.target.value)} />
          </div>
          <div className="field">
            <label htmlFor={`${ids}-to`}>Strip to</label>
            <input id={`${ids}-to`} type="datetime-local" step={1} value={stripTo}
              onChange={(e) => setStripTo(e.target.value)} />
          </div>
        </div>
      </details>
      <div className="button-row">
        <button type="submit" className="primary" data-testid="chat-send" disabled={busy}>Send</button>
        <button type="button" data-testid="chat-ask" disabled={busy || assistantOff} onClick={() => void askAssistant()}>
          Ask assistant
        </button>
        {assistantOff && <span className="hint">The assistant is turned off on this server.</span>}
      </div>
      {problem && <p role="alert" className="error-text">{problem}</p>}
      {failure && <p role="alert" className="error-text">{errorText(failure as ErrorLike)}</p>}
    </form>
  );
}
