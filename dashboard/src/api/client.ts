/** The GraphQL client of one session: HTTP for queries and mutations, graphql-ws for subscriptions. */
import { ApolloClient, HttpLink, InMemoryCache, from, split, type NormalizedCacheObject } from '@apollo/client';
import { onError } from '@apollo/client/link/error';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { getMainDefinition } from '@apollo/client/utilities';
import { createClient, type Client as WsClient } from 'graphql-ws';
import { errorCode } from './errors';
import { socketUrl } from './socketUrl';

// The API closes a WebSocket whose token it refuses with these codes; retrying would not help.
const WS_REFUSED = new Set([4401, 4403]);

function cache(): InMemoryCache {
  return new InMemoryCache({
    typePolicies: {
      Patient: { keyFields: ['pseudonym'] },
      Alarm: { keyFields: ['alarmId'] },
      AlarmActivity: { keyFields: ['alarmId'] },
      AlarmCommandState: { keyFields: ['commandId'] },
      Gateway: { keyFields: ['gatewayId'] },
      Site: { keyFields: ['siteId'] },
      Model: { keyFields: ['name', 'version'] },
      Rollout: { keyFields: ['rolloutId'] },
      // Reports, windows and strips have no identity of their own: each answer replaces the last.
      RiskReport: { keyFields: false },
      Query: {
        fields: {
          patients: { merge: false },
          gateways: { merge: false },
          rollouts: { merge: false },
        },
      },
    },
  });
}

export interface ApiClient {
  apollo: ApolloClient<NormalizedCacheObject>;
  dispose: () => void;
}

export function createApiClient(token: string, onUnauthenticated: () => void): ApiClient {
  const authorization = `Bearer ${token}`;

  const errorLink = onError(({ graphQLErrors, networkError }) => {
    if (errorCode({ graphQLErrors, networkError }) === 'UNAUTHENTICATED') onUnauthenticated();
  });

  const http = new HttpLink({ uri: '/graphql', headers: { Authorization: authorization } });

  const ws: WsClient = createClient({
    url: socketUrl('/graphql'),
    connectionParams: { Authorization: authorization },
    lazy: true,
    retryAttempts: 8,
    shouldRetry: (event) => !(event instanceof CloseEvent && WS_REFUSED.has(event.code)),
    on: {
      closed: (event) => {
        if (event instanceof CloseEvent && event.code === 4401) onUnauthenticated();
      },
    },
  });

  const transport = split(
    ({ query }) => {
      const definition = getMainDefinition(query);
      return definition.kind === 'OperationDefinition' && definition.operation === 'subscription';
    },
    new GraphQLWsLink(ws),
    http,
  );

  const apollo = new ApolloClient({
    link: from([errorLink, transport]),
    cache: cache(),
    defaultOptions: {
      watchQuery: { fetchPolicy: 'cache-and-network', nextFetchPolicy: 'cache-first', errorPolicy: 'all' },
      query: { fetchPolicy: 'network-only', errorPolicy: 'all' },
      mutate: { errorPolicy: 'none' },
    },
  });

  return {
    apollo,
    dispose: () => {
      apollo.stop();
      void ws.dispose();
      void apollo.clearStore();
    },
  };
}
