import { describe, expect, it } from 'vitest';
import { socketUrl } from './socketUrl';

describe('socketUrl', () => {
  it('keeps the origin and switches the scheme', () => {
    expect(socketUrl('/ws/live?userId=p-1', 'http://localhost:5173/ward')).toBe('ws://localhost:5173/ws/live?userId=p-1');
    expect(socketUrl('/graphql', 'https://icu.example.org/patients/x')).toBe('wss://icu.example.org/graphql');
  });
});
