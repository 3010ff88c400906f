"""Starting and stopping the child processes gate owns.

`terminate` stops one: SIGTERM, then SIGKILL when it does not go in time. `child_options` gives the
`Popen` arguments of a child that must not outlive gate: on Linux the kernel sends it SIGTERM when
gate dies, even by SIGKILL (`PR_SET_PDEATHSIG`, set between fork and exec, so the pid gate records is
the server's own). Prometheus servers gate starts always die with it; nginx only inside `tied_tree()`
(the demo's whole topology), because the router of `gate run` must keep serving traffic while gate is
restarted — the resume adopts it through its pid file.

The kernel ties the child to the *thread* that forked it, so only a child started from the main
thread is tied; one started from another thread (which may end first) is not (`can_tie()` says
which) and relies on its pid file and the caller's own stop, as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

_PR_SET_PDEATHSIG = 1
_libc: Any = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError):
        _libc = ctypes.CDLL(None, use_errno=True)  # loaded now: nothing is loaded after fork
_tied = threading.Event()


def _die_with(parent: int) -> Callable[[], None]:
    def preexec() -> None:  # runs in the child between fork and exec: no locks, no imports
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # gate died before the prctl took effect
            os._exit(1)

    return preexec


def can_tie() -> bool:
    """Whether a child started now would be stopped by the kernel when this process dies."""
    return _libc is not None and threading.current_thread() is threading.main_thread()


def child_options(*, tie: bool = True) -> dict[str, Any]:
    """`Popen` keyword arguments: its own session (a Ctrl-C at the terminal reaches gate only), and,
    when `tie` and `can_tie()`, SIGTERM to the child when gate dies."""
    options: dict[str, Any] = {"start_new_session": True}
    if tie and can_tie():
        options["preexec_fn"] = _die_with(os.getpid())
    return options


@contextlib.contextmanager
def tied_tree() -> Iterator[None]:
    """Within: every child gate starts (nginx included) dies with this process (see module doc)."""
    _tied.set()
    try:
        yield
    finally:
        _tied.clear()


def tree_tied() -> bool:
    """Whether `tied_tree()` is in effect."""
    return _tied.is_set()


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM `proc`, SIGKILL it after `timeout` seconds; nothing when it is gone already."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
