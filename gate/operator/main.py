"""``gate operator``: the process — kopf's operator with gate's handlers, probes and shared parts.

Connects to the API server given (``--kube-server``, tests and emulators), else the pod's service
account, else a kubeconfig. Several replicas: kopf peering (``--peering NAME``): only the replica of
the highest priority handles gates; the others wait and take over when it stops renewing its record.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf

from gate.drivers import kube
from gate.operator import handlers
from gate.operator.engine_bridge import open_parts
from gate.operator.limits import TokenBucket
from gate.operator.metrics import Heartbeat, OperatorMetrics, ProbeServer

log = logging.getLogger(__name__)


@dataclass
class OperatorConfig:
    """What ``gate operator`` is told (flags and ``GATE_*`` environment variables)."""

    store: str = ".gate/operator.sqlite"  # a SQLite path, sqlite:///… or postgresql://…
    workdir: Path = Path(".gate/operator")
    kube_server: str | None = None
    kube_token: str | None = None
    kubeconfig: str | None = None
    namespaces: tuple[str, ...] = ()
    peering: str | None = None
    priority: int | None = None
    peering_lifetime: int = 15
    kube_qps: float = 20.0
    kube_burst: int = 40
    prometheus_concurrency: int = 8
    workers: int = 8
    probe_host: str = "127.0.0.1"
    probe_port: int = 8080
    cancellation_timeout: float = 60.0
    status_every: float = 30.0


def run(config: OperatorConfig) -> int:
    """Run the operator until SIGTERM/SIGINT; 0 on a clean stop."""
    metrics = OperatorMetrics()
    bucket = TokenBucket(config.kube_qps, config.kube_burst)
    # The bucket is the operator's own (gate.operator.limits): the client's is left unlimited.
    client = kube.connect(
        host=config.kube_server, token=config.kube_token, kubeconfig=config.kubeconfig, qps=0, burst=1
    )

    def on_api_call(verb: str) -> None:
        metrics.api_calls.labels(verb).inc()

    parts = open_parts(
        store=config.store,
        workdir=config.workdir,
        kube_client=client,
        bucket=bucket,
        on_api_call=on_api_call,
        prometheus_concurrency=config.prometheus_concurrency,
        on_query=metrics.queries.inc,
        on_ask=metrics.asked.inc,
    )
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="gate")
    heartbeat = Heartbeat()
    state = handlers.OperatorState(
        status_every=config.status_every,
        parts=parts,
        metrics=metrics,
        pool=pool,
        bucket=bucket,
        heartbeat=heartbeat,
    )
    registry = kopf.OperatorRegistry()
    handlers.register(registry, state, cancellation_timeout=config.cancellation_timeout)
    _register_setup(registry, config, state)
    probes = ProbeServer(
        metrics, config.probe_host, config.probe_port, healthy=heartbeat.healthy, ready=state.ready.is_set
    )
    probes.start()
    log.info("probes on http://%s:%d (/metrics /healthz /readyz)", config.probe_host, probes.port)
    try:
        asyncio.run(_main(config, registry, state))
    finally:
        probes.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        parts.close()
        client.close()
    return 0


def _register_setup(
    registry: kopf.OperatorRegistry, config: OperatorConfig, state: handlers.OperatorState
) -> None:
    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # gate posts its own Events (with the numbers); kopf's handler chatter only at errors.
        settings.posting.level = logging.ERROR
        settings.peering.lifetime = config.peering_lifetime
        settings.peering.stealth = True
        settings.watching.server_timeout = 300
        settings.persistence.finalizer = "perfgate.dev/operator"

    if config.kube_server:

        @kopf.on.login(registry=registry)
        def login(**_: Any) -> kopf.ConnectionInfo:
            return kopf.ConnectionInfo(
                server=config.kube_server or "",
                insecure=config.kube_server.startswith("http://") if config.kube_server else False,
                scheme="Bearer" if config.kube_token else None,
                token=config.kube_token,
            )
    else:

        @kopf.on.login(registry=registry)
        def login_client(**kwargs: Any) -> kopf.ConnectionInfo | None:
            return kopf.login_via_client(**kwargs)


async def _main(
    config: OperatorConfig, registry: kopf.OperatorRegistry, state: handlers.OperatorState
) -> None:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()
    ready: asyncio.Event = asyncio.Event()

    def on_signal() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)

    async def beat() -> None:
        while True:
            state.heartbeat.beat()
            if ready.is_set():
                state.ready.set()
            await asyncio.sleep(2.0)

    beating = asyncio.create_task(beat())
    priority = config.priority
    if config.peering and priority is None:
        # kopf pauses a replica that sees another of the same or higher priority: make ties impossible.
        priority = random.randint(1, 2**31 - 1)
    try:
        await kopf.operator(
            registry=registry,
            clusterwide=not config.namespaces,
            namespaces=list(config.namespaces),
            standalone=config.peering is None,
            peering_name=config.peering,
            priority=priority or 0,
            stop_flag=stop,
            ready_flag=ready,
            memo=kopf.Memo(),
        )
    finally:
        beating.cancel()
