import { useApolloClient } from '@apollo/client';
import { useCallback, useEffect, useRef, useState } from 'react';
import { errorText, type ErrorLike } from '../api/errors';
import { ACKNOWLEDGE_ALARM, ALARM_COMMAND, PATIENTS, SILENCE_ALARM, UNSILENCE_ALARM } from '../api/operations';
import type { AlarmCommandState } from '../api/types';
import { commandName, describeCommand, isSettled, newCommandId, type CommandText } from './commandStatus';

export type AlarmCommandRequest =
  | { kind: 'acknowledge'; alarmId: string }
  | { kind: 'silence'; alarmId: string; durationS: number; reason: string }
  | { kind: 'unsilence'; alarmId: string };

// The API waits up to 5 s for the gateway; after that the dashboard asks again each second.
const WAIT_S = 5;
const POLL_MS = 1000;
const GIVE_UP_MS = 5 * 60_000; // a command not applied by then has expired on the server

const MUTATIONS = {
  acknowledge: { document: ACKNOWLEDGE_ALARM, field: 'acknowledgeAlarm' },
  silence: { document: SILENCE_ALARM, field: 'silenceAlarm' },
  unsilence: { document: UNSILENCE_ALARM, field: 'unsilenceAlarm' },
} as const;

/** Sends alarm commands for one patient and follows each to the gateway's answer. */
export function useAlarmCommand(pseudonym: string) {
  const client = useApolloClient();
  const [status, setStatus] = useState<CommandText | null>(null);
  const run = useRef(0); // a newer command supersedes the one being followed

  useEffect(() => () => void (run.current += 1), []);

  const send = useCallback(
    async (request: AlarmCommandRequest) => {
      const mine = ++run.current;
      const { document, field } = MUTATIONS[request.kind];
      const commandId = newCommandId();
      const current = () => run.current === mine;
      setStatus({ text: `${commandName(request.kind)}: sending…`, tone: 'pending' });
      try {
        const { kind: _kind, ...variables } = request;
        const result = await client.mutate<Record<string, AlarmCommandState>>({
          mutation: document,
          variables: { ...variables, userId: pseudonym, commandId, waitS: WAIT_S },
        });
        let state = result.data?.[field];
        if (!state) throw new Error('the server sent no command state');
        const started = Date.now();
        while (current()) {
          setStatus(describeCommand(state));
          if (isSettled(state) || Date.now() - started > GIVE_UP_MS) break;
          await new Promise((resolve) => window.setTimeout(resolve, POLL_MS));
          if (!current()) return;
          const polled = await client.query<{ alarmCommand: AlarmCommandState | null }>({
            query: ALARM_COMMAND, variables: { commandId }, fetchPolicy: 'network-only',
          });
          if (polled.data?.alarmCommand) state = polled.data.alarmCommand;
        }
        if (current()) void client.refetchQueries({ include: [PATIENTS] });
      } catch (error) {
        if (current()) {
          setStatus({ text: `${commandName(request.kind)} failed: ${errorText(error as ErrorLike)}`, tone: 'failed' });
        }
      }
    },
    [client, pseudonym],
  );

  return { status, send };
}
