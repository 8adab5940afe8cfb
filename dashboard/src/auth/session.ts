/** The signed-in session: the access token in sessionStorage (gone when the tab closes) and its claims. */
import { identityFromToken, isExpired, type Identity } from './jwt';

const TOKEN_KEY = 'cardiogate.token';

export interface Session {
  token: string;
  identity: Identity;
}

export function sessionFromToken(token: string, nowMs = Date.now()): Session | null {
  const identity = identityFromToken(token);
  if (!identity || isExpired(identity, nowMs)) return null;
  return { token, identity };
}

export function loadSession(): Session | null {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return null;
  const session = sessionFromToken(token);
  if (!session) sessionStorage.removeItem(TOKEN_KEY);
  return session;
}

export function storeToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearStoredToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}
