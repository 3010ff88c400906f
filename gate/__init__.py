"""gate — a progressive-delivery performance gate.

Layers (imports go one way, down; enforced by import-linter in `make test`):

1. faces — ``gate.cli``, ``gate.operator``, ``gate.dashboard``, ``gate.demo``
2. ``gate.engine`` — the rollout state machine: pure transitions, effects at the edge
3. ``gate.drivers`` — load, chaos, routers, Prometheus, Kubernetes, the run store, notifiers
4. ``gate.judge`` — pure statistics: no I/O, no clock
5. ``gate.contract`` — pure models and loading
"""

__version__ = "0.1.0"
