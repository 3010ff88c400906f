"""Child processes of the demo (the demo services and the production users), each stopped by its own pid.

Every child is started in its own session, with ``--parent`` set to this process and (on Linux, from
the main thread) a parent-death signal, so a demo killed without cleaning up still leaves nothing
behind: the kernel sends the children SIGTERM, and they would notice and exit by themselves anyway.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from gate.drivers.process import child_options, terminate

_LOG_TAIL = 1500


class DemoProcessError(RuntimeError):
    """A demo process did not start; the message carries the tail of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class ChildProcess:
    """One ``python -m MODULE ARGS`` child with its log file, stopped by pid (SIGTERM, then SIGKILL)."""

    name: str
    module: str
    args: list[str]
    log_path: Path
    health_url: str | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def start(self, timeout: float = 20.0) -> ChildProcess:
        """Start the child; with a health URL, return only once it answers 200 with its own pid."""
        cmd = [sys.executable, "-m", self.module, *self.args, "--parent", str(os.getpid())]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, **child_options()
            )
        if self.health_url is None:
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise DemoProcessError(f"{self.name} exited at start (code {code}): {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.health_url, timeout=1.0) as resp:  # noqa: S310 (loopback URL we built)
                    answer = json.loads(resp.read(4096) or b"{}")
                # Another program may have taken the port first: only our own pid counts as up.
                if int(resp.status) == 200 and answer.get("pid") == self._proc.pid:
                    return self
            except (urllib.error.URLError, OSError, ValueError, AttributeError):
                pass
            time.sleep(0.05)
        self.stop()
        raise DemoProcessError(f"{self.name} did not answer {self.health_url} within {timeout:.0f}s")

    @property
    def pid(self) -> int | None:
        """The child's pid while it runs."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        return None

    def log_tail(self) -> str:
        """The last lines the child wrote (for error messages)."""
        try:
            return self.log_path.read_text(errors="replace").strip()[-_LOG_TAIL:]
        except OSError:
            return "(no log)"

    def wait(self, timeout: float) -> int | None:
        """Wait for the child to exit by itself; its exit code, or None when it still runs."""
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the child, SIGKILL it after ``timeout``; idempotent."""
        proc, self._proc = self._proc, None
        terminate(proc, timeout)
