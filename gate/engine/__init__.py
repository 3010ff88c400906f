"""The rollout engine: pure transitions (state, verdicts, time -> next state, effects) and the
effect runner that applies them through drivers, checkpointing before every effect."""
