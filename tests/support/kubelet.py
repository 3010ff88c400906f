"""A test-side "kubelet" for the Kubernetes emulator: the Jobs gate creates run as real local processes.

kmock's emulator stores objects; nothing runs them. ``Kubelet`` plays the parts of a cluster that
gate's load at scale relies on, over the emulator's real HTTP API (gate's own Kubernetes client):

- the Job controller and kubelet: for each Job in the namespace it creates ``parallelism`` Pod objects
  (the Job's template labels, an ownerReference to the Job) and runs each pod's container command as a
  local process — ``python`` is this interpreter, the ConfigMap volumes are "mounted" by writing their
  keys into a directory per pod (the mount path in arguments and in the files is that directory),
  ``0.0.0.0`` binds loopback only, a Service name resolves to 127.0.0.1, and a Service's port is mapped
  to a free loopback port per load instance (so parallel tests never share 5557); the pod's phase goes
  Pending → Running → Succeeded / Failed (its exit code);
- the log endpoint: ``GET .../pods/NAME/log[?follow=true]`` streams what the process wrote, stdout and
  stderr interleaved line by line as a container runtime does (a kmock reaction on the ``log``
  subresource: kmock serves no logs itself);
- the garbage collector: a Job deleted (propagationPolicy Background) has its processes stopped
  (SIGTERM, then SIGKILL after the grace period, as a kubelet does) and its Pods deleted.

``kill(role)`` kills a pod's process (SIGKILL) to play a crashed pod. Every process started is
stopped by its own pid when the kubelet closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import kmock

from gate.drivers import kube
from tests.support.kube import KubeEmulator, api_error
from tests.support.ports import free_port

JSON = dict[str, Any]

RESOURCES = {
    "batch/v1/jobs": kmock.ResourceInfo(
        kind="Job", singular="job", namespaced=True,
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"}, subresources={"status"},
    ),
    "v1/pods": kmock.ResourceInfo(
        kind="Pod", singular="pod", namespaced=True,
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"}, subresources={"status", "log"},
    ),
    "v1/configmaps": kmock.ResourceInfo(
        kind="ConfigMap", singular="configmap", namespaced=True,
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
    ),
}  # fmt: skip
GRACE = 10.0


class Emulated(Protocol):
    """A served KubeEmulator: tests.support.kube.RunningKube or tests.operator.emulator.EmulatorThread."""

    url: str

    @property
    def emulator(self) -> KubeEmulator: ...

    def call(self, fn: Any) -> Any: ...


@dataclass
class PodProcess:
    """One pod's container, run as a local process."""

    namespace: str
    name: str
    job: str
    role: str
    command: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    readers: list[threading.Thread] = field(default_factory=list)
    phase: str = "Pending"

    @property
    def finished(self) -> bool:
        return (
            self.proc is not None
            and self.proc.poll() is not None
            and not any(r.is_alive() for r in self.readers)
        )


class Kubelet:
    """Runs the Jobs of ``namespace`` on this machine (see the module's docstring)."""

    def __init__(self, api: Emulated, namespace: str, workdir: Path, *, poll: float = 0.2) -> None:
        self.api = api
        self.namespace = namespace
        self.workdir = workdir
        self.poll = poll
        self.client = kube.connect(host=api.url)
        self.pods: dict[str, PodProcess] = {}
        self.history: list[PodProcess] = []  # every pod started, kept after it is collected
        self.jobs: dict[str, str] = {}  # job name -> its uid
        self.ports: dict[str, int] = {}  # load instance -> the loopback port its Service maps to
        self.errors: list[str] = []
        self.cut_logs: list[int] = []  # the next follow streams end after this many lines (mid-line)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> Kubelet:
        def setup() -> None:
            emulator = self.api.emulator
            for key, info in RESOURCES.items():
                emulator.resources[key] = info
            emulator[kmock.subresource("log")] << self._serve_log

        self.api.call(setup)
        self._thread = threading.Thread(target=self._run, name="test-kubelet", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for pod in list(self.pods.values()):
            self._terminate(pod, grace=2.0)
        self.client.close()

    # -- what tests look at ------------------------------------------------------------------------
    def running(self) -> list[PodProcess]:
        """Pods whose process is alive."""
        return [p for p in self.pods.values() if p.proc is not None and p.proc.poll() is None]

    def of_role(self, role: str) -> list[PodProcess]:
        return [p for p in self.pods.values() if p.role == role]

    def kill(self, role: str) -> PodProcess:
        """SIGKILL the (first running) pod of ``role``: a crashed container."""
        for pod in self.running():
            if pod.role == role and pod.proc is not None:
                pod.proc.kill()
                return pod
        raise LookupError(f"no running {role} pod")

    def wait_for(self, what: str, cond: Any, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise TimeoutError(f"kubelet: {what} within {timeout:g}s; errors: {self.errors}")
            time.sleep(0.1)

    # -- the loop ----------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync()
            except Exception as exc:  # keep running; the test reads the errors when it times out
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(self.poll)

    def _sync(self) -> None:
        jobs = {j["metadata"]["name"]: j for j in self.client.list(kube.JOB, self.namespace)}
        for name, job in jobs.items():
            if name not in self.jobs:
                self.jobs[name] = str(job["metadata"].get("uid", ""))
                count = int(job["spec"].get("parallelism", 1))
                for _ in range(count):
                    self._start_pod(job)
        for name in [n for n in self.jobs if n not in jobs]:  # deleted: the garbage collector's part
            del self.jobs[name]
            for pod in [p for p in self.pods.values() if p.job == name]:
                threading.Thread(target=self._collect, args=(pod,), daemon=True).start()
        for pod in list(self.pods.values()):
            if pod.phase == "Running" and pod.finished and pod.proc is not None:
                pod.phase = "Succeeded" if pod.proc.returncode == 0 else "Failed"
                self._set_status(pod, pod.proc.returncode)

    def _collect(self, pod: PodProcess) -> None:
        self._terminate(pod, grace=GRACE)
        with contextlib.suppress(kube.KubeNotFoundError):
            self.client.delete(kube.ObjectRef(kube.POD, pod.namespace, pod.name))
        with self._lock:
            self.pods.pop(pod.name, None)

    @staticmethod
    def _terminate(pod: PodProcess, *, grace: float) -> None:
        proc = pod.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=5)
        for reader in pod.readers:
            reader.join(5)

    # -- starting a pod ----------------------------------------------------------------------------
    def _start_pod(self, job: JSON) -> None:
        template = job["spec"]["template"]
        spec = template["spec"]
        container = spec["containers"][0]
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        job_name = job["metadata"]["name"]
        name = f"{job_name}-{secrets.token_hex(3)}"
        pod_dir = self.workdir / name
        pod_dir.mkdir(parents=True)
        mounts = self._mount(spec, container, pod_dir)
        instance = labels.get("app.kubernetes.io/instance", job_name)
        command = self._translate(list(container["command"]), mounts, instance)
        pod = PodProcess(
            self.namespace, name, job_name, str(labels.get("app.kubernetes.io/component", "")), command,
            pod_dir / "container.log",
        )  # fmt: skip
        body = {
            "metadata": {
                "labels": {**labels, "job-name": job_name},
                "ownerReferences": [
                    {"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": self.jobs[job_name]}
                ],
            },
            "spec": spec,
            "status": {"phase": "Pending"},
        }
        self.client.create(kube.ObjectRef(kube.POD, self.namespace, name), body)
        with self._lock:
            self.pods[name] = pod
            self.history.append(pod)
        pod.log.touch()
        pod.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            cwd=pod_dir,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        lock = threading.Lock()
        for stream in (pod.proc.stdout, pod.proc.stderr):
            assert stream is not None
            reader = threading.Thread(target=_copy_lines, args=(stream, pod.log, lock), daemon=True)
            reader.start()
            pod.readers.append(reader)
        pod.phase = "Running"
        self._set_status(pod, None)

    def _mount(self, spec: JSON, container: JSON, pod_dir: Path) -> dict[str, Path]:
        """Write each ConfigMap volume's keys into a directory; mount path -> that directory."""
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        out: dict[str, Path] = {}
        for mount in container.get("volumeMounts") or []:
            volume = volumes[mount["name"]]
            target = pod_dir / mount["name"]
            target.mkdir()
            cm = volume.get("configMap")
            if cm is not None:
                data = self.client.get(kube.ObjectRef(kube.CONFIGMAP, self.namespace, cm["name"]))["data"]
                for key, text in data.items():
                    (target / key).write_text(str(text).replace(mount["mountPath"], str(target)))
            out[mount["mountPath"]] = target
        return out

    def _translate(self, command: list[str], mounts: dict[str, Path], instance: str) -> list[str]:
        port = self.ports.setdefault(instance, free_port())
        out: list[str] = []
        for i, given in enumerate(command):
            previous = command[i - 1] if i else ""
            arg = given
            if i == 0 and given == "python":
                arg = sys.executable
            elif given == "0.0.0.0":
                arg = "127.0.0.1"  # loopback only on these machines
            elif previous == "--port":
                arg = str(port)  # the Service's port, mapped per load instance
            elif previous == "--master-host":
                if not self._exists("v1/services", given):
                    self.errors.append(f"no Service {given}: the name does not resolve")
                else:
                    arg = "127.0.0.1"
            for path, local in mounts.items():
                arg = arg.replace(path, str(local))
            out.append(arg)
        return out

    def _exists(self, resource: str, name: str) -> bool:
        emulator = self.api.emulator
        return bool(self.api.call(lambda: emulator.exists(resource, self.namespace, name)))

    def _set_status(self, pod: PodProcess, code: int | None) -> None:
        status: JSON = {"phase": pod.phase}
        if code is not None:
            status["containerStatuses"] = [
                {"name": pod.role, "state": {"terminated": {"exitCode": code}}, "ready": False}
            ]
        with contextlib.suppress(kube.KubeNotFoundError):
            self.client.patch_status(kube.ObjectRef(kube.POD, pod.namespace, pod.name), {"status": status})

    # -- the log endpoint (runs on the emulator's loop) --------------------------------------------
    async def _serve_log(self, request: kmock.Request) -> Any:
        pod = self.pods.get(str(request.name))
        if pod is None or request.namespace != pod.namespace:
            raise api_error(404, "NotFound", f'pods "{request.name}" not found')
        if pod.proc is None:
            raise api_error(
                400, "BadRequest", f'container "{pod.role}" in pod "{pod.name}" is waiting to start'
            )
        follow = request.params.get("follow") in ("true", "1")
        cut = self.cut_logs.pop(0) if follow and self.cut_logs else None
        return _log_stream(pod, follow, cut)


async def _log_stream(pod: PodProcess, follow: bool, cut: int | None = None) -> AsyncIterator[bytes]:
    """The pod's log from its start; following, until the process ended and all is sent. ``cut``: end
    this stream after that many lines and half of the next one, the container still running (an
    API server or kubelet restarting cuts streams so)."""
    yield b""  # the answer's headers go at once, as the API server's do
    sent = 0
    with pod.log.open("rb") as fh:
        pending = b""
        while True:
            chunk = fh.read(256 * 1024)
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if cut is not None and sent == cut:
                        yield line[: len(line) // 2]
                        return
                    yield line + b"\n"
                    sent += 1
                continue
            if not follow or pod.finished:
                rest = fh.read()
                if pending + rest:
                    yield pending + rest
                return
            await asyncio.sleep(0.05)


def _copy_lines(stream: IO[bytes], log: Path, lock: threading.Lock) -> None:
    with stream, log.open("ab") as out:
        for line in _lines(stream):
            with lock:
                out.write(line if line.endswith(b"\n") else line + b"\n")
                out.flush()


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    with contextlib.suppress(ValueError, OSError):
        yield from stream
