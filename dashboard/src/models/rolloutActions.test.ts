import { describe, expect, it } from 'vitest';
import { allowedActions } from './rolloutActions';

describe('allowedActions', () => {
  it('follows the rollout state', () => {
    expect([...allowedActions('running')].sort()).toEqual(['abort', 'pause', 'promote']);
    expect([...allowedActions('paused')].sort()).toEqual(['abort', 'promote', 'resume']);
    expect(allowedActions('completed').size).toBe(0);
    expect(allowedActions('aborted').size).toBe(0);
  });
});
