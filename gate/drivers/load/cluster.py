"""Load at scale: the same load run with Locust's master and workers as Kubernetes Jobs.

`ClusterLoadDriver` is `LoadDriver`'s twin for a cluster (same `start` / `partial` / `result` /
`stop` / `close`, same `LoadResult` and evidence). For one run it:

1. deletes whatever an earlier attempt of the same gate run left (found by the run's label);
2. creates the objects of `gate.drivers.load.kube.job_manifests` — the plan's ConfigMap, the master's
   Service, the workers' Job, the master's Job — through gate's Kubernetes driver, every object labelled
   `perfgate.dev/load-run=<key of the gate run>`;
3. waits for the master's pod (listed by label) and follows its log
   (`GET .../pods/NAME/log?follow=true`): the master writes the same JSON-lines records as a local
   master's pipe, folded by the same `gate.drivers.load.result.Aggregator`. A broken stream is opened
   again and the lines already read are skipped (the log is replayed from its start);
4. deletes every object it created (propagationPolicy Background, so the Jobs' pods go too) when the
   master ends (its run is over, or it failed: the failure is the result's problem), when it is stopped
   (the step ended, the run was aborted or rolled back), and when starting failed.

Errors are the Kubernetes driver's: each call is retried within `retry` when the error is temporary
(conflict, throttling, 5xx, timeouts) and not at all when it is permanent (forbidden, invalid, not
found): a start that cannot create its objects raises that error once, with its hint, after
removing what it had created.

Nothing here imports Locust; the pods run `python -m gate.drivers.load.worker` from `image`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from gate.drivers import kube
from gate.drivers.load.driver import STARTUP_GRACE, LoadError
from gate.drivers.load.kube import PLAN_DIR, job_manifests
from gate.drivers.load.plan import LoadPlan
from gate.drivers.load.protocol import parse_line
from gate.drivers.load.result import Aggregator, LoadProgress, LoadResult
from gate.errors import RetryPolicy, is_permanent, retry_call

log = logging.getLogger(__name__)

T = TypeVar("T")

RUN_LABEL = "perfgate.dev/load-run"
"""Every object of a gate run's load carries it; its value is `run_key(run id)`."""
API_RETRY = RetryPolicy(attempts=5, total=30.0, initial=0.25, maximum=4.0)
LOG_REOPENS = 5
"""How often a broken log stream is opened again before the run is given up as lost."""


def run_key(run_id: str) -> str:
    """A label value for a gate run (its id may hold characters a label may not)."""
    return hashlib.sha256(run_id.encode("utf-8")).hexdigest()[:16]


def run_selector(key: str) -> str:
    return f"{RUN_LABEL}={key}"


@dataclass(frozen=True)
class ClusterOptions:
    """Where and how the Jobs run: the client (gate's Kubernetes driver), the namespace, the image
    (gate's own: the pods run `python -m gate.drivers.load.worker`), each worker pod's CPU and memory
    (request = limit), the retry budget of each API call, and how long the master pod may take to start."""

    client: kube.KubeClient
    namespace: str
    image: str
    cpu: str = "1"
    memory: str = "512Mi"
    retry: RetryPolicy = API_RETRY
    poll: float = 1.0
    startup: float = 180.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)


def _call(options: ClusterOptions, what: str, call: Callable[[], T]) -> T:
    return retry_call(call, policy=options.retry, sleep=options.sleep, what=what)


def delete_run_objects(options: ClusterOptions, key: str, *, only: str | None = None) -> list[str]:
    """Delete every Job, Service and ConfigMap of gate run `key` (those of one load, `only`: its
    instance name) in the namespace; the objects deleted ("Job ns/name"). Pods go with their Jobs
    (propagationPolicy Background). Already gone is fine; other errors are raised after trying all."""
    client, ns = options.client, options.namespace
    selector = run_selector(key) + (f",app.kubernetes.io/instance={only}" if only else "")
    deleted: list[str] = []
    errors: list[BaseException] = []
    for resource in (kube.JOB, kube.SERVICE, kube.CONFIGMAP):  # Jobs first: the load stops first
        try:
            found = _call(
                options,
                f"list {resource.plural}",
                partial(client.list, resource, ns, label_selector=selector),
            )
        except Exception as exc:  # keep deleting the other kinds
            errors.append(exc)
            continue
        for obj in found:
            name = str((obj.get("metadata") or {}).get("name") or "")
            if not name:
                continue
            ref = kube.ObjectRef(resource, ns, name)
            try:
                _call(options, f"delete {ref}", partial(client.delete, ref, propagation="Background"))
                deleted.append(str(ref))
            except kube.KubeNotFoundError:
                pass
            except Exception as exc:
                errors.append(exc)
    if errors:
        raise errors[0]
    return deleted


class ClusterLoadDriver:
    """One load run on the cluster: `start()`, then `partial()` / `result()`, `stop()`, `close()`."""

    def __init__(
        self,
        plan: LoadPlan,
        options: ClusterOptions,
        *,
        run_id: str,
        workers: int | None = None,
        on_progress: Callable[[LoadProgress], None] | None = None,
    ) -> None:
        self.plan = plan
        self.options = options
        self.key = run_key(run_id)
        self.workers = workers if workers is not None else plan.worker_count
        # A fresh name per start: an earlier load of the run may still be terminating under its name.
        self.name = f"gate-load-{self.key[:10]}-{secrets.token_hex(3)}"
        self.on_progress = on_progress
        self._agg = Aggregator(plan)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ended = threading.Event()
        self._reader: threading.Thread | None = None
        self._started = 0.0
        self._result: LoadResult | None = None
        self._created: list[str] = []
        self._cleaned = False
        self._cleanup_lock = threading.Lock()
        self.master_pod: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> ClusterLoadDriver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def manifests(self) -> list[dict[str, Any]]:
        """The objects this run creates (a locustfile travels in the plan's ConfigMap)."""
        plan = self.plan
        extra: dict[str, str] = {}
        if plan.locustfile:
            try:
                extra["locustfile.py"] = Path(plan.locustfile).read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise LoadError(
                    f"load at scale: cannot read the locustfile {plan.locustfile} to send it to the "
                    f"load's pods: {exc}"
                ) from exc
            plan = dataclasses.replace(plan, locustfile=f"{PLAN_DIR}/locustfile.py")
        objects = job_manifests(
            plan,
            name=self.name,
            namespace=self.options.namespace,
            image=self.options.image,
            workers=self.workers,
            cpu=self.options.cpu,
            memory=self.options.memory,
            labels={RUN_LABEL: self.key},
        )
        objects[0]["data"].update(extra)
        return objects

    def start(self) -> ClusterLoadDriver:
        """Create the run's objects (after removing what an earlier attempt left) and follow the master."""
        if self._reader is not None:
            raise LoadError("this load run has started already")
        objects = self.manifests()
        left = delete_run_objects(self.options, self.key)
        if left:
            log.info("load %s: deleted what an earlier attempt left: %s", self.name, ", ".join(left))
        self._started = time.monotonic()
        try:
            self._create(objects)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                self._cleanup()
            if isinstance(exc, kube.KubeError):
                raise
            raise LoadError(f"load at scale: cannot create the load's objects: {exc}") from exc
        self._reader = threading.Thread(target=self._read, name=f"gate-load-{self.name}", daemon=True)
        self._reader.start()
        return self

    def _create(self, objects: list[dict[str, Any]]) -> None:
        client, ns = self.options.client, self.options.namespace
        kinds = {"ConfigMap": kube.CONFIGMAP, "Service": kube.SERVICE, "Job": kube.JOB}
        for obj in objects:
            ref = kube.ObjectRef(kinds[obj["kind"]], ns, obj["metadata"]["name"])
            # AlreadyExists: our own create, answered late and sent again: it is there.
            with contextlib.suppress(kube.KubeAlreadyExistsError):
                _call(self.options, f"create {ref}", partial(client.create, ref, obj))
            self._created.append(str(ref))

    # -- following the master ----------------------------------------------------------------------
    def _read(self) -> None:
        try:
            pod = self._wait_for_master()
            if pod is not None:
                self.master_pod = pod
                self._follow(pod)
                self._check_master(pod)
        except Exception as exc:  # the reader never dies silently: the result says what happened
            if not self._stopping.is_set():
                with self._lock:
                    self._agg.problems.append(f"load at scale: {exc}"[:500])
        finally:
            self._ended.set()
            try:
                self._cleanup()
            except Exception as exc:  # said loudly; stop() / the next start try again
                log.error("load %s: could not delete its objects: %s", self.name, exc)

    def _master_pods(self) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component=master"
        client, ns = self.options.client, self.options.namespace
        return _call(self.options, "list pods", lambda: client.list(kube.POD, ns, label_selector=selector))

    def _wait_for_master(self) -> str | None:
        deadline = time.monotonic() + self.options.startup
        while not self._stopping.is_set():
            for pod in self._master_pods():
                phase = (pod.get("status") or {}).get("phase")
                if phase in ("Running", "Succeeded", "Failed"):
                    return str(pod["metadata"]["name"])
            if time.monotonic() >= deadline:
                with self._lock:
                    self._agg.problems.append(
                        f"load at scale: the master pod of {self.name} did not start within "
                        f"{self.options.startup:g}s (kubectl -n {self.options.namespace} describe job "
                        f"{self.name}-master)"
                    )
                return None
            self._stopping.wait(self.options.poll)
        return None

    def _follow(self, pod: str) -> None:
        ref = kube.ObjectRef(kube.POD, self.options.namespace, pod)
        seen = 0

        def consume(lines: Iterator[bytes]) -> None:
            nonlocal seen
            skip = seen  # a reopened log starts from the beginning again
            for i, line in enumerate(lines):
                if i < skip:
                    continue
                seen = i + 1
                self._add(line)

        reopens = 0
        while True:
            try:
                self.options.client.follow_log(ref, consume, idle_timeout=self.plan.duration + STARTUP_GRACE)
            except kube.KubeError as exc:
                if is_permanent(exc) and not isinstance(exc, kube.KubeInvalidError):
                    raise  # forbidden, gone: no log to read
                # 400 (the container is still starting) and temporary troubles: open it again.
                why = str(exc)
            else:
                # The stream ended. The master stopped — unless the API server cut a stream of a
                # container still running (a restarted kubelet or API server does): then read on.
                if self._stopping.is_set() or self._done() or not self._still_running(pod):
                    return
                why = "the stream ended while the master still runs"
            reopens += 1
            if reopens > LOG_REOPENS or self._stopping.is_set():
                raise LoadError(f"the log of the master pod {pod} broke {reopens} times; last: {why}")
            log.info("load %s: the master's log broke (%s); opening it again", self.name, why)
            self.options.sleep(min(2.0**reopens * 0.25, 4.0))

    def _done(self) -> bool:
        with self._lock:
            return self._agg.done

    def _still_running(self, pod: str) -> bool:
        return any(
            p["metadata"]["name"] == pod and (p.get("status") or {}).get("phase") == "Running"
            for p in self._master_pods()
        )

    def _add(self, line: bytes) -> None:
        record = parse_line(line)
        if record is None:
            return
        with self._lock:
            self._agg.add(record)
            progress = self._agg.progress() if record.get("type") == "batch" else None
        if progress is not None and self.on_progress is not None:
            try:
                self.on_progress(progress)
            except Exception:  # a faulty observer must not stop the reading of the records
                log.exception("progress callback failed")

    def _check_master(self, pod: str) -> None:
        """After the log ended: a master that failed (or vanished) before its run was done is a problem."""
        with self._lock:
            if self._agg.done:
                return
        phase = "gone"
        for item in self._master_pods():
            if item["metadata"]["name"] == pod:
                phase = str((item.get("status") or {}).get("phase") or "unknown")
        if not self._stopping.is_set():
            with self._lock:
                self._agg.problems.append(
                    f"load at scale: the master pod {self.options.namespace}/{pod} ended before its run "
                    f"was done (phase {phase}); kubectl -n {self.options.namespace} logs {pod}"
                )

    def _cleanup(self) -> None:
        with self._cleanup_lock:
            if self._cleaned:
                return
            delete_run_objects(self.options, self.key, only=self.name)
            self._cleaned = True

    # -- views -------------------------------------------------------------------------------------
    def snapshot(self) -> LoadProgress:
        with self._lock:
            return self._agg.progress()

    def partial(self) -> LoadResult:
        """The samples so far of a run still going, for looks taken while the load runs."""
        with self._lock:
            if self._result is not None:
                return self._result
            return self._agg.result(running=self.running())

    def running(self) -> bool:
        return self._reader is not None and not self._ended.is_set()

    @property
    def objects(self) -> list[str]:
        """The objects this run created ("Job ns/name")."""
        return list(self._created)

    def result(self, timeout: float | None = None) -> LoadResult:
        """Wait for the run to end (at most `timeout`, default its duration plus the start-up allowance
        and a grace), then its result. A run that outlives the wait is stopped."""
        if self._reader is None:
            raise LoadError("the load run was never started")
        if self._result is not None:
            return self._result
        if timeout is None:
            deadline = self._started + self.options.startup + self.plan.duration + STARTUP_GRACE
        else:
            deadline = time.monotonic() + timeout
        self._ended.wait(max(0.0, deadline - time.monotonic()))
        if not self._ended.is_set():
            self.stop()
            self._ended.wait(15.0)
        with self._lock:
            if self._agg.started_at is None and not self._agg.problems:
                self._agg.problems.append(
                    f"load at scale: the master of {self.name} never started its run "
                    f"(kubectl -n {self.options.namespace} logs job/{self.name}-master)"
                )
            self._result = self._agg.result()
            return self._result

    # -- stopping ----------------------------------------------------------------------------------
    def stop(self) -> None:
        """End the run now: its objects are deleted (the pods get SIGTERM: the master sends its last
        batches while its log is still read)."""
        self._stopping.set()
        self._cleanup()

    def close(self) -> None:
        """Stop the run and wait (bounded) for the log's last lines."""
        try:
            self.stop()
        finally:
            if self._reader is not None:
                self._reader.join(20.0)
