/** Exchanging a username and password for an access token at the API's embedded issuer. */

export class LoginError extends Error {}

interface TokenResponse {
  access_token: string;
  token_type: string;
  expires_in: number;
}

function refusalText(status: number): string {
  switch (status) {
    case 401:
      return 'Sign-in failed: unknown username or wrong password.';
    case 404:
      return 'Sign-in failed: this server takes tokens from an external identity provider.';
    case 422:
      return 'Sign-in failed: enter both a username and a password.';
    case 429:
      return 'Too many sign-in attempts. Wait a moment and try again.';
    default:
      return `Sign-in failed: the server answered ${status}.`;
  }
}

export async function requestToken(username: string, password: string): Promise<string> {
  let response: Response;
  try {
    response = await fetch('/auth/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username, password }),
    });
  } catch {
    throw new LoginError('Sign-in failed: the server cannot be reached.');
  }
  if (!response.ok) throw new LoginError(refusalText(response.status));
  const body = (await response.json()) as Partial<TokenResponse>;
  if (typeof body.access_token !== 'string' || !body.access_token) {
    throw new LoginError('Sign-in failed: the server sent no token.');
  }
  return body.access_token;
}
