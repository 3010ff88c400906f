"""Run a load plan with Locust in its own processes and read what they measure as it comes.

`LoadDriver` starts `python -m gate.drivers.load.worker` — one local runner, or a master and N
workers (Locust's master/worker mode over loopback) — reads their JSON-lines records on a thread,
and offers live `LoadProgress` events and the final `LoadResult`. gate's own process never imports
Locust or gevent. Every process it starts is stopped by its own pid: gracefully (SIGTERM: users
stop, the final batch is sent) and, past a deadline, with SIGKILL.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO

from gate.drivers.load.plan import LoadPlan
from gate.drivers.load.protocol import parse_line
from gate.drivers.load.result import Aggregator, LoadProgress, LoadResult
from gate.drivers.process import child_options

logger = logging.getLogger(__name__)

WORKER_MODULE = "gate.drivers.load.worker"
MAX_PENDING_EVENTS = 10_000
STARTUP_GRACE = 60.0
"""Seconds allowed beyond the plan's duration for imports, workers connecting and the final batch."""


class LoadError(RuntimeError):
    """The load run could not start or its processes failed; the message carries their last words."""


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    """Lines until EOF, or until the stream is closed under us (by `close`)."""
    with contextlib.suppress(ValueError, OSError):
        yield from stream


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoadDriver:
    """One load run: `with LoadDriver(plan) as run: for p in run.progress(): ...; run.result()`."""

    def __init__(
        self,
        plan: LoadPlan,
        *,
        workdir: Path | None = None,
        python: str = sys.executable,
        on_progress: Callable[[LoadProgress], None] | None = None,
    ) -> None:
        self.plan = plan
        self.python = python
        self.on_progress = on_progress
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="gate-load-"))
        self._agg = Aggregator(plan)
        self._lock = threading.Lock()
        self._events: queue.Queue[LoadProgress | None] = queue.Queue(maxsize=MAX_PENDING_EVENTS)
        self._main: subprocess.Popen[bytes] | None = None
        self._workers: list[subprocess.Popen[bytes]] = []
        self._reader: threading.Thread | None = None
        self._logs: list[Path] = []
        self._started = 0.0
        self._result: LoadResult | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> LoadDriver:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        """Every Locust process of this run (the local runner or master first)."""
        procs = ([self._main] if self._main else []) + self._workers
        return [p.pid for p in procs]

    def start(self) -> LoadDriver:
        if self._main is not None:
            raise LoadError("this load run has started already")
        self.workdir.mkdir(parents=True, exist_ok=True)
        plan_file = self.plan.write(self.workdir / "plan.json")
        n = self.plan.worker_count
        self._started = time.monotonic()
        base = [self.python, "-m", WORKER_MODULE]
        if n == 1:
            self._main = self._spawn([*base, "local", "--plan", str(plan_file)], "local", stdout=True)
        else:
            port = _free_port()
            self._main = self._spawn(
                [*base, "master", "--plan", str(plan_file), "--port", str(port), "--expect-workers", str(n)],
                "master",
                stdout=True,
            )
            for i in range(n):
                self._workers.append(
                    self._spawn(
                        [*base, "worker", "--plan", str(plan_file), "--port", str(port)],
                        f"worker-{i}",
                        stdout=False,
                    )
                )
        self._reader = threading.Thread(target=self._read, name="gate-load-reader", daemon=True)
        self._reader.start()
        return self

    def _spawn(self, cmd: list[str], name: str, *, stdout: bool) -> subprocess.Popen[bytes]:
        log = self.workdir / f"{name}.log"
        self._logs.append(log)
        with log.open("ab") as err:
            return subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
                stderr=err,
                stdin=subprocess.DEVNULL,
                # Its own session: a Ctrl-C at the terminal reaches gate, which stops the run cleanly;
                # and it dies with gate (PR_SET_PDEATHSIG): load without its gate is pointless.
                **child_options(),
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def _read(self) -> None:
        assert self._main is not None and self._main.stdout is not None
        try:
            for line in _lines(self._main.stdout):
                record = parse_line(line)
                if record is None:
                    continue
                with self._lock:
                    self._agg.add(record)
                    progress = self._agg.progress() if record.get("type") == "batch" else None
                if progress is not None:
                    self._publish(progress)
        finally:
            self._end_events()

    def _end_events(self) -> None:
        while True:
            try:
                self._events.put_nowait(None)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._events.get_nowait()

    def _publish(self, progress: LoadProgress) -> None:
        # Bounded: a caller that only wants the result must not make a long run hoard events.
        while True:
            try:
                self._events.put_nowait(progress)
                break
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._events.get_nowait()
        if self.on_progress is not None:
            try:
                self.on_progress(progress)
            except Exception:  # a faulty observer must not stop the reading of the records
                logger.exception("progress callback failed")

    # -- views -------------------------------------------------------------------------------------
    def progress(self) -> Iterator[LoadProgress]:
        """Live progress events until the run ends (one per batch from any Locust process)."""
        while True:
            event = self._events.get()
            if event is None:
                self._end_events()  # later callers end at once too
                return
            yield event

    def snapshot(self) -> LoadProgress:
        """Progress right now, without waiting."""
        with self._lock:
            return self._agg.progress()

    def partial(self) -> LoadResult:
        """The samples so far of a run still going, for looks taken while the load runs."""
        with self._lock:
            if self._result is not None:
                return self._result
            return self._agg.result(running=self.running())

    def running(self) -> bool:
        return self._main is not None and self._main.poll() is None

    def result(self, timeout: float | None = None) -> LoadResult:
        """Wait for the run to end (at most `timeout`, default its duration plus a grace), then its result."""
        if self._main is None or self._reader is None:
            raise LoadError("the load run was never started")
        if self._result is not None:
            return self._result
        budget = timeout if timeout is not None else self.plan.duration + STARTUP_GRACE
        deadline = self._started + budget if timeout is None else time.monotonic() + budget
        self._reader.join(max(0.0, deadline - time.monotonic()))
        if self._reader.is_alive():
            self.stop()
            self._reader.join(15.0)
        self._reap(deadline=time.monotonic() + 10.0)
        with self._lock:
            if self._main.returncode not in (0, None) and not self._agg.done:
                self._agg.problems.append(
                    f"Locust process exited with code {self._main.returncode}: {self._tail()}"
                )
            if self._agg.started_at is None and not self._agg.problems:
                self._agg.problems.append(f"Locust never started: {self._tail()}")
            self._result = self._agg.result()
            return self._result

    def _tail(self, limit: int = 1500) -> str:
        words = []
        for log in self._logs:
            with contextlib.suppress(OSError):
                text = log.read_text(errors="replace").strip()
                if text:
                    words.append(f"[{log.stem}] {text[-limit:]}")
        return " | ".join(words)[-3 * limit :] or "(no output)"

    # -- stopping ----------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the run to end now: users stop, the final batches are sent, the result stays valid."""
        if self._main is not None and self._main.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._main.send_signal(signal.SIGTERM)

    def _reap(self, deadline: float) -> None:
        for proc in ([self._main] if self._main else []) + self._workers:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=5)

    def close(self) -> None:
        """Stop every process of this run (gracefully, then by force) and remove its files."""
        self.stop()
        if self._main is not None:
            self._reap(deadline=time.monotonic() + 15.0)
            for proc in self._workers:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    proc.wait(timeout=5)
            if self._main.stdout is not None:
                self._main.stdout.close()
        if self._reader is not None:
            self._reader.join(5.0)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
