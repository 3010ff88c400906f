"""Load at scale against kmock's emulator over real HTTP: gate creates the Jobs through its Kubernetes
driver (the official client), a test-side kubelet (tests/support/kubelet.py) runs their pods as real
Locust processes against real loopback services and serves the master's log; gate reads the records
from that log stream and deletes everything it created."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gate.drivers import kube
from gate.drivers.load import LoadPlan, LoadTask
from gate.drivers.load.cluster import RUN_LABEL, ClusterLoadDriver, ClusterOptions, run_key
from gate.errors import RetryPolicy
from tests.drivers.load.conftest import Services
from tests.support.kube import RunningKube
from tests.support.kubelet import Kubelet

NS = "shop"
KINDS = ("batch/v1/jobs", "v1/services", "v1/configmaps", "v1/pods")
FAST = RetryPolicy(attempts=3, total=5.0, initial=0.05, maximum=0.2)


def plan_for(services: Services, **kw: object) -> LoadPlan:
    args: dict[str, object] = {
        "tasks": (
            LoadTask("home", "/", weight=3),
            LoadTask("order", "/orders", method="POST", json={"n": 1}),
        ),
        "users": 4,
        "spawn_rate": 100.0,
        "duration": 3.0,
        "think_time": (0.005, 0.01),
        "workers": 2,
    }
    args.update(kw)
    return LoadPlan(stable_url=services.urls["stable"], canary_url=services.urls["canary"], **args)  # type: ignore[arg-type]


@pytest.fixture
def kubelet(kube_api: RunningKube, tmp_path: Path) -> Iterator[Kubelet]:
    with Kubelet(kube_api, NS, tmp_path / "kubelet") as k:
        yield k


@pytest.fixture
def options(kube_api: RunningKube) -> Iterator[ClusterOptions]:
    client = kube.connect(host=kube_api.url)
    yield ClusterOptions(client=client, namespace=NS, image="gate:test", retry=FAST, poll=0.1, startup=30.0)
    client.close()


def labelled(api: RunningKube, key: str, kinds: tuple[str, ...] = KINDS) -> list[str]:
    """Objects of the run still in the API (pods too: they carry their Job's template labels)."""

    def find() -> list[str]:
        out = []
        for resource in kinds:
            for ns, name, raw in _objects(api, resource):
                labels = (raw.get("metadata") or {}).get("labels") or {}
                if labels.get(RUN_LABEL) == key and ns == NS:
                    out.append(f"{resource} {name}")
        return out

    return api.call(find)  # type: ignore[no-any-return]


def _objects(api: RunningKube, resource: str) -> list[tuple[str | None, str, dict[str, Any]]]:
    emulator = api.emulator
    out = []
    for (res, ns, name), obj in list(emulator.objects.items()):
        if f"{res.group}/{res.version}/{res.plural}".lstrip("/") == resource and not obj.deleted:
            out.append((ns, name, dict(obj.raw)))
    return out


def wait_until(what: str, cond: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:g}s")
        time.sleep(0.1)


def test_evidence_comes_from_the_jobs_locust_and_everything_is_deleted_at_the_end(
    services: Services,
    kubelet: Kubelet,
    options: ClusterOptions,
    kube_api: RunningKube,
) -> None:
    plan = plan_for(services)
    driver = ClusterLoadDriver(plan, options, run_id="shop/checkout/run-1")
    driver.start()
    created = driver.objects
    assert sorted(o.split()[0] for o in created) == ["ConfigMap", "Job", "Job", "Service"]
    result = driver.result(timeout=90)

    assert result.complete, result.problems
    # The load came from the Jobs' pods: the master, and workers that are the worker pods' processes
    # (a Locust node is named host-pid).
    ran = {p.role: [] for p in kubelet.history}
    for p in kubelet.history:
        assert p.proc is not None
        ran[p.role].append(f"{socket.gethostname()}-{p.proc.pid}")
    assert len(ran["worker"]) == 2 and len(ran["master"]) == 1, ran
    assert "master" in result.nodes, result.nodes
    workers = set(result.nodes) - {"master"}
    assert workers and workers <= set(ran["worker"]), (workers, ran)
    for track in ("stable", "canary"):
        seen = services.seen(track)
        measured = result.tracks[track]
        assert measured.requests > 20 and measured.errors == 0
        assert set(seen["sources"]) == {"synthetic"}
        assert measured.requests <= seen["requests"] <= measured.requests + 8  # in flight when users stopped
    # The master ended: gate deleted every object of the run, the Jobs with their pods.
    key = run_key("shop/checkout/run-1")
    wait_until("every object of the run deleted", lambda: not labelled(kube_api, key))
    wait_until("no process left", lambda: not kubelet.running())
    deletes = kube_api.emulator.calls_of("delete")
    assert {(c.plural, c.name) for c in deletes} >= {
        ("jobs", f"{driver.name}-master"),
        ("jobs", f"{driver.name}-worker"),
        ("services", f"{driver.name}-master"),
        ("configmaps", f"{driver.name}-plan"),
    }
    assert all(c.body.get("propagationPolicy") == "Background" for c in deletes if c.plural == "jobs")
    # What gate asked of the API: creates, lists by label, the master's log, deletes.
    asked = {(c.verb, c.plural, c.subresource) for c in kube_api.emulator.calls if c.name != "*"}
    assert ("get", "pods", "log") in asked


def test_a_cut_log_stream_is_opened_again_without_losing_or_repeating_a_record(
    services: Services, kubelet: Kubelet, options: ClusterOptions, kube_api: RunningKube
) -> None:
    # The first two streams end mid-line while the master runs: after the workers' second batches
    # (the first ones are empty baselines), then a few batches later.
    kubelet.cut_logs = [6, 11]
    driver = ClusterLoadDriver(plan_for(services, duration=4.0), options, run_id="run-cut")
    driver.start()
    result = driver.result(timeout=90)
    assert result.complete, result.problems
    log_reads = [c for c in kube_api.emulator.calls_of("get", "pods") if c.subresource == "log"]
    assert len(log_reads) >= 3  # opened again twice
    for track in ("stable", "canary"):
        seen = services.seen(track)["requests"]
        measured = result.tracks[track].requests
        assert 20 < measured <= seen <= measured + 8  # no batch lost, none counted twice
    wait_until("every object deleted", lambda: not labelled(kube_api, run_key("run-cut")))


def test_stop_mid_run_deletes_everything_and_keeps_the_evidence_so_far(
    services: Services,
    kubelet: Kubelet,
    options: ClusterOptions,
    kube_api: RunningKube,
) -> None:
    driver = ClusterLoadDriver(plan_for(services, duration=60.0), options, run_id="run-abort")
    driver.start()
    wait_until("requests measured", lambda: driver.partial().tracks["stable"].requests > 10, timeout=60)
    assert driver.partial().running
    driver.stop()  # what an abort or a rollback does (LoadRunner.stop)
    result = driver.result(timeout=30)
    driver.close()
    assert result.tracks["stable"].requests > 10
    assert result.duration < 30
    wait_until("every object deleted", lambda: not labelled(kube_api, run_key("run-abort")))
    wait_until("no process left", lambda: not kubelet.running(), timeout=20)


def test_a_failed_master_is_the_results_problem_and_everything_is_deleted(
    services: Services,
    kubelet: Kubelet,
    options: ClusterOptions,
    kube_api: RunningKube,
) -> None:
    driver = ClusterLoadDriver(plan_for(services, duration=60.0), options, run_id="run-crash")
    driver.start()
    wait_until("requests measured", lambda: driver.partial().tracks["stable"].requests > 10, timeout=60)
    killed = kubelet.kill("master")
    result = driver.result(timeout=30)
    assert not result.complete
    assert any(killed.name in p and "ended before its run was done" in p for p in result.problems), (
        result.problems
    )
    assert result.tracks["stable"].requests > 10  # what was measured before the crash is kept
    wait_until("every object deleted", lambda: not labelled(kube_api, run_key("run-crash")))
    wait_until("no process left", lambda: not kubelet.running(), timeout=20)
    driver.close()


def test_forbidden_job_create_fails_once_with_its_reason_and_leaves_nothing(
    services: Services,
    kubelet: Kubelet,
    options: ClusterOptions,
    kube_api: RunningKube,
) -> None:
    kube_api.emulator.deny("create", "jobs", group="batch")
    driver = ClusterLoadDriver(plan_for(services), options, run_id="run-denied")
    with pytest.raises(kube.KubeForbiddenError) as caught:
        driver.start()
    text = str(caught.value)
    assert "cannot create Job shop/" in text and "403" in text
    assert "grant gate's identity `create` on jobs" in text
    assert len(kube_api.emulator.calls_of("create", "jobs")) == 1  # permanent: not retried
    # The ConfigMap and Service created before the refusal are gone again.
    assert not labelled(kube_api, run_key("run-denied"))
    assert not kubelet.pods


def test_temporary_api_errors_are_retried_within_the_budget(
    services: Services, kubelet: Kubelet, options: ClusterOptions, kube_api: RunningKube
) -> None:
    kube_api.emulator.fail(503, verb="create", resource="jobs", times=2)
    kube_api.emulator.fail(429, verb="list", resource="pods", times=1, retry_after=0)
    driver = ClusterLoadDriver(plan_for(services, duration=2.0), options, run_id="run-flaky")
    driver.start()
    result = driver.result(timeout=90)
    assert result.complete, result.problems
    assert len(kube_api.emulator.calls_of("create", "jobs")) == 4  # two refused, then both Jobs
    wait_until("every object deleted", lambda: not labelled(kube_api, run_key("run-flaky")))


def test_leftovers_of_the_run_are_deleted_before_a_new_start(
    services: Services,
    kubelet: Kubelet,
    options: ClusterOptions,
    kube_api: RunningKube,
) -> None:
    """A restarted operator (or a repeated start) finds what an earlier attempt left by its label."""
    first = ClusterLoadDriver(plan_for(services, duration=60.0), options, run_id="run-again")
    first.start()
    try:
        wait_until("the first load runs", lambda: len(kubelet.running()) == 3, timeout=60)
        # The first driver is forgotten (its operator died); a new one starts the same run's load.
        second = ClusterLoadDriver(plan_for(services, duration=2.0), options, run_id="run-again")
        second.start()
        # Its Jobs, Service and ConfigMap are gone at once (their pods terminate in the background).
        left = labelled(kube_api, run_key("run-again"), KINDS[:3])
        assert not any(first.name in o for o in left), left
        assert any(second.name in o for o in left)
        result = second.result(timeout=90)
        assert result.complete, result.problems
        wait_until("every object deleted", lambda: not labelled(kube_api, run_key("run-again")))
        wait_until("no process left", lambda: not kubelet.running(), timeout=20)
    finally:
        first.close()


CONTRACT = """\
apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {{name: checkout, namespace: shop}}
spec:
  service: checkout
  target:
    stable: {{url: "{stable}"}}
    canary: {{url: "{canary}"}}
  router: {{type: nginx, port: 8080}}
  prometheus: {{url: "http://127.0.0.1:1"}}
  load:
    users: 4
    spawnRate: 100/s
    duration: 3s
    workers: {workers}
    tasks:
      - {{name: home, get: /}}
  objectives:
    - {{sli: http-error-ratio, max: 5%}}
  steps: [load, 100%]
"""


def test_the_composition_runs_a_contracts_load_as_jobs_when_it_asks_for_more_workers_than_gate_has(
    services: Services,
    kubelet: Kubelet,
    kube_api: RunningKube,
    tmp_path: Path,
) -> None:
    from gate.compose.drivers import LoadAtScale, drivers_for
    from gate.contract import SliLibrary, parse_contract

    def contract(workers: object) -> Any:
        text = CONTRACT.format(
            stable=services.urls["stable"], canary=services.urls["canary"], workers=workers
        )
        return parse_contract(text)

    client = kube.connect(host=kube_api.url)
    try:
        at_scale = LoadAtScale(client, "gate:test", local_workers=1)
        assert at_scale.chooses(contract(2))
        assert not at_scale.chooses(contract(1))
        assert not at_scale.chooses(contract('"auto"'))  # one per local core: never more than gate has
        assert not LoadAtScale(client, "gate:test", local_workers=4).chooses(contract(2))

        the_contract = contract(2)
        drivers = drivers_for(
            the_contract, SliLibrary.default(), workdir=tmp_path / "w", load_at_scale=at_scale, run_id="r-1"
        )
        load = drivers.load
        assert load is not None and load.cluster is not None
        assert load.cluster.namespace == "shop"  # the contract's (the gate's) namespace
        began = time.time()
        load.start(0, 3.0)  # the runner's StartLoad
        wait_until("the Jobs' pods run", lambda: len(kubelet.running()) == 3, timeout=60)
        wait_until("the master ended", lambda: not kubelet.of_role("master") or not kubelet.running(), 90)
        load.stop()  # the runner's StopLoad at the step's end
        evidence = load.evidence(began - 1, time.time() + 1)
        assert evidence is not None
        for track in ("stable", "canary"):
            counts = evidence.get("http-error-ratio", "synthetic", track)  # type: ignore[arg-type]
            seen = services.seen(track)["sources"]["synthetic"]
            assert counts is not None and counts.errors == 0  # type: ignore[union-attr]
            assert 20 < counts.total <= seen <= counts.total + 8  # type: ignore[union-attr]
        wait_until("every object deleted", lambda: not labelled(kube_api, run_key("r-1")))
        drivers.close()
    finally:
        client.close()


def _run_contract(services: Services, port: int) -> str:
    return (
        CONTRACT.format(stable=services.urls["stable"], canary=services.urls["canary"], workers=2)
        .replace("type: nginx, port: 8080", f"type: nginx, port: {port}")
        .replace("duration: 3s", "duration: 60s")
        .replace("steps: [load, 100%]", "steps: [load 60s, 100%]")
    )


def _run_parts(services: Services, kube_api: RunningKube, tmp_path: Path) -> Any:
    from gate.compose import start_run
    from gate.contract import parse_contract
    from gate.drivers.nginx import nginx_binary
    from gate.settings import Settings
    from tests.support.ports import free_port

    if nginx_binary() is None:
        pytest.skip("nginx is not installed (Debian package nginx)")
    text = _run_contract(services, free_port())
    settings = Settings(
        store=f"sqlite:///{tmp_path}/runs.sqlite",
        nginx_prefix=tmp_path / "nginx",
        load_image="gate:test",
        load_local_workers=1,
    )
    client = kube.connect(host=kube_api.url)
    parts = start_run(
        parse_contract(text), text, settings=settings, store=settings.store, face="test", kube_client=client
    )
    return parts, client


def _advance_until(parts: Any, what: str, cond: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:g}s (state {parts.runner.state})")
        parts.runner.advance(time.time())
        time.sleep(0.2)


def test_a_forbidden_job_create_fails_the_load_step_once_with_its_reason(
    services: Services,
    kubelet: Kubelet,
    kube_api: RunningKube,
    tmp_path: Path,
) -> None:
    from gate.drivers.nginx import NginxServer

    kube_api.emulator.deny("create", "jobs", group="batch")
    parts, client = _run_parts(services, kube_api, tmp_path)
    try:
        _advance_until(parts, "the run ended", lambda: parts.runner.state.terminal)
        state = parts.runner.state
        assert state.status == "failed", state  # a driver that cannot start: rolled back, failed
        assert "start_load failed" in state.reason and "cannot create Job shop/" in state.reason
        assert "403" in state.reason and "grant gate's identity `create` on jobs" in state.reason
        assert len(kube_api.emulator.calls_of("create", "jobs")) == 1  # once: permanent
        assert not labelled(kube_api, run_key(parts.run_id))
    finally:
        parts.close()
        client.close()
        NginxServer(tmp_path / "nginx").stop()


def test_an_abort_during_the_load_step_deletes_the_jobs(
    services: Services,
    kubelet: Kubelet,
    kube_api: RunningKube,
    tmp_path: Path,
) -> None:
    from gate.drivers.nginx import NginxServer
    from gate.engine.machine import Abort

    parts, client = _run_parts(services, kube_api, tmp_path)
    try:
        _advance_until(parts, "the Jobs' pods run", lambda: len(kubelet.running()) == 3)
        assert labelled(kube_api, run_key(parts.run_id), KINDS[:3])  # the run's Jobs, by its label
        parts.runner.request(Abort(at=time.time(), by="tester", reason="enough"))
        _advance_until(parts, "the run ended", lambda: parts.runner.state.terminal)
        assert parts.runner.state.status == "rolled_back"
        wait_until("every object deleted", lambda: not labelled(kube_api, run_key(parts.run_id)))
        wait_until("no process left", lambda: not kubelet.running(), timeout=20)
    finally:
        parts.close()
        client.close()
        NginxServer(tmp_path / "nginx").stop()


def test_a_master_pod_that_never_starts_ends_the_run_with_its_reason_and_deletes_everything(
    services: Services, options: ClusterOptions, kube_api: RunningKube
) -> None:
    """No kubelet runs the pods (no node has room, the image cannot be pulled)."""
    from dataclasses import replace

    from tests.support.kubelet import RESOURCES

    def register() -> None:
        for key, info in RESOURCES.items():
            kube_api.emulator.resources[key] = info

    kube_api.call(register)
    driver = ClusterLoadDriver(plan_for(services), replace(options, startup=1.5), run_id="run-pending")
    driver.start()
    assert labelled(kube_api, run_key("run-pending"))
    result = driver.result(timeout=30)
    assert not result.complete and result.tracks["stable"].requests == 0
    assert any("did not start within 1.5s" in p and "describe job" in p for p in result.problems), (
        result.problems
    )
    wait_until("every object deleted", lambda: not labelled(kube_api, run_key("run-pending")))
