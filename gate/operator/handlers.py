"""kopf handlers: one daemon per PerformanceGate, Deployment revisions watched, all blocking work in threads.

- ``on.event`` of Deployments keeps each Deployment's revision in memory and wakes the gates that
  follow it (no API call per gate to learn of a new revision).
- ``on.event`` of PerformanceGates wakes its daemon (an annotation, a new spec).
- ``daemon`` per gate: ``GateWorker.step`` in the shared thread pool, then sleep until the engine says
  something is next due (or a wake-up). The daemon never calls anything blocking itself.

A replica that is paused (kopf peering: another replica of higher priority is alive) stops its daemons;
a thread in the middle of a step finishes it first (the step is shielded from cancellation), so the
run's record is whole when the other replica resumes it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import kopf

from gate.operator import resource
from gate.operator.engine_bridge import EngineParts
from gate.operator.limits import TokenBucket
from gate.operator.metrics import Heartbeat, OperatorMetrics
from gate.operator.worker import IDLE, GateWorker, Revision, revision_of

log = logging.getLogger(__name__)


@dataclass
class OperatorState:
    """What the handlers share (kopf's memo)."""

    parts: EngineParts
    metrics: OperatorMetrics
    pool: concurrent.futures.ThreadPoolExecutor
    bucket: TokenBucket
    heartbeat: Heartbeat
    revisions: dict[tuple[str, str], Revision] = field(default_factory=dict)
    workers: dict[str, GateWorker] = field(default_factory=dict)
    wakes: dict[str, asyncio.Event] = field(default_factory=dict)
    followers: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    ready: threading.Event = field(default_factory=threading.Event)
    status_every: float = 30.0

    def wake(self, uid: str) -> None:
        event = self.wakes.get(uid)
        if event is not None:
            event.set()

    def count_phases(self) -> None:
        counts: dict[str, int] = {}
        for w in list(self.workers.values()):
            counts[w.phase] = counts.get(w.phase, 0) + 1
        for phase in ("Waiting", "Progressing", "Held", "Promoted", "RolledBack", "Failed", "Invalid"):
            self.metrics.gates.labels(phase).set(counts.get(phase, 0))


def register(registry: kopf.OperatorRegistry, state: OperatorState, *, cancellation_timeout: float) -> None:
    """Register the handlers on ``registry``."""

    @kopf.on.event("apps", "v1", "deployments", registry=registry)
    def deployment_event(*, type: str, body: kopf.Body, namespace: str | None, name: str, **_: Any) -> None:
        key = (namespace or "", name)
        if type == "DELETED":
            state.revisions.pop(key, None)
        else:
            revision = revision_of(dict(body))
            if state.revisions.get(key) == revision:
                return
            state.revisions[key] = revision
        for uid in list(state.followers.get(key, ())):
            state.wake(uid)

    @kopf.on.event(resource.GROUP, resource.VERSION, resource.PLURAL, registry=registry)
    def gate_event(*, uid: str, **_: Any) -> None:
        state.wake(uid)

    @kopf.daemon(
        resource.GROUP,
        resource.VERSION,
        resource.PLURAL,
        registry=registry,
        # Stopped gracefully first (a step in flight finishes, a deleted gate's run rolls back), and
        # cancelled only after the backoff: without one, kopf cancels a daemon at once.
        cancellation_backoff=cancellation_timeout / 2,
        cancellation_timeout=cancellation_timeout,
    )
    async def gate_daemon(
        *, body: kopf.Body, uid: str, namespace: str | None, name: str, stopped: kopf.DaemonStopped, **_: Any
    ) -> None:
        namespace = namespace or "default"
        worker = GateWorker(
            state.parts,
            state.metrics,
            namespace=namespace,
            name=name,
            revisions=state.revisions,
            status_every=state.status_every,
        )
        wake = state.wakes[uid] = asyncio.Event()
        state.workers[uid] = worker
        followed: tuple[str, str] | None = None
        loop = asyncio.get_running_loop()
        try:
            while not stopped:
                wake.clear()
                snapshot = _plain(body)
                # Whole seconds: gates started by one revision change keep the same evidence windows,
                # so their identical Prometheus queries are sent once (gate.operator.limits).
                now = float(math.floor(time.time()))
                future = loop.run_in_executor(state.pool, worker.step, snapshot, now)
                try:
                    outcome = await asyncio.shield(future)
                except asyncio.CancelledError:
                    await asyncio.wait([future])  # a step in flight finishes before the daemon goes
                    raise
                except Exception as exc:  # logged and retried: a failing step never ends the gate
                    state.metrics.errors.inc()
                    log.warning("gate %s/%s: %s: %s", namespace, name, type(exc).__name__, exc)
                    outcome = None
                followed = _follow(state, uid, worker, followed)
                if outcome is not None:
                    for event in outcome.events:
                        delay = state.bucket.delay()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        state.metrics.api_calls.labels("create event").inc()
                        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
                state.count_phases()
                due = outcome.due if outcome is not None else time.time() + 5.0
                wait = IDLE if due is None else max(0.0, min(IDLE, due - time.time()))
                if wait > 0:
                    await _sleep(wake, stopped, wait)
        finally:
            state.wakes.pop(uid, None)
            state.workers.pop(uid, None)
            if followed is not None:
                state.followers.get(followed, set()).discard(uid)
            reason = stopped.reason
            if reason is not None and reason & kopf.DaemonStoppingReason.RESOURCE_DELETED:
                # Deleted mid-run: roll back before letting go (the finalizer waits for this).
                await loop.run_in_executor(state.pool, worker.withdraw)
            await loop.run_in_executor(state.pool, worker.close)
            state.count_phases()


async def _sleep(wake: asyncio.Event, stopped: kopf.DaemonStopped, seconds: float) -> None:
    """Sleep ``seconds``, or until the gate is woken (an event) or its daemon is told to stop."""
    woken = asyncio.ensure_future(wake.wait())
    stopping = asyncio.ensure_future(stopped.wait(seconds))
    try:
        await asyncio.wait({woken, stopping}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (woken, stopping):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(woken, stopping, return_exceptions=True)


def _follow(
    state: OperatorState, uid: str, worker: GateWorker, before: tuple[str, str] | None
) -> tuple[str, str] | None:
    """Remember which Deployment the gate follows, so its revision changes wake this gate."""
    contract = worker._contract[1] if worker._contract is not None else None
    deployment = contract.spec.target.canary.deployment if contract is not None else None
    key = (worker.namespace, deployment) if deployment else None
    if key != before:
        if before is not None:
            state.followers.get(before, set()).discard(uid)
        if key is not None:
            state.followers.setdefault(key, set()).add(uid)
    return key


def _plain(body: kopf.Body) -> dict[str, Any]:
    """A plain copy of kopf's live body, safe to hand to a thread."""
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": _copy(dict(body.metadata)),
        "spec": _copy(dict(body.spec)),
        "status": _copy(dict(body.status)),
    }


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
