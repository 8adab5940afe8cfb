/** Rules of the care-team chat panel, kept pure so they are tested without a browser. */
import type { ChatMessage, ChatSession } from '../api/types';
import { formatClock, formatDateTime, MISSING, toMs } from '../format';

/** The API refuses longer messages; the composer counts against the same limit. */
export const MAX_MESSAGE_CHARS = 4000;

/** The API refuses an attached ECG strip longer than this. */
export const MAX_STRIP_MS = 10 * 60 * 1000;

/** Consecutive messages from one sender closer than this share one header. */
export const GROUP_GAP_MS = 5 * 60 * 1000;

/**
 * The unread badge's words ("3 unread", "99+ unread"), or null when there is nothing unread.
 * Words, not a coloured dot alone: the count must reach readers who cannot tell the colours apart.
 */
export function unreadBadge(count: number | null | undefined): string | null {
  if (count == null || !Number.isFinite(count) || count <= 0) return null;
  return `${count > 99 ? '99+' : Math.floor(count)} unread`;
}

/** Sessions with the latest activity first (the API's order, kept when the cache is merged locally). */
export function sortSessions(sessions: readonly ChatSession[]): ChatSession[] {
  const activity = (s: ChatSession) => toMs(s.lastMessageAt) ?? toMs(s.startedAt) ?? 0;
  return [...sessions].sort((a, b) => activity(b) - activity(a) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * Messages oldest first with `incoming` merged in once: the sender's own mutation answer and the
 * subscription both deliver a new message, and the later copy must not show it twice.
 */
export function mergeMessages(current: readonly ChatMessage[], ...incoming: ChatMessage[]): ChatMessage[] {
  const byId = new Map(current.map((m) => [m.id, m]));
  for (const message of incoming) byId.set(message.id, message);
  return [...byId.values()].sort((a, b) => (toMs(a.sentAt) ?? 0) - (toMs(b.sentAt) ?? 0) || (a.id < b.id ? -1 : 1));
}

export interface MessageGroup {
  sender: string;
  role: string;
  automated: boolean;
  /** When the group's first message was sent. */
  sentAt: string;
  messages: ChatMessage[];
}

/** Runs of messages by one sender within GROUP_GAP_MS of each other, so the author is named once per run. */
export function groupMessages(messages: readonly ChatMessage[], gapMs = GROUP_GAP_MS): MessageGroup[] {
  const groups: MessageGroup[] = [];
  let previousMs: number | null = null;
  for (const message of messages) {
    const ms = toMs(message.sentAt);
    const last = groups[groups.length - 1];
    const joins = last !== undefined && last.sender === message.sender && last.automated === message.automated
      && ms !== null && previousMs !== null && ms - previousMs <= gapMs;
    if (joins) last.messages.push(message);
    else groups.push({ sender: message.sender, role: message.role, automated: message.automated,
      sentAt: message.sentAt, messages: [message] });
    previousMs = ms;
  }
  return groups;
}

/**
 * An ECG strip's time range: "10:00:00–10:00:30" within one day, full dates when it crosses midnight;
 * null when the message carries no strip.
 */
export function formatStripRange(from: string | null | undefined, to: string | null | undefined): string | null {
  const start = toMs(from);
  const end = toMs(to);
  if (start === null && end === null) return null;
  if (start === null || end === null) return `${formatDateTime(from)}–${formatDateTime(to)}`;
  const sameDay = new Date(start).toDateString() === new Date(end).toDateString();
  return sameDay ? `${formatClock(start)}–${formatClock(end)}` : `${formatDateTime(start)}–${formatDateTime(end)}`;
}

/** Characters as the API counts them (code points, so an emoji is one, not two UTF-16 units). */
export function messageLength(text: string): number {
  return [...text].length;
}

export interface ComposerState {
  length: number;
  /** "12 / 4000" */
  counter: string;
  tooLong: boolean;
  /** Why Send is refused, or null when it may go. */
  problem: string | null;
}

export function composerState(text: string, max = MAX_MESSAGE_CHARS): ComposerState {
  const length = messageLength(text);
  const tooLong = length > max;
  let problem: string | null = null;
  if (!text.trim()) problem = 'Type a message first.';
  else if (tooLong) problem = `Too long by ${length - max} characters (at most ${max}).`;
  return { length, counter: `${length} / ${max}`, tooLong, problem };
}

export interface StripInput {
  stripFrom: string | null;
  stripTo: string | null;
}

/**
 * The strip range of the composer's two `datetime-local` fields as ISO times: both empty is no strip;
 * one alone, an end before the start or a span over ten minutes is refused with the reason.
 */
export function stripFromInputs(from: string, to: string): StripInput | { error: string } {
  const a = from.trim();
  const b = to.trim();
  if (!a && !b) return { stripFrom: null, stripTo: null };
  if (!a || !b) return { error: 'Give both the start and the end of the strip, or neither.' };
  const start = Date.parse(a);
  const end = Date.parse(b);
  if (!Number.isFinite(start) || !Number.isFinite(end)) return { error: 'The strip times are not valid dates.' };
  if (end <= start) return { error: 'The strip must end after it starts.' };
  if (end - start > MAX_STRIP_MS) return { error: 'A strip spans at most 10 minutes.' };
  return { stripFrom: new Date(start).toISOString(), stripTo: new Date(end).toISOString() };
}

/**
 * Whether to tell the API the open session has been read: only while the page is visible, and only
 * when there is something new since the last time (so an idle open session sends nothing).
 */
export function shouldMarkRead(args: {
  visible: boolean;
  session: Pick<ChatSession, 'id' | 'unreadCount'> | null;
  lastMessageId: string | null;
  lastMarked: string | null;
}): boolean {
  const { visible, session, lastMessageId, lastMarked } = args;
  if (!visible || !session) return false;
  return session.unreadCount > 0 || (lastMessageId !== null && `${session.id}:${lastMessageId}` !== lastMarked);
}

/** The words a screen reader hears when a message arrives in a session that is not open. */
export function arrivalText(message: Pick<ChatMessage, 'sender' | 'automated'>, sessionTitle: string | null): string {
  const who = message.automated ? 'the assistant' : message.sender;
  return `New message from ${who}${sessionTitle ? ` in “${sessionTitle}”` : ''}.`;
}

/** A session's name in the list: its title, else what it is about. */
export function sessionLabel(session: Pick<ChatSession, 'title' | 'alarmId' | 'startedAt'>): string {
  const title = session.title.trim();
  if (title) return title;
  if (session.alarmId) return `Alarm ${session.alarmId}`;
  const started = toMs(session.startedAt);
  return started === null ? 'Discussion' : `Discussion of ${formatDateTime(started)}`;
}

/** "Sender (role)" for a message group's header; the assistant's role is shown by its Automated label. */
export function authorLine(group: Pick<MessageGroup, 'sender' | 'role' | 'automated'>): string {
  if (group.automated) return group.sender || 'assistant';
  return group.role ? `${group.sender || MISSING} (${group.role})` : group.sender || MISSING;
}
