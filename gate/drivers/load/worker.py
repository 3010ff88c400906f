"""The Locust process: `python -m gate.drivers.load.worker {local|master|worker} --plan FILE ...`.

This is the only module of gate that imports Locust, and importing it monkey-patches the whole
process for gevent — so it runs only as its own process, started by `gate.drivers.load.driver`
(or as a Kubernetes pod, see `gate.drivers.load.kube`), never imported by gate.

Roles:
- `local`: one Locust local runner; it streams its batches on stdout.
- `master`: Locust's master runner; it spawns no users, relays each worker's batches on stdout
  (they arrive as the custom message `gate_batch`) and ends the run when every worker sent its
  final batch.
- `worker`: a Locust worker runner connected to the master over Locust's own ZeroMQ protocol —
  the same whether the worker is a local process or a pod.

Every request of the scenario goes to both tracks, stable and canary, from the same user, one right
after the other in random order, each track over its own connection — equal rates, same moments —
and carries the synthetic header. Locust runs 2 × `users` users, so each track has `users` requests
in flight on average.
A user's own locustfile runs twice, once per track (its user classes are subclassed with each
track's host and the header; `users` per track, so 2 × users Locust users), and the same request
listener streams its samples.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import gevent
import psutil
from gevent.event import Event

# Importing locust monkey-patches this process for gevent (sockets, ssl, threads, time).
from locust import FastHttpUser, HttpUser, User, between, constant, events, task
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment
from locust.log import setup_logging
from locust.runners import Runner

from gate.drivers.load.plan import TRACKS, LoadPlan
from gate.drivers.load.protocol import BatchBuilder, dump, sched_busy

BATCH_MESSAGE = "gate_batch"
CONNECT_TIMEOUT = 60.0
FINAL_TIMEOUT = 15.0


def emit(record: dict[str, Any]) -> None:
    """One record, one line, flushed at once: gate reads it as the run goes."""
    try:
        sys.stdout.write(dump(record) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # Nobody reads the records any more (gate is gone): stop generating load at once.
        os._exit(3)


# -- the scenario ----------------------------------------------------------------------------------


def paired_user(plan: LoadPlan) -> type[User]:
    """A FastHttpUser that sends each chosen task to both tracks, one right after the other."""
    urls = plan.urls
    synthetic = {plan.header: plan.header_value}
    choices = [
        # The plan's header is applied last: a task cannot relabel synthetic traffic.
        (t.method.upper(), t.path, f"{t.name}", {**t.headers, **synthetic}, t.json, t.body)
        for t in plan.tasks
    ]
    cum_weights = list(itertools.accumulate(t.weight for t in plan.tasks))
    names = {track: {t.name: f"{track} {t.name}" for t in plan.tasks} for track in TRACKS}
    lo, hi = plan.think_time

    class GateUser(FastHttpUser):
        host = urls["stable"]
        network_timeout = plan.network_timeout
        connection_timeout = plan.network_timeout
        default_headers = synthetic
        wait_time = between(lo, hi) if hi > 0 else constant(0)

        def __init__(self, environment: Environment) -> None:
            super().__init__(environment)
            canary = FastHttpSession(
                base_url=urls["canary"],
                request_event=environment.events.request,
                user=self,
                network_timeout=plan.network_timeout,
                connection_timeout=plan.network_timeout,
                max_retries=0,
                insecure=True,
                headers=synthetic,
            )
            self.sessions: dict[str, FastHttpSession] = {"stable": self.client, "canary": canary}
            self.contexts = {track: {"track": track} for track in TRACKS}

        @task
        def pair(self) -> None:
            method, path, name, headers, body_json, body = random.choices(choices, cum_weights=cum_weights)[0]
            # Both tracks, one right after the other, in random order (no order bias, e.g. from a
            # cache the first request warms); a slow canary slows the pair down, so rates stay equal.
            for track in TRACKS if random.random() < 0.5 else TRACKS[::-1]:
                self.sessions[track].request(
                    method,
                    path,
                    name=names[track][name],
                    headers=headers,
                    json=body_json,
                    data=body,
                    context=self.contexts[track],
                )

    return GateUser


def locustfile_users(plan: LoadPlan) -> list[type[User]]:
    """The user classes of a user's own locustfile, each once per track."""
    from locust.util.load_locustfile import load_locustfile

    assert plan.locustfile is not None
    path = Path(plan.locustfile)
    if not path.is_file():
        raise SystemExit(f"locustfile {plan.locustfile!r} does not exist")
    user_classes, _shapes = load_locustfile(str(path))
    if not user_classes:
        raise SystemExit(f"locustfile {plan.locustfile!r} defines no (non-abstract) User class")
    return [_on_track(cls, track, plan) for cls in user_classes.values() for track in TRACKS]


def _on_track(cls: type[User], track: str, plan: LoadPlan) -> type[User]:
    synthetic = {plan.header: plan.header_value}
    attrs: dict[str, Any] = {"host": plan.urls[track], "__module__": cls.__module__}
    if issubclass(cls, FastHttpUser):
        attrs["default_headers"] = {**(cls.default_headers or {}), **synthetic}

    def context(self: User) -> dict[str, Any]:
        return {**cls.context(self), "track": track}

    def __init__(self: User, environment: Environment) -> None:
        cls.__init__(self, environment)
        headers = getattr(getattr(self, "client", None), "headers", None)
        if isinstance(self, HttpUser) and isinstance(headers, MutableMapping):
            headers.update(synthetic)  # python-requests session: default headers live here

    attrs["context"] = context
    attrs["__init__"] = __init__
    return type(f"{cls.__name__}_{track}", (cls,), attrs)


def locust_users(plan: LoadPlan) -> tuple[int, float]:
    """Locust users and spawn rate for `plan.users` users per track.

    Twice as many Locust users as the plan's users, spawned twice as fast: a locustfile runs each
    user once per track; a paired user spends about half of its time on each track."""
    return 2 * plan.users, 2 * plan.spawn_rate


def user_classes(plan: LoadPlan) -> list[type[User]]:
    return locustfile_users(plan) if plan.locustfile else [paired_user(plan)]


# -- samples -----------------------------------------------------------------------------------------


class Recorder:
    """Listens to every request of this process and reports batches every interval."""

    def __init__(
        self,
        node: str,
        plan: LoadPlan,
        send: Callable[[dict[str, Any]], None],
        tracks: tuple[str, ...] = TRACKS,
    ) -> None:
        self.builder = BatchBuilder(node, tracks)
        self.plan = plan
        self.send = send
        self.proc = psutil.Process()
        self.runner: Runner | None = None
        self._reporter: gevent.Greenlet[Any, Any] | None = None
        if tracks:
            events.request.add_listener(self.on_request)  # type: ignore[no-untyped-call]

    def on_request(
        self,
        *,
        response_time: float | None = None,
        response: Any = None,
        context: dict[str, Any] | None = None,
        exception: BaseException | None = None,
        **_kw: Any,
    ) -> None:
        track = context.get("track") if context else None
        if track is None:
            return
        status = getattr(response, "status_code", 0) or 0
        # A response, even an error status, has a latency; a refused or timed-out request has none.
        latency = response_time if status else None
        if exception is None:
            self.builder.add(track, latency, None)
        else:
            kind = f"HTTP {status}" if status >= 400 else type(exception).__name__
            self.builder.add(track, latency, kind)

    def take(self, *, final: bool) -> dict[str, Any]:
        cpu = self.proc.cpu_times()
        users = self.runner.user_count if self.runner is not None else 0
        return self.builder.take(
            final=final,
            t=time.time(),
            cpu=cpu.user + cpu.system,
            busy=sched_busy(),  # gevent's loop runs on this (the main) thread
            clock=time.monotonic(),
            users=users,
        )

    def start_reporting(self) -> None:
        if self._reporter is None:
            self.send(self.take(final=False))  # the baseline of this node's CPU clock
            self._reporter = gevent.spawn(self._report_loop)

    def _report_loop(self) -> None:
        while True:
            gevent.sleep(self.plan.report_interval)
            self.send(self.take(final=False))

    def finish(self) -> None:
        """Stop reporting and send the final batch (call after the users stopped)."""
        if self._reporter is not None:
            self._reporter.kill(block=True)
            self._reporter = None
        self.send(self.take(final=True))


# -- roles -------------------------------------------------------------------------------------------


def _stop_event() -> Event:
    """Set on SIGTERM/SIGINT, or when gate (our parent) is gone: load must never outlive its gate."""
    stop = Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(sig, stop.set)
    gevent.spawn(_watch_parent, stop.set)
    return stop


def _watch_parent(on_orphaned: Callable[[], None]) -> None:
    parent = os.getppid()
    # In a pod the process is PID 1 (parent 0) and the Job's deadline bounds it instead.
    while parent > 1:
        gevent.sleep(1.0)
        if os.getppid() != parent:
            on_orphaned()
            return


def run_local(plan: LoadPlan) -> int:
    # No host on the Environment: Locust would overwrite every user class's host with it,
    # and each class already carries its own track's URL.
    stop = _stop_event()
    env = Environment(user_classes=user_classes(plan), events=events)
    recorder = Recorder("local", plan, emit)
    runner = env.create_local_runner()
    recorder.runner = runner
    emit({"type": "started", "t": time.time(), "nodes": 1})
    recorder.start_reporting()
    runner.start(*locust_users(plan))
    stop.wait(plan.duration)
    runner.stop()
    recorder.finish()
    emit({"type": "done", "t": time.time()})
    runner.quit()
    return 0


def run_master(plan: LoadPlan, bind: str, port: int, expect: int) -> int:
    stop = _stop_event()
    env = Environment(user_classes=user_classes(plan), events=events)
    runner = env.create_master_runner(master_bind_host=bind, master_bind_port=port)
    finals: set[str] = set()

    def on_batch(environment: Environment, msg: Any, **_kw: Any) -> None:
        record = msg.data
        if isinstance(record, dict) and record.get("type") == "batch":
            emit(record)
            if record.get("final"):
                finals.add(str(record.get("node")))

    runner.register_message(BATCH_MESSAGE, on_batch)
    # The master spawns no users, but it is a load-generator process too: report its CPU.
    recorder = Recorder("master", plan, emit, tracks=())
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while runner.worker_count < expect:
        if time.monotonic() > deadline or stop.is_set():
            emit(
                {
                    "type": "error",
                    "message": f"only {runner.worker_count} of {expect} Locust workers connected "
                    f"within {CONNECT_TIMEOUT:.0f}s",
                }
            )
            runner.quit()
            return 2
        gevent.sleep(0.05)
    emit({"type": "started", "t": time.time(), "nodes": expect})
    recorder.start_reporting()
    runner.start(*locust_users(plan))
    stop.wait(plan.duration)
    runner.stop()  # tells every worker to stop; each sends its final batch before it acknowledges
    deadline = time.monotonic() + FINAL_TIMEOUT
    while len(finals) < expect and time.monotonic() < deadline:
        gevent.sleep(0.05)
    recorder.finish()
    if len(finals) < expect:
        emit({"type": "error", "message": f"only {len(finals)} of {expect} workers sent their final batch"})
    emit({"type": "done", "t": time.time()})
    runner.quit()
    return 0


def run_worker(plan: LoadPlan, master_host: str, port: int) -> int:
    env = Environment(user_classes=user_classes(plan), events=events)
    runner = env.create_worker_runner(master_host=master_host, master_port=port)
    node = f"{socket.gethostname()}-{os.getpid()}"

    def send(record: dict[str, Any]) -> None:
        runner.send_message(BATCH_MESSAGE, record)

    recorder = Recorder(node, plan, send)
    recorder.runner = runner

    def on_start(**_kw: Any) -> None:
        recorder.start_reporting()

    def on_stop(**_kw: Any) -> None:
        # Runs inside the worker's "stop" handling, before it tells the master it stopped.
        recorder.finish()

    events.test_start.add_listener(on_start)  # type: ignore[no-untyped-call]
    events.test_stop.add_listener(on_stop)  # type: ignore[no-untyped-call]
    gevent.spawn(_watch_parent, runner.quit)
    runner.greenlet.join()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gate.drivers.load.worker", description=__doc__)
    parser.add_argument("role", choices=["local", "master", "worker"])
    parser.add_argument("--plan", required=True, type=Path, help="the LoadPlan as JSON")
    parser.add_argument("--bind", default="127.0.0.1", help="master: address to listen on")
    parser.add_argument("--master-host", default="127.0.0.1", help="worker: the master's address")
    parser.add_argument("--port", type=int, default=5557, help="the master's port")
    parser.add_argument("--expect-workers", type=int, default=1, help="master: workers to wait for")
    parser.add_argument("--loglevel", default=os.environ.get("GATE_LOAD_LOGLEVEL", "WARNING"))
    args = parser.parse_args(argv)
    setup_logging(args.loglevel, None)  # type: ignore[no-untyped-call]
    plan = LoadPlan.read(args.plan)
    if args.role == "local":
        return run_local(plan)
    if args.role == "master":
        return run_master(plan, args.bind, args.port, args.expect_workers)
    return run_worker(plan, args.master_host, args.port)


if __name__ == "__main__":
    sys.exit(main())
