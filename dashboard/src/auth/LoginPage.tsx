import { useState, type FormEvent } from 'react';
import { Navigate, useLocation } from 'react-router-dom';
import { useAuth } from './AuthContext';
import { LoginError, requestToken } from './login';
import { homePath } from './permissions';

export function LoginPage() {
  const { session, notice, signIn } = useAuth();
  const location = useLocation();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  if (session) {
    const from = (location.state as { from?: string } | null)?.from;
    return <Navigate to={from && from !== '/login' ? from : homePath(session.identity.role)} replace />;
  }

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!username.trim() || !password) {
      setError('Enter your username and password.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const token = await requestToken(username.trim(), password);
      if (!signIn(token)) setError('Sign-in failed: the token from the server could not be read or has expired.');
    } catch (e) {
      setError(e instanceof LoginError ? e.message : 'Sign-in failed.');
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" className="login-page">
      <form className="login-form" onSubmit={submit} noValidate>
        <h1>Sign in to cardiogate</h1>
        {notice && <p role="status" className="notice">{notice}</p>}
        <label htmlFor="username">Username</label>
        <input id="username" name="username" autoComplete="username" autoCapitalize="none" spellCheck={false}
          value={username} onChange={(e) => setUsername(e.target.value)} required
          aria-describedby={error ? 'login-error' : undefined} />
        <label htmlFor="password">Password</label>
        <input id="password" name="password" type="password" autoComplete="current-password"
          value={password} onChange={(e) => setPassword(e.target.value)} required
          aria-describedby={error ? 'login-error' : undefined} />
        {error && <p id="login-error" role="alert" className="error-text">{error}</p>}
        <button type="submit" className="primary" data-testid="login-submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
