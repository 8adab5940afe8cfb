import { describe, expect, it } from 'vitest';
import { errorCode, errorText } from './errors';

describe('errorCode', () => {
  it('prefers the GraphQL extension code', () => {
    expect(errorCode({ graphQLErrors: [{ message: 'no', extensions: { code: 'FORBIDDEN' } }] })).toBe('FORBIDDEN');
  });

  it('maps HTTP statuses of a network error', () => {
    expect(errorCode({ networkError: { statusCode: 401 } })).toBe('UNAUTHENTICATED');
    expect(errorCode({ networkError: { statusCode: 429 } })).toBe('RATE_LIMITED');
    expect(errorCode({ networkError: { statusCode: 502 } })).toBe('NETWORK');
    expect(errorCode({ networkError: new TypeError('Failed to fetch') })).toBe('NETWORK');
  });

  it('is null without an error', () => {
    expect(errorCode(undefined)).toBeNull();
    expect(errorCode({ graphQLErrors: [] })).toBeNull();
  });
});

describe('errorText', () => {
  it('quotes the API on a refusal', () => {
    expect(errorText({ graphQLErrors: [{ message: 'the nurse role may not use alarm.label', extensions: { code: 'FORBIDDEN' } }] }))
      .toBe('Not permitted: the nurse role may not use alarm.label');
    expect(errorText({ graphQLErrors: [{ message: 'widthS must be one of (60, 300)', extensions: { code: 'BAD_USER_INPUT' } }] }))
      .toBe('widthS must be one of (60, 300)');
  });
});
