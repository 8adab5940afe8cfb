/** Reading an access token's claims in the browser. The server verifies signatures; this only decodes. */

export const ROLES = ['nurse', 'clinician', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface Identity {
  username: string;
  role: Role;
  sites: string[];
  /** Epoch milliseconds after which the token is refused, or null if it names no expiry. */
  expiresAtMs: number | null;
}

/** Decodes one base64url segment (no padding) into its UTF-8 text. */
export function base64UrlDecode(segment: string): string {
  const base64 = segment.replace(/-/g, '+').replace(/_/g, '/');
  const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
  return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
}

/** The JSON payload of a compact JWT, or null when the token is not one. */
export function decodeJwtPayload(token: string): Record<string, unknown> | null {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return null;
  try {
    const payload: unknown = JSON.parse(base64UrlDecode(parts[1]));
    return payload !== null && typeof payload === 'object' && !Array.isArray(payload)
      ? (payload as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/** Who the token speaks for (claims `sub`, `role`, `sites`, `exp`), or null if any is missing or malformed. */
export function identityFromToken(token: string): Identity | null {
  const claims = decodeJwtPayload(token);
  if (!claims || typeof claims.sub !== 'string' || !claims.sub || !isRole(claims.role)) return null;
  const sites = Array.isArray(claims.sites) ? claims.sites.filter((s): s is string => typeof s === 'string') : [];
  const exp = typeof claims.exp === 'number' && Number.isFinite(claims.exp) ? claims.exp * 1000 : null;
  return { username: claims.sub, role: claims.role, sites, expiresAtMs: exp };
}

/** True once the token has expired, counting `skewMs` early so a request never leaves with a dying token. */
export function isExpired(identity: Identity, nowMs: number, skewMs = 5000): boolean {
  return identity.expiresAtMs !== null && nowMs >= identity.expiresAtMs - skewMs;
}
