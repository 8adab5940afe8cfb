"""Staged, signed model rollouts with shadow evaluation and automatic rollback (docs/rollout.md)."""
