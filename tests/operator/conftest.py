"""Fixtures for the operator's tests: the emulated API server, a client, the real `gate operator` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gate.drivers import kube
from gate.operator.worker import GATES
from tests.operator.emulator import EmulatorThread
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
GATE = str(Path(sys.executable).with_name("gate"))


@pytest.fixture
def emulator() -> Iterator[EmulatorThread]:
    em = EmulatorThread().start()
    try:
        yield em
    finally:
        em.stop()


@pytest.fixture
def client(emulator: EmulatorThread) -> Iterator[kube.KubeClient]:
    c = kube.connect(host=emulator.url)
    try:
        yield c
    finally:
        c.close()


@dataclass
class OperatorProcess:
    """One real `gate operator` process (stopped by its pid)."""

    proc: subprocess.Popen[bytes]
    probe_port: int
    log: Path

    @property
    def probes(self) -> str:
        return f"http://127.0.0.1:{self.probe_port}"

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the operator's /metrics samples ``name`` with these labels (0 when absent)."""
        text = httpx.get(f"{self.probes}/metrics", timeout=5).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gate operator exited {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.probes}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"gate operator not ready in {timeout}s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: a replica dying mid-step."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Operators:
    emulator: EmulatorThread
    tmp: Path
    started: list[OperatorProcess] = field(default_factory=list)

    def start(
        self, *extra: str, name: str = "op", store: Path | None = None, ready: bool = True
    ) -> OperatorProcess:
        port = free_port()
        log = self.tmp / f"{name}-{len(self.started)}.log"
        cmd = [
            GATE,
            "operator",
            "--kube-server",
            self.emulator.url,
            "--store",
            str(store or self.tmp / "runs.sqlite"),
            "--workdir",
            str(self.tmp / "work"),
            "--probe-host",
            "127.0.0.1",
            "--probe-port",
            str(port),
            *extra,
        ]
        proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=self.tmp)
        op = OperatorProcess(proc, port, log)
        self.started.append(op)
        if ready:
            op.wait_ready()
        return op


@pytest.fixture
def operators(emulator: EmulatorThread, tmp_path: Path) -> Iterator[Operators]:
    ops = Operators(emulator, tmp_path)
    try:
        yield ops
    finally:
        for op in ops.started:
            op.stop()


def wait_for(what: Callable[[], Any], timeout: float, message: Callable[[], str] | str = "") -> Any:
    """Poll ``what()`` until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = what()
        if last:
            return last
        time.sleep(0.1)
    text = message() if callable(message) else message
    raise TimeoutError(f"not reached in {timeout}s (last: {last!r}) {text}")


def gate_ref(name: str = "checkout", namespace: str = "shop") -> kube.ObjectRef:
    return kube.ObjectRef(GATES, namespace, name)
