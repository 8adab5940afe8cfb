import { describe, expect, it } from 'vitest';
import type { ChatMessage, ChatSession } from '../api/types';
import { canChat, canRecordCare } from '../auth/permissions';
import { formatClock, formatDateTime, MISSING } from '../format';
import {
  arrivalText,
  authorLine,
  composerState,
  formatStripRange,
  groupMessages,
  mergeMessages,
  messageLength,
  sessionLabel,
  shouldMarkRead,
  sortSessions,
  stripFromInputs,
  unreadBadge,
} from './chat';

const message = (id: string, sender: string, sentAt: string, extra: Partial<ChatMessage> = {}): ChatMessage => ({
  id, sessionId: 's1', sender, role: 'nurse', automated: false, text: `text ${id}`, sentAt, alarmId: null,
  stripFrom: null, stripTo: null, citations: [], ...extra,
});

const session = (id: string, startedAt: string, lastMessageAt: string | null, extra: Partial<ChatSession> = {}): ChatSession => ({
  id, userId: 'pt-1', startedAt, startedBy: 'nurse3', alarmId: null, title: '', unreadCount: 0, messageCount: 0,
  lastMessageAt, ...extra,
});

describe('unreadBadge', () => {
  it('says the count in words and hides at zero', () => {
    expect(unreadBadge(0)).toBeNull();
    expect(unreadBadge(null)).toBeNull();
    expect(unreadBadge(-2)).toBeNull();
    expect(unreadBadge(1)).toBe('1 unread');
    expect(unreadBadge(99)).toBe('99 unread');
    expect(unreadBadge(250)).toBe('99+ unread');
  });
});

describe('sortSessions', () => {
  it('puts the latest activity first, a new empty session by its start', () => {
    const old = session('a', '2026-01-01T08:00:00Z', '2026-01-01T09:00:00Z');
    const busy = session('b', '2026-01-01T07:00:00Z', '2026-01-01T10:00:00Z');
    const fresh = session('c', '2026-01-01T09:30:00Z', null);
    expect(sortSessions([old, busy, fresh]).map((s) => s.id)).toEqual(['b', 'c', 'a']);
  });
});

describe('mergeMessages', () => {
  it('keeps one copy of a message delivered by both the mutation and the subscription, oldest first', () => {
    const a = message('m1', 'nurse3', '2026-01-01T10:00:00Z');
    const b = message('m2', 'clin3', '2026-01-01T10:01:00Z');
    const merged = mergeMessages([b], a, b, { ...b, text: 'edited copy' });
    expect(merged.map((m) => m.id)).toEqual(['m1', 'm2']);
    expect(merged[1]!.text).toBe('edited copy');
  });
});

describe('groupMessages', () => {
  it('names the author once per run and starts a new run after a gap, another sender or the assistant', () => {
    const groups = groupMessages([
      message('1', 'nurse3', '2026-01-01T10:00:00Z'),
      message('2', 'nurse3', '2026-01-01T10:04:00Z'),
      message('3', 'nurse3', '2026-01-01T10:20:00Z'),
      message('4', 'clin3', '2026-01-01T10:21:00Z', { role: 'clinician' }),
      message('5', 'assistant', '2026-01-01T10:21:30Z', { role: 'automated', automated: true }),
      message('6', 'assistant', '2026-01-01T10:22:00Z', { role: 'automated', automated: true }),
    ]);
    expect(groups.map((g) => [g.sender, g.messages.map((m) => m.id)])).toEqual([
      ['nurse3', ['1', '2']],
      ['nurse3', ['3']],
      ['clin3', ['4']],
      ['assistant', ['5', '6']],
    ]);
    expect(groups[2]!.role).toBe('clinician');
    expect(groups[3]!.automated).toBe(true);
  });

  it('returns nothing for no messages', () => {
    expect(groupMessages([])).toEqual([]);
  });
});

describe('formatStripRange', () => {
  it('is null without a strip and names both ends with one', () => {
    expect(formatStripRange(null, null)).toBeNull();
    const from = '2026-01-01T10:00:00Z';
    const to = '2026-01-01T10:00:30Z';
    expect(formatStripRange(from, to)).toBe(`${formatClock(from)}–${formatClock(to)}`);
    expect(formatStripRange(from, null)).toBe(`${formatDateTime(from)}–${MISSING}`);
  });

  it('gives full dates when the range crosses days', () => {
    const from = '2026-01-01T10:00:00Z';
    const to = '2026-01-03T10:00:30Z';
    expect(formatStripRange(from, to)).toBe(`${formatDateTime(from)}–${formatDateTime(to)}`);
  });
});

describe('composer', () => {
  it('counts characters as the API does, an emoji as one', () => {
    expect(messageLength('🫀 ok')).toBe(4);
    expect(composerState('🫀').counter).toBe('1 / 4000');
  });

  it('refuses an empty message and one over the limit, and says by how much', () => {
    expect(composerState('   ').problem).toBe('Type a message first.');
    expect(composerState('x'.repeat(4000)).problem).toBeNull();
    const over = composerState('x'.repeat(4003));
    expect(over.tooLong).toBe(true);
    expect(over.problem).toContain('by 3 characters');
  });
});

describe('stripFromInputs', () => {
  it('accepts none or both ends in order, as ISO times', () => {
    expect(stripFromInputs('', ' ')).toEqual({ stripFrom: null, stripTo: null });
    const both = stripFromInputs('2026-01-01T10:00', '2026-01-01T10:01');
    expect('error' in both).toBe(false);
    if (!('error' in both)) {
      expect(Date.parse(both.stripTo!) - Date.parse(both.stripFrom!)).toBe(60_000);
      expect(both.stripFrom).toMatch(/Z$/);
    }
  });

  it('refuses one end alone, an end before the start and nonsense', () => {
    expect(stripFromInputs('2026-01-01T10:00', '')).toHaveProperty('error');
    expect(stripFromInputs('2026-01-01T10:01', '2026-01-01T10:00')).toHaveProperty('error');
    expect(stripFromInputs('yesterday', 'today')).toHaveProperty('error');
    expect(stripFromInputs('2026-01-01T10:00', '2026-01-01T10:10')).not.toHaveProperty('error');
    expect(stripFromInputs('2026-01-01T10:00', '2026-01-01T10:10:01')).toEqual({ error: 'A strip spans at most 10 minutes.' });
  });
});

describe('shouldMarkRead', () => {
  const open = { id: 's1', unreadCount: 0 };
  it('marks only a visible open session with something new', () => {
    expect(shouldMarkRead({ visible: false, session: { ...open, unreadCount: 3 }, lastMessageId: 'm1', lastMarked: null })).toBe(false);
    expect(shouldMarkRead({ visible: true, session: null, lastMessageId: 'm1', lastMarked: null })).toBe(false);
    expect(shouldMarkRead({ visible: true, session: { ...open, unreadCount: 2 }, lastMessageId: 'm1', lastMarked: 's1:m1' })).toBe(true);
    expect(shouldMarkRead({ visible: true, session: open, lastMessageId: 'm2', lastMarked: 's1:m1' })).toBe(true);
    expect(shouldMarkRead({ visible: true, session: open, lastMessageId: 'm1', lastMarked: 's1:m1' })).toBe(false);
    expect(shouldMarkRead({ visible: true, session: open, lastMessageId: null, lastMarked: null })).toBe(false);
  });
});

describe('labels', () => {
  it('names sessions and authors in words', () => {
    expect(sessionLabel({ title: ' Night handover ', alarmId: null, startedAt: '2026-01-01T10:00:00Z' })).toBe('Night handover');
    expect(sessionLabel({ title: '', alarmId: 'a-7', startedAt: '2026-01-01T10:00:00Z' })).toBe('Alarm a-7');
    expect(sessionLabel({ title: '', alarmId: null, startedAt: '2026-01-01T10:00:00Z' })).toMatch(/^Discussion of /);
    expect(authorLine({ sender: 'clin3', role: 'clinician', automated: false })).toBe('clin3 (clinician)');
    expect(authorLine({ sender: 'assistant', role: 'automated', automated: true })).toBe('assistant');
    expect(arrivalText({ sender: 'nurse3', automated: false }, 'Alarm a-7')).toBe('New message from nurse3 in “Alarm a-7”.');
    expect(arrivalText({ sender: 'assistant', automated: true }, null)).toBe('New message from the assistant.');
  });
});

describe('care permissions', () => {
  it('lets nurses and clinicians chat and only clinicians record care data', () => {
    expect(canChat('nurse')).toBe(true);
    expect(canChat('clinician')).toBe(true);
    expect(canChat('operator')).toBe(false);
    expect(canChat('admin')).toBe(false);
    expect(canRecordCare('clinician')).toBe(true);
    expect(canRecordCare('nurse')).toBe(false);
  });
});
