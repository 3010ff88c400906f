"""The chaos worker: runs one Chaos Toolkit experiment in its own process (``python -m ...worker``).

Chaos Toolkit's runner installs SIGTERM/SIGUSR handlers, which only a main thread may do, and its
extensions import the Kubernetes client; neither belongs in gate's own process. The chaos driver starts
this module and talks to it through files and signals only:

    run      --experiment F --journal J   run it; journal (JSON) to J; events (JSON lines) on stdout
    validate --experiment F               chaoslib's ensure_experiment_is_valid; {"valid", "error"} on stdout
    recover  [--run R]                    undo open faults in the ledger (all kinds, Kubernetes too)

How faults are always undone here:

- rollbacks run with the ``always`` strategy, so an interrupted or failed run rolls back too
  (Chaos Toolkit's default skips them exactly when they matter);
- SIGTERM or SIGINT interrupts the method at once (in an activity or in its pause) and the rollbacks
  follow; once they have started, further SIGTERM/SIGINT are ignored so a second signal cannot cut
  them short;
- the worker watches its parent and sends itself SIGTERM when gate is gone, so a gate killed with
  SIGKILL still gets its faults rolled back by the orphaned worker;
- after the run, anything this run recorded in the ledger and did not clear is undone here.

The fault ledger path and the run id come from ``GATE_FAULT_LEDGER`` and ``GATE_CHAOS_RUN``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

from gate.drivers.chaos.ledger import LEDGER_ENV, RUN_ENV, FaultLedger

log = logging.getLogger("gate.chaos.worker")

PARENT_POLL = 0.25
EXIT_INVALID = 3
EXIT_ERROR = 4


class _Events:
    """Progress as JSON lines on the worker's original stdout (the driver reads them)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def emit(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "at": time.time(), **fields}, default=str)
        with contextlib.suppress(OSError, ValueError):
            self.stream.write(line + "\n")
            self.stream.flush()


def _die_with_parent(parent: int | None) -> None:
    """SIGTERM this worker (rollbacks then run) as soon as the gate that started it is gone.

    Polled rather than PR_SET_PDEATHSIG, which fires when the *thread* that started the worker ends —
    and gate may start experiments from short-lived threads."""
    if parent is None:
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL)
        log.warning("gate (pid %d) is gone: rolling back", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _hold_signals() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)


class _Terminated(KeyboardInterrupt):
    """SIGTERM or SIGINT, raised as a KeyboardInterrupt so that nothing in Chaos Toolkit swallows it."""


def _handler_class(events: _Events) -> type:
    from chaoslib.run import RunEventHandler

    class Handler(RunEventHandler):  # type: ignore[misc]
        """Progress events, and SIGTERM handling that always reaches the rollbacks.

        chaoslib turns SIGTERM into InterruptExecution, an Exception: raised inside an activity's
        provider it is caught and recorded as a failed activity, and the activity's pause (the whole
        step, for a builtin fault) then runs to its end. So SIGTERM is re-raised as a KeyboardInterrupt
        (which chaoslib's providers and event dispatch do not catch, and its runner answers with
        "interrupted" and the rollbacks), and once more from ``activity_completed`` (which runs before
        the pause) in case the first one landed where it could be lost.
        """

        terminating = False

        def running(self, *args: Any) -> None:
            def on_signal(signum: int, frame: Any) -> None:
                self.terminating = True
                raise _Terminated(signal.Signals(signum).name)

            # chaoslib has just installed its own SIGTERM handler; this one replaces it for the run.
            # SIGINT too: Python's own KeyboardInterrupt raised inside a provider would otherwise
            # still sit out the activity's pause (it runs in a `finally`) before the rollbacks.
            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)

        def start_method(self, experiment: Any) -> None:
            events.emit("method-started")

        def activity_completed(self, activity: Any, run: Any) -> None:
            events.emit(
                "activity-completed",
                name=str(activity.get("name", ""))[:200],
                type=str(activity.get("type", "")),
                status=str(run.get("status", "")),
                start=run.get("start"),
                end=run.get("end"),
            )
            if self.terminating:
                raise _Terminated("SIGTERM during an activity")

        def method_completed(self, experiment: Any, state: Any = None) -> None:
            events.emit("method-completed")

        def start_rollbacks(self, experiment: Any) -> None:
            # From here on a second signal must not cut the rollbacks short (chaoslib would stop them).
            _hold_signals()
            events.emit("rollbacks-started")

        def rollbacks_completed(self, experiment: Any, journal: Any) -> None:
            events.emit("rollbacks-completed")

    return Handler


def _recover(run: str | None) -> list[str]:
    """Undo what the ledger still lists as open (this run's entries, or all of them)."""
    if not os.environ.get(LEDGER_ENV):
        return []
    ledger = FaultLedger.from_env()
    result = ledger.recover(run=run)
    return result.lines()


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, default=str, indent=1))
    tmp.replace(path)


def _load(path: Path) -> dict[str, Any]:
    from chaoslib.loader import load_experiment

    experiment = load_experiment(str(path))
    if not isinstance(experiment, dict):
        raise ValueError(f"{path}: an experiment must be a mapping")
    return experiment


def cmd_validate(args: argparse.Namespace) -> int:
    from chaoslib.experiment import ensure_experiment_is_valid

    try:
        ensure_experiment_is_valid(_load(Path(args.experiment)))
    except Exception as exc:
        print(json.dumps({"valid": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}))
        return EXIT_INVALID
    print(json.dumps({"valid": True, "error": None}))
    return 0


def cmd_run(args: argparse.Namespace, events: _Events) -> int:
    _die_with_parent(args.parent_pid)
    journal_path = Path(args.journal)
    run_id = os.environ.get(RUN_ENV) or None
    events.emit("starting", pid=os.getpid())

    from chaoslib.experiment import ensure_experiment_is_valid, run_experiment

    try:
        experiment = _load(Path(args.experiment))
        ensure_experiment_is_valid(experiment)
    except Exception as exc:
        invalid = f"{type(exc).__name__}: {exc}"[:2000]
        _write_json(journal_path, {"status": "invalid", "error": invalid, "deviated": False})
        events.emit("finished", status="invalid", error=invalid)
        return EXIT_INVALID

    # Rollbacks always: Chaos Toolkit's default strategy skips them when the run failed or was
    # interrupted, which is exactly when a fault must still be undone. User settings are not read.
    settings = {"runtime": {"rollbacks": {"strategy": "always"}}}
    journal: dict[str, Any]
    error: str | None = None
    try:
        journal = run_experiment(experiment, settings=settings, event_handlers=[_handler_class(events)()])
    except BaseException as exc:  # a signal between chaoslib's guards: the ledger still knows the faults
        _hold_signals()
        error = f"{type(exc).__name__}: {exc}"[:2000]
        log.error("experiment run broke off: %s\n%s", error, traceback.format_exc())
        journal = {"status": "interrupted", "deviated": False, "experiment": experiment}
    _hold_signals()
    recovered = _recover(run_id)
    journal["gate"] = {"recovered": recovered, "error": error, "pid": os.getpid()}
    _write_json(journal_path, journal)
    events.emit(
        "finished", status=journal.get("status"), deviated=journal.get("deviated"), recovered=recovered
    )
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    lines = _recover(args.run)
    ledger = FaultLedger.from_env() if os.environ.get(LEDGER_ENV) else None
    still_open = [e.describe() for e in ledger.open_entries()] if ledger else []
    print(json.dumps({"recovered": lines, "open": still_open}))
    return 0 if not still_open else EXIT_ERROR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gate.drivers.chaos.worker")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--experiment", required=True)
    run.add_argument("--journal", required=True)
    run.add_argument("--parent-pid", type=int, default=None)
    validate = sub.add_parser("validate")
    validate.add_argument("--experiment", required=True)
    recover = sub.add_parser("recover")
    recover.add_argument("--run", default=None)
    args = parser.parse_args(argv)

    # Events go to the original stdout; anything else that prints (chaoslib, extensions) goes to stderr.
    events = _Events(os.fdopen(os.dup(1), "w", buffering=1))
    os.dup2(2, 1)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "run":
        return cmd_run(args, events)
    if args.command == "validate":
        events_out = sys.stdout
        sys.stdout = events.stream
        try:
            return cmd_validate(args)
        finally:
            sys.stdout = events_out
    sys.stdout = events.stream
    return cmd_recover(args)


if __name__ == "__main__":
    sys.exit(main())
