import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { clearStoredToken, loadSession, sessionFromToken, storeToken, type Session } from './session';

interface AuthValue {
  session: Session | null;
  /** Why the last session ended (shown on the login page), if it did not end by the user's choice. */
  notice: string | null;
  /** The user signed out themselves: the next sign-in starts at its own home page, not the last page shown. */
  signedOutByUser: boolean;
  signIn: (token: string) => boolean;
  signOut: (notice?: string) => void;
}

const AuthContext = createContext<AuthValue | null>(null);

// setTimeout takes at most 2^31-1 ms; a longer token is re-checked when that timer fires.
const MAX_TIMER_MS = 2 ** 31 - 1;

export function AuthProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<Session | null>(() => loadSession());
  const [notice, setNotice] = useState<string | null>(null);
  const [signedOutByUser, setSignedOutByUser] = useState(false);

  const signOut = useCallback((why?: string) => {
    clearStoredToken();
    setSession(null);
    setNotice(why ?? null);
    setSignedOutByUser(why === undefined);
  }, []);

  const signIn = useCallback((token: string) => {
    const next = sessionFromToken(token);
    if (!next) return false;
    storeToken(token);
    setNotice(null);
    setSignedOutByUser(false);
    setSession(next);
    return true;
  }, []);

  // End the session when the token expires rather than waiting for the next refused request.
  useEffect(() => {
    const expiresAt = session?.identity.expiresAtMs;
    if (expiresAt == null) return undefined;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, expiresAt - 5000 - Date.now()));
    const timer = window.setTimeout(() => {
      if (!loadSession()) signOut('Your session has expired. Sign in again.');
    }, delay);
    return () => window.clearTimeout(timer);
  }, [session, signOut]);

  const value = useMemo(
    () => ({ session, notice, signedOutByUser, signIn, signOut }),
    [session, notice, signedOutByUser, signIn, signOut],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthValue {
  const value = useContext(AuthContext);
  if (!value) throw new Error('useAuth needs an AuthProvider');
  return value;
}

/** The signed-in session; only for components rendered behind the sign-in guard. */
export function useSession(): Session {
  const { session } = useAuth();
  if (!session) throw new Error('useSession needs a signed-in user');
  return session;
}
