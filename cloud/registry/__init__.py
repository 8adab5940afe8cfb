"""Fleet and model registries: who runs where, and which signed model versions exist (docs/rollout.md)."""
