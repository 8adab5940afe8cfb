/** Which rollout actions a state allows (the controller refuses the others). */
import type { RolloutAction } from '../api/operations';

export function allowedActions(state: string): Set<RolloutAction> {
  switch (state) {
    case 'running':
      return new Set(['pause', 'promote', 'abort']);
    case 'paused':
      return new Set(['resume', 'promote', 'abort']);
    default:
      return new Set();
  }
}

export const ACTION_TEXT: Record<RolloutAction, { label: string; question: string; danger: boolean }> = {
  pause: { label: 'Pause', question: 'Hold the rollout at its current stage?', danger: false },
  resume: { label: 'Resume', question: 'Let the rollout go on from its current stage?', danger: false },
  promote: {
    label: 'Promote',
    question: 'Skip the remaining stages and make the candidate the champion on every gateway of the cohort?',
    danger: true,
  },
  abort: {
    label: 'Abort',
    question: 'Stop the rollout and send every gateway that switched back to the baseline version?',
    danger: true,
  },
};
