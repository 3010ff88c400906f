"""`gate run` as a user runs it (the real CLI in a subprocess, issue 10 "Done when"): a kubeconfig
file for the emulator (tests/support/kube.py, over real HTTP), the demo's checkout service as stable
and canary with a real Prometheus scraping them every second (the demo topology without its nginx),
and the stand-in gateway (tests/support/gateway.py) carrying the demo's production users to the
Services by the HTTPRoute's weights and mirroring by its filter.

- a good canary is promoted (route-only, copy) and a regressed one rolled back; after each the route
  equals the one the user wrote apart from the intended weights, nothing is mirrored any more, the
  stable Deployment runs the expected version;
- the error matrix: the API server answering 404, 403, 422, 409, 429 (Retry-After), 503, or frozen
  for 30 s before a weight step. A permanent error is reported once (object, verb, fix), never
  retried; a rollback that cannot be carried out ends `rollback_failed` (exit 6, a notification, the
  store closed); a temporary error is retried within a bounded budget, the wait shown, and the run
  completes; no look's window mixes two weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gate.demo.procs import ChildProcess
from gate.demo.topology import Topology, TopologyConfig
from gate.drivers.store import RunStore
from tests.drivers.routers import test_gateway_api as gw
from tests.engine.receiver import Receiver, receiver
from tests.kube import test_preflight as pf
from tests.kube import test_promotion as tp
from tests.support.gateway import StandInGateway
from tests.support.kube import RunningKube, as_written, field_diff, serve

GATE = str(Path(sys.executable).with_name("gate"))
USERS_RATE = 40  # production requests per second through the stand-in gateway
WARM_RATE = 4.0  # the 5-minute rate on stable the first run's preflight needs (minEvidence 10 in 8 s at 50 %)
LEDGER = "perfgate.dev/router-original"


class _ServicesOnly(Topology):
    """The demo topology without its nginx router and its users: the stand-in gateway and the users
    each test starts take their place (so production traffic follows the emulator's HTTPRoute)."""

    def _start_router(self) -> None:
        return None

    def _start_users(self) -> None:
        return None


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    topo = _ServicesOnly(TopologyConfig(scenario="good", workdir=tmp_path_factory.mktemp("demo"), seed=5))
    with topo.start():
        yield topo
    assert topo.pids() == {}


@dataclass
class _Pods:
    """A Service's pods: the demo process at `url` (what the stand-in gateway needs of a backend)."""

    name: str
    url: str


class _CountingGateway(StandInGateway):
    """The stand-in gateway, counting the copies its RequestMirror filter makes."""

    mirrored = 0

    def copy(self, name: str, method: str, path: str, body: bytes | None, content_type: str | None = None) -> None:
        self.mirrored += 1
        super().copy(name, method, path, body, content_type)


@dataclass
class Cluster:
    kube: RunningKube
    gateway: _CountingGateway
    kubeconfig: Path
    workdir: Path
    store: str
    hooks: Receiver

    def route(self) -> dict[str, Any]:
        return as_written(self.kube.stored(gw.R, "shop", "checkout"))

    def image(self) -> str:
        deployment = self.kube.stored(tp.D, "shop", "checkout")
        return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])

    def calls(self, verb: str, plural: str = "httproutes") -> int:
        return len(self.kube.emulator.calls_of(verb, plural))


@pytest.fixture(scope="module")
def world(demo: Topology, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningKube, _CountingGateway]]:
    """One emulator, one stand-in gateway and the production users for the module (each test puts
    the objects back as the user wrote them): Prometheus keeps a few minutes of traffic history,
    which gate's preflight reads to check that the steps can gather their evidence."""
    with serve() as kube:
        _seed(kube)
        pods = {
            "checkout": _Pods("checkout", demo.stable_url),
            "checkout-canary": _Pods("checkout-canary", demo.canary_url),
            "admin": _Pods("admin", demo.stable_url),
        }
        gateway = _CountingGateway(kube, "shop", "checkout", pods)  # type: ignore[arg-type]
        users = ChildProcess(
            name="users",
            module="gate.demo.users",
            args=["--url", gateway.url, "--rate", str(USERS_RATE), "--duration", "1800", "--seed", "3"],
            log_path=tmp_path_factory.mktemp("users") / "users.log",
        )
        users.start()
        try:
            # The canary serves a few requests before its rollout, as its readiness traffic would, so its
            # series exist; then the users' traffic builds up the 5-minute rate the preflight reads.
            for _ in range(20):
                urllib.request.urlopen(f"{demo.canary_url}/catalog/1", timeout=5).read()
            _wait_for_traffic(demo, WARM_RATE)
            yield kube, gateway
        finally:
            users.stop()
            gateway.stop()


def _wait_for_traffic(demo: Topology, rate: float, timeout: float = 120) -> None:
    query = 'sum(rate(http_request_duration_seconds_count{service="checkout",track="stable"}[300s]))'
    url = f"{demo.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = json.loads(urllib.request.urlopen(url, timeout=5).read())
        result = answer["data"]["result"]
        if result and float(result[0]["value"][1]) >= rate:
            return
        time.sleep(1)
    raise TimeoutError(f"Prometheus did not show {rate} req/s on stable within {timeout:g}s")


def _seed(kube: RunningKube) -> None:
    kube.seed(gw.R, "shop", "checkout", gw.SEED)
    for name in ("checkout", "checkout-canary", "admin"):
        kube.seed("v1/services", "shop", name, pf.SERVICE)
    kube.seed(tp.D, "shop", "checkout", tp.STABLE)
    kube.seed(tp.D, "shop", "checkout-canary", tp.CANARY)
    kube.complete_rollout("shop", "checkout")
    kube.complete_rollout("shop", "checkout-canary")


@pytest.fixture
def cluster(
    world: tuple[RunningKube, _CountingGateway], demo: Topology, tmp_path: Path
) -> Iterator[Cluster]:
    kube, gateway = world
    emulator = kube.emulator

    def reset() -> None:
        emulator.thaw()
        emulator.faults.clear()
        emulator.denied.clear()
        emulator.calls.clear()
        emulator.patches.clear()

    kube.call(reset)
    _seed(kube)
    try:
        with receiver() as hooks:
            yield Cluster(
                kube,
                gateway,
                kube.kubeconfig(tmp_path / "kubeconfig", context="emu"),
                tmp_path,
                f"sqlite:///{tmp_path / 'runs.sqlite'}",
                hooks,
            )
    finally:
        kube.call(reset)
        _seed(kube)  # the users' traffic goes back to stable
        demo.clear_switch("canary")


def contract(
    cluster: Cluster,
    demo: Topology,
    *,
    mode: str = "route-only",
    steps: str = "[mirror 100%, analyze 8s, 50%, analyze 8s, 100%]",
) -> Path:
    text = f"""apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {{name: checkout, namespace: shop}}
spec:
  service: checkout
  target:
    stable: {{service: checkout, deployment: checkout, url: "{demo.stable_url}"}}
    canary: {{service: checkout-canary, deployment: checkout-canary, url: "{demo.canary_url}"}}
  router: {{type: gateway-api, httpRoute: checkout}}
  promotion: {{mode: {mode}, timeout: 1m}}
  prometheus: {{url: "{demo.prometheus_url}", scrapeInterval: 1s}}
  traffic:
    selector: {{service: checkout}}
  objectives:
    - {{sli: http-latency, quantile: 0.95, max: 220ms, critical: true,
       minEvidence: {{requests: 10, duration: 4s}}}}
    - {{sli: http-error-ratio, max: 2%, minEvidence: {{requests: 10, duration: 4s}}}}
  steps: {steps}
  policy:
    interval: 1s
    deadline: 3m
    onInconclusive: rollback
    notify: [{{webhook: "{cluster.hooks.url}/hooks"}}]
"""
    path = cluster.workdir / "contract.yaml"
    path.write_text(text)
    return path


@dataclass
class Run:
    code: int
    out: str
    err: str
    seconds: float

    def __str__(self) -> str:
        return f"exit {self.code} after {self.seconds:.1f}s\n--- stdout\n{self.out}\n--- stderr\n{self.err}"

    __repr__ = __str__


def _env(cluster: Cluster) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATE_", "KUBE"))}
    env["HOME"] = str(cluster.workdir)  # no ~/.kube/config of the machine's
    env["COLUMNS"] = "200"
    return env


def gate_run(
    cluster: Cluster,
    path: Path,
    *args: str,
    during: Callable[[subprocess.Popen[str]], None] | None = None,
    timeout: float = 150,
) -> Run:
    """`gate run CONTRACT --kubeconfig … --store …` in a subprocess; ``during(proc)`` runs alongside."""
    cmd = [GATE, "run", str(path), "--kubeconfig", str(cluster.kubeconfig), "--context", "emu"]
    cmd += ["--store", cluster.store, "--workdir", str(cluster.workdir / "work"), "--no-live", *args]
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=cluster.workdir,
        env=_env(cluster),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    helper: threading.Thread | None = None
    if during is not None:
        helper = threading.Thread(target=during, args=(proc,), daemon=True)
        helper.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()  # our own child, by its pid
        out, err = proc.communicate()
        raise AssertionError(f"gate run did not end within {timeout:g}s\n{out}\n{err}") from None
    if helper is not None:
        helper.join(60)
    return Run(proc.returncode, out, err, time.monotonic() - started)


def show(cluster: Cluster, run_id: str) -> dict[str, Any]:
    """`gate runs show ID --json`: what the store recorded, as a user reads it."""
    done = subprocess.run(
        [GATE, "runs", "show", run_id, "--store", cluster.store, "--json"],
        capture_output=True,
        text=True,
        env=_env(cluster),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def run_id(run: Run) -> str:
    for line in run.err.splitlines():
        if line.startswith("run "):
            return line.split()[1]
    raise AssertionError(f"no run id in the output\n{run}")


def wait_for(predicate: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError("condition not reached")


def after_patches(cluster: Cluster, count: int, then: Callable[[], None]) -> Callable[[Any], None]:
    """A ``during`` that waits for the run's ``count``-th HTTPRoute patch (a step confirmed), then acts."""

    def act(_proc: Any) -> None:
        wait_for(lambda: cluster.calls("patch") >= count, timeout=90)
        then()

    return act


def assert_clean_rollback(cluster: Cluster) -> None:
    """The route as the user wrote it, no production request to the canary, nothing mirrored."""
    assert field_diff(gw.SEED, cluster.route()) == []
    before = cluster.gateway.mirrored
    answered = cluster.gateway.send(20, "/catalog")
    assert answered == {"checkout": 20}
    assert cluster.gateway.mirrored == before
    assert cluster.image() == "shop/checkout:1.0"


# -- outcomes ------------------------------------------------------------------------------------


def test_a_good_canary_is_promoted_route_only(cluster: Cluster, demo: Topology) -> None:
    run = gate_run(cluster, contract(cluster, demo))
    assert run.code == 0, run
    assert "promoted" in run.out
    route = cluster.route()
    # The weights are the only change: the canary takes 100 %, the mirror filter and gate's record are gone.
    assert [d[0] for d in field_diff(gw.SEED, route)] == ["spec.rules[1].backendRefs"], field_diff(gw.SEED, route)
    assert LEDGER not in route["metadata"].get("annotations", {})
    before = cluster.gateway.mirrored
    assert cluster.gateway.send(20, "/catalog") == {"checkout-canary": 20}
    assert cluster.gateway.mirrored == before  # no request runs twice
    assert cluster.image() == "shop/checkout:1.0"  # route-only: promoting the Deployment is the user's
    detail = show(cluster, run_id(run))
    assert detail["summary"]["status"] == "promoted"
    assert {s for look in detail["looks"] for s in _sources(look)} >= {"shadow", "production"}


def _sources(look: dict[str, Any]) -> set[str]:
    return {str(v.get("source")) for v in look["verdicts"]}
