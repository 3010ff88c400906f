"""The chaos driver: runs a contract's chaos experiment in a worker process and makes sure it is undone.

    driver = ChaosDriver(FaultLedger(state / "faults.jsonl"), workdir=state / "chaos")
    driver.recover()                                       # at start: faults a killed gate left behind
    with driver.start("risk-api-slow", spec, context={"fault_proxy": admin_url}, duration=60) as run:
        ...                                                # measure while the fault is in place
        journal = run.wait()                               # or run.abort(): rollbacks run now

Chaos Toolkit runs in ``python -m gate.drivers.chaos.worker`` (it installs signal handlers and must own
its main thread). The driver writes the experiment to the workdir, starts the worker in gate's process
group (a Ctrl-C reaches both), reads its progress events, and returns the typed ``Journal``.

Faults are always undone, in layers: the experiment's rollbacks (strategy ``always``) when the step
ends, fails or is aborted; SIGTERM to the worker on abort or timeout (repeated each second until the
worker reports that its rollbacks have started, in case one lands before the run has begun); SIGKILL
when the rollbacks hang past ``rollback_timeout``; and, whatever happened, ledger recovery for the run
after the worker has exited. A worker whose gate died gets SIGTERM from the kernel and rolls back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.drivers.chaos.experiment import (
    BuiltinFault,
    ExperimentError,
    ExperimentFile,
    ExperimentSpec,
    FaultContext,
    InlineExperiment,
    builtin_experiment,
    check_experiment_file,
)
from gate.drivers.chaos.journal import ChaosWindow, Journal, parse_journal
from gate.drivers.chaos.ledger import EXPERIMENT_ENV, LEDGER_ENV, RUN_ENV, FaultLedger

WORKER_MODULE = "gate.drivers.chaos.worker"
STARTUP_GRACE = 30.0  # importing chaoslib and its extensions on a busy machine
SIGNAL_REPEAT = 1.0
MAX_EVENTS = 10_000


class ChaosError(RuntimeError):
    """An experiment gate cannot run (invalid, missing) or a worker that cannot be started."""


@dataclass(frozen=True)
class WorkerEvent:
    """A progress event from the worker (``starting``, ``method-started``, ``activity-completed``,
    ``rollbacks-started``, ``rollbacks-completed``, ``finished``)."""

    event: str
    at: float
    fields: dict[str, Any]


def _safe_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:64].strip("-.")
    return cleaned or "chaos"


class ChaosRun:
    """A running experiment: its worker, its progress, and the way to stop it with rollbacks."""

    def __init__(
        self,
        driver: ChaosDriver,
        *,
        name: str,
        run_id: str,
        proc: subprocess.Popen[str],
        journal_path: Path,
        log_path: Path,
        default_timeout: float | None,
    ) -> None:
        self.driver = driver
        self.name = name
        self.run_id = run_id
        self.journal_path = journal_path
        self.log_path = log_path
        self.default_timeout = default_timeout
        self._proc = proc
        self._events: list[WorkerEvent] = []
        self._lock = threading.Lock()
        self._rollbacks_started = threading.Event()
        self._journal: Journal | None = None
        self._timed_out = False
        self._aborted = False
        self._reader = threading.Thread(target=self._read_events, name=f"chaos-{name}-events", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _read_events(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                raw = json.loads(line)
            except ValueError:
                continue
            if not isinstance(raw, dict) or not isinstance(raw.get("event"), str):
                continue
            at = raw.pop("at", None)
            event = WorkerEvent(
                event=raw.pop("event"),
                at=float(at) if isinstance(at, int | float) else time.time(),
                fields=raw,
            )
            if event.event == "rollbacks-started":
                self._rollbacks_started.set()
            with self._lock:
                if len(self._events) < MAX_EVENTS:
                    self._events.append(event)

    @property
    def events(self) -> list[WorkerEvent]:
        with self._lock:
            return list(self._events)

    def running(self) -> bool:
        return self._proc.poll() is None

    def window(self) -> ChaosWindow:
        """The chaos window so far (from the journal once finished, from live events before)."""
        if self._journal is not None:
            return self._journal.window
        events = self.events
        # As in the journal: the fault is in place once the first action has returned.
        done = [
            e
            for e in events
            if e.event == "activity-completed"
            and e.fields.get("type") == "action"
            and e.fields.get("status") == "succeeded"
        ]
        fault_start = done[0].at if done else None
        rb_start = next((e.at for e in events if e.event == "rollbacks-started"), None)
        rb_end = next((e.at for e in events if e.event == "rollbacks-completed"), None)
        return ChaosWindow(
            fault_start=fault_start, fault_end=rb_end, rollback_start=rb_start, rollback_end=rb_end
        )

    def wait(self, timeout: float | None = None) -> Journal:
        """Wait for the experiment to end; past ``timeout`` (default: the step's duration plus a grace
        for start-up) it is aborted, its rollbacks run, and the journal says ``timed_out``."""
        if self._journal is not None:
            return self._journal
        limit = timeout if timeout is not None else self.default_timeout
        try:
            self._proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            self._timed_out = True
            return self.abort()
        return self._finish()

    def abort(self) -> Journal:
        """Stop now: SIGTERM (repeated until the rollbacks have started), SIGKILL if they hang, then
        ledger recovery for whatever the worker could not undo. Never raises for a worker that is gone."""
        if self._journal is not None:
            return self._journal
        self._aborted = True
        deadline = time.monotonic() + self.driver.rollback_timeout
        while self._proc.poll() is None and time.monotonic() < deadline:
            if not self._rollbacks_started.is_set():
                with contextlib.suppress(ProcessLookupError):
                    self._proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=SIGNAL_REPEAT)
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            self._proc.wait(timeout=10)
        return self._finish()

    def _finish(self) -> Journal:
        self._reader.join(timeout=5)
        raw: dict[str, Any] | None = None
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(self.journal_path.read_text())
            raw = loaded if isinstance(loaded, dict) else None
        recovered, still_open = self.driver._recover_run(self.run_id)
        if raw is not None:
            journal = parse_journal(raw, name=self.name)
        else:
            code = self._proc.returncode
            status = "killed" if code is not None and code < 0 else "error"
            journal = Journal(
                name=self.name,
                status=status,
                deviated=False,
                start=None,
                end=None,
                duration=None,
                method=[],
                rollbacks=[],
                before=None,
                after=None,
                during=[],
                window=self.window(),
                error=f"the chaos worker exited with code {code} and left no journal; see {self.log_path}",
            )
        self._journal = dataclasses.replace(
            journal,
            timed_out=self._timed_out,
            aborted=self._aborted,
            recovered=journal.recovered + recovered,
            open_faults=still_open,
        )
        return self._journal

    def __enter__(self) -> ChaosRun:
        return self

    def __exit__(self, *exc: object) -> None:
        # Leaving the block for any reason (the step ended, an exception, Ctrl-C) stops the fault.
        if self._journal is None:
            if self.running():
                self.abort()
            else:
                self._finish()


class ChaosDriver:
    """Starts chaos experiments in worker processes and undoes faults left in the ledger."""

    def __init__(
        self,
        ledger: FaultLedger,
        workdir: Path,
        *,
        python: str | None = None,
        rollback_timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.ledger = ledger
        self.workdir = Path(workdir)
        self.python = python or sys.executable
        self.rollback_timeout = rollback_timeout
        self.extra_env = dict(env or {})

    def _env(self, run_id: str = "", name: str = "") -> dict[str, str]:
        env = {**os.environ, **self.extra_env, LEDGER_ENV: str(self.ledger.path.resolve())}
        env[RUN_ENV] = run_id
        env[EXPERIMENT_ENV] = name
        # The worker must import this very gate package, wherever it is installed or checked out.
        root = str(Path(__file__).resolve().parents[3])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def experiment(
        self,
        name: str,
        spec: ExperimentSpec,
        context: Mapping[str, Any] | FaultContext | None = None,
        duration: float | None = None,
    ) -> dict[str, Any] | Path:
        """The Chaos Toolkit experiment gate will run: a generated dict, or the user's file."""
        if isinstance(spec, BuiltinFault):
            if duration is None:
                raise ExperimentError(f"chaos {name!r}: a builtin fault needs the step's duration")
            ctx = context if isinstance(context, FaultContext) else FaultContext.from_mapping(context)
            return builtin_experiment(name, spec.fault, ctx, duration)
        if isinstance(spec, ExperimentFile):
            check_experiment_file(spec.path)
            return spec.path
        if isinstance(spec, InlineExperiment):
            return dict(spec.experiment)
        raise ExperimentError(f"chaos {name!r}: unknown experiment kind {type(spec).__name__}")

    def _write_experiment(self, name: str, run_id: str, experiment: dict[str, Any] | Path) -> Path:
        if isinstance(experiment, Path):
            return experiment.resolve()
        path = self.workdir / f"{_safe_name(name)}-{run_id}.experiment.json"
        path.write_text(json.dumps(experiment, indent=1, default=str))
        return path

    def validate(
        self,
        name: str,
        spec: ExperimentSpec,
        context: Mapping[str, Any] | FaultContext | None = None,
        duration: float | None = None,
    ) -> None:
        """Check the experiment with chaoslib's ``ensure_experiment_is_valid`` (in a worker process)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        run_id = uuid.uuid4().hex[:12]
        path = self._write_experiment(name, run_id, self.experiment(name, spec, context, duration))
        try:
            result = subprocess.run(
                [self.python, "-m", WORKER_MODULE, "validate", "--experiment", str(path)],
                capture_output=True,
                text=True,
                timeout=120,
                env=self._env(run_id, name),
                check=False,
            )
        finally:
            if not isinstance(spec, ExperimentFile):
                path.unlink(missing_ok=True)
        try:
            answer = json.loads(result.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise ChaosError(
                f"chaos {name!r}: the validator failed: {result.stderr.strip()[-1000:]}"
            ) from None
        if not answer.get("valid"):
            raise ExperimentError(f"chaos {name!r}: {answer.get('error')}")

    def start(
        self,
        name: str,
        spec: ExperimentSpec,
        context: Mapping[str, Any] | FaultContext | None = None,
        duration: float | None = None,
    ) -> ChaosRun:
        """Start the experiment in a worker process. ``duration`` is how long a builtin fault is held;
        for experiment files and inline experiments it bounds the run (then it is aborted)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        run_id = f"{_safe_name(name)}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        experiment_path = self._write_experiment(name, run_id, self.experiment(name, spec, context, duration))
        journal_path = self.workdir / f"{run_id}.journal.json"
        log_path = self.workdir / f"{run_id}.log"
        timeout = duration + STARTUP_GRACE + self.rollback_timeout if duration is not None else None
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [
                    self.python,
                    "-m",
                    WORKER_MODULE,
                    "run",
                    "--experiment",
                    str(experiment_path),
                    "--journal",
                    str(journal_path),
                    "--parent-pid",
                    str(os.getpid()),
                ],
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                text=True,
                env=self._env(run_id, name),
            )
        return ChaosRun(
            self,
            name=name,
            run_id=run_id,
            proc=proc,
            journal_path=journal_path,
            log_path=log_path,
            default_timeout=timeout,
        )

    def run(
        self,
        name: str,
        spec: ExperimentSpec,
        context: Mapping[str, Any] | FaultContext | None = None,
        duration: float | None = None,
    ) -> Journal:
        """Start and wait: the whole experiment, rollbacks included."""
        with self.start(name, spec, context, duration) as handle:
            return handle.wait()

    def recover(self) -> list[str]:
        """Undo every fault the ledger still lists as open (call at start). Returns what was done,
        one line per fault; lines starting "NOT undone" need a human."""
        result = self.ledger.recover(in_process_only=True)
        lines = result.lines()
        if result.skipped:
            lines += self._recover_in_worker(None)
        return lines

    def _recover_run(self, run_id: str) -> tuple[list[str], list[str]]:
        """After a worker exits: undo what this run left open; return (done, still open)."""
        result = self.ledger.recover(in_process_only=True, run=run_id)
        lines = result.lines()
        if result.skipped:
            lines += self._recover_in_worker(run_id)
        still_open = [e.describe() for e in self.ledger.open_entries() if e.run == run_id]
        return lines, still_open

    def _recover_in_worker(self, run_id: str | None) -> list[str]:
        # Kinds whose undo needs the Kubernetes client (Istio) are undone in a worker process.
        cmd = [self.python, "-m", WORKER_MODULE, "recover"]
        if run_id is not None:
            cmd += ["--run", run_id]
        try:
            result = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=self.rollback_timeout + 60,
                env=self._env(),
                check=False,
            )
            answer = json.loads(result.stdout.strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, ValueError, IndexError) as exc:
            return [f"NOT undone: the recovery worker failed ({type(exc).__name__}); run `gate` again"]
        recovered = answer.get("recovered", [])
        return [str(x)[:500] for x in recovered] if isinstance(recovered, list) else []
