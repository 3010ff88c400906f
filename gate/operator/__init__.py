"""The Kubernetes operator: a ``PerformanceGate`` custom resource in, rollouts through the engine out.

- ``resource``: the resource's models (the contract's spec, or a reference to one) and their validation.
- ``crd``: the CustomResourceDefinition, generated from those models (one source of truth).
- ``status``: pure mapping of a run's state to the resource's status, conditions and Events.
- ``engine_bridge``: the one adapter to the engine's composition (start, resume, ``advance``).
- ``limits``: the token bucket for Kubernetes API calls and the bound on Prometheus queries.
- ``handlers`` / ``main``: the kopf handlers and the process (``gate operator``).

Only this package imports kopf. Blocking calls (the engine, the store, Kubernetes writes) run in
worker threads, never on kopf's event loop.
"""
