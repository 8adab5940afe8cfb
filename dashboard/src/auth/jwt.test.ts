import { describe, expect, it } from 'vitest';
import { base64UrlDecode, decodeJwtPayload, identityFromToken, isExpired } from './jwt';

function segment(value: unknown): string {
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  let binary = '';
  bytes.forEach((b) => (binary += String.fromCharCode(b)));
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function token(claims: unknown): string {
  return `${segment({ alg: 'EdDSA', typ: 'JWT' })}.${segment(claims)}.c2lnbmF0dXJl`;
}

describe('base64UrlDecode', () => {
  it('restores the padding and the url-safe alphabet', () => {
    // "??>" encodes to "Pz8+" in base64, "Pz8-" in base64url
    expect(base64UrlDecode('Pz8-')).toBe('??>');
    expect(base64UrlDecode('YQ')).toBe('a');
    expect(base64UrlDecode('YWI')).toBe('ab');
  });

  it('decodes UTF-8', () => {
    expect(base64UrlDecode(segment({ n: 'Zoë' }))).toBe('{"n":"Zoë"}');
  });
});

describe('decodeJwtPayload', () => {
  it('returns the claims object', () => {
    expect(decodeJwtPayload(token({ sub: 'nurse-1', exp: 1700000900 }))).toEqual({ sub: 'nurse-1', exp: 1700000900 });
  });

  it('refuses what is not a three-part JWT with an object payload', () => {
    expect(decodeJwtPayload('abc')).toBeNull();
    expect(decodeJwtPayload('a.b')).toBeNull();
    expect(decodeJwtPayload(`x.${segment([1, 2])}.y`)).toBeNull();
    expect(decodeJwtPayload('x.%%%.y')).toBeNull();
  });
});

describe('identityFromToken', () => {
  it('maps sub, role, sites and exp', () => {
    const identity = identityFromToken(
      token({ sub: 'demo-nurse', role: 'nurse', sites: ['ward-a', 'ward-b'], exp: 1700000900, iat: 1700000000 }),
    );
    expect(identity).toEqual({ username: 'demo-nurse', role: 'nurse', sites: ['ward-a', 'ward-b'], expiresAtMs: 1700000900000 });
  });

  it('rejects an unknown role or a missing subject', () => {
    expect(identityFromToken(token({ sub: 'x', role: 'janitor' }))).toBeNull();
    expect(identityFromToken(token({ role: 'admin' }))).toBeNull();
  });

  it('tolerates missing sites and expiry', () => {
    expect(identityFromToken(token({ sub: 'op', role: 'operator' }))).toEqual({
      username: 'op', role: 'operator', sites: [], expiresAtMs: null,
    });
  });
});

describe('isExpired', () => {
  const identity = { username: 'a', role: 'admin' as const, sites: [], expiresAtMs: 100_000 };
  it('counts the skew before the expiry', () => {
    expect(isExpired(identity, 94_999)).toBe(false);
    expect(isExpired(identity, 95_000)).toBe(true);
    expect(isExpired(identity, 99_999, 0)).toBe(false);
    expect(isExpired({ ...identity, expiresAtMs: null }, 1e15)).toBe(false);
  });
});
