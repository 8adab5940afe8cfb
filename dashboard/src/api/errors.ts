/** The refusal codes the API puts in GraphQL errors (`extensions.code`) or HTTP statuses. */

export type ApiErrorCode =
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'RATE_LIMITED'
  | 'NOT_AVAILABLE'
  | 'BAD_USER_INPUT'
  | 'UNAVAILABLE'
  | 'NETWORK'
  | 'UNKNOWN';

/** The parts of an ApolloError (or any error) this module reads. */
export interface ErrorLike {
  message?: string;
  graphQLErrors?: ReadonlyArray<{ message?: string; extensions?: Record<string, unknown> | null }>;
  networkError?: unknown;
}

const HTTP_CODES: Record<number, ApiErrorCode> = { 401: 'UNAUTHENTICATED', 403: 'FORBIDDEN', 429: 'RATE_LIMITED' };

function statusOf(networkError: unknown): number | null {
  if (networkError && typeof networkError === 'object' && 'statusCode' in networkError) {
    const code = (networkError as { statusCode: unknown }).statusCode;
    return typeof code === 'number' ? code : null;
  }
  return null;
}

export function errorCode(error: ErrorLike | null | undefined): ApiErrorCode | null {
  if (!error) return null;
  for (const gql of error.graphQLErrors ?? []) {
    const code = gql.extensions?.code;
    if (typeof code === 'string') return code as ApiErrorCode;
  }
  if (error.networkError) {
    const status = statusOf(error.networkError);
    return (status !== null && HTTP_CODES[status]) || 'NETWORK';
  }
  return error.graphQLErrors?.length ? 'UNKNOWN' : null;
}

/** A sentence for the user; the API's own message where it has one. */
export function errorText(error: ErrorLike | null | undefined): string {
  if (!error) return '';
  const code = errorCode(error);
  const apiMessage = error.graphQLErrors?.find((e) => e.message)?.message;
  switch (code) {
    case 'UNAUTHENTICATED':
      return 'Your session has ended. Sign in again.';
    case 'FORBIDDEN':
      return `Not permitted${apiMessage ? `: ${apiMessage}` : '.'}`;
    case 'RATE_LIMITED':
      return 'Too many requests; the dashboard will try again shortly.';
    case 'NETWORK':
      return 'The server cannot be reached; retrying.';
    default:
      return apiMessage ?? error.message ?? 'Something went wrong.';
  }
}
