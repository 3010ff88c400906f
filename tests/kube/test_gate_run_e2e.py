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
import re
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
from gate.drivers import kube
from gate.drivers.store import RunStore
from tests.drivers.routers import test_gateway_api as gw
from tests.engine.receiver import Receiver, receiver
from tests.kube import test_preflight as pf
from tests.kube import test_promotion as tp
from tests.support.gateway import StandInGateway
from tests.support.kube import RunningKube, as_written, field_diff, serve

GATE = str(Path(sys.executable).with_name("gate"))
USERS_RATE = 40  # production requests per second through the stand-in gateway
WARM_RATE = 4.5  # the 5-minute rate on stable the preflight needs (minEvidence 10 requests in 5 s at 50 %)
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

    def copy(
        self, name: str, method: str, path: str, body: bytes | None, content_type: str | None = None
    ) -> None:
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
def world(
    demo: Topology, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningKube, _CountingGateway]]:
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
def cluster(world: tuple[RunningKube, _CountingGateway], demo: Topology, tmp_path: Path) -> Iterator[Cluster]:
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


def _sources(look: dict[str, Any]) -> set[str]:
    return {str(v.get("source")) for v in look["verdicts"]}


# -- outcomes ------------------------------------------------------------------------------------


def test_a_good_canary_is_promoted_route_only(cluster: Cluster, demo: Topology) -> None:
    run = gate_run(cluster, contract(cluster, demo))
    assert run.code == 0, run
    assert "promoted" in run.out
    route = cluster.route()
    # The weights are the only change: the canary takes 100 %, the mirror filter and gate's record are gone.
    assert [d[0] for d in field_diff(gw.SEED, route)] == ["spec.rules[1].backendRefs"], field_diff(
        gw.SEED, route
    )
    assert LEDGER not in route["metadata"].get("annotations", {})
    before = cluster.gateway.mirrored
    assert cluster.gateway.send(20, "/catalog") == {"checkout-canary": 20}
    assert cluster.gateway.mirrored == before  # no request runs twice
    assert cluster.image() == "shop/checkout:1.0"  # route-only: promoting the Deployment is the user's
    detail = show(cluster, run_id(run))
    assert detail["summary"]["status"] == "promoted"
    assert {s for look in detail["looks"] for s in _sources(look)} >= {"shadow", "production"}


def test_a_good_canary_is_promoted_by_copy(cluster: Cluster, demo: Topology) -> None:
    def deployment_controller(proc: subprocess.Popen[str]) -> None:
        # Play the Deployment controller: once gate has copied the canary's template into the stable
        # Deployment (a new generation), its rollout completes.
        def copied() -> bool:
            stable = cluster.kube.stored(tp.D, "shop", "checkout")
            return stable["metadata"]["generation"] > 1 or proc.poll() is not None

        wait_for(copied, timeout=120)
        cluster.kube.complete_rollout("shop", "checkout")

    run = gate_run(cluster, contract(cluster, demo, mode="copy"), during=deployment_controller)
    assert run.code == 0, run
    assert field_diff(gw.SEED, cluster.route()) == []  # traffic back on stable, the route as written
    assert cluster.image() == "shop/checkout:1.1"  # the stable Deployment runs the canary's version
    assert cluster.kube.stored(tp.D, "shop", "checkout-canary")["spec"]["replicas"] == 0
    before = cluster.gateway.mirrored
    assert cluster.gateway.send(20, "/catalog") == {"checkout": 20}
    assert cluster.gateway.mirrored == before


def test_a_good_canary_is_promoted_through_an_external_gitops_tool(cluster: Cluster, demo: Topology) -> None:
    promoted_by_gitops: dict[str, float] = {}

    def gitops(proc: subprocess.Popen[str]) -> None:
        # Play the GitOps tool and the Deployment controller: once gate holds 100 % on the canary (it
        # waits for the stable Deployment to run the canary's image and never writes it), the tool
        # sets the stable Deployment's image to the canary's; the controller rolls it out.
        def on_canary() -> bool:
            refs = cluster.route()["spec"]["rules"][1]["backendRefs"]
            weights = {r["name"]: int(r.get("weight", 1)) for r in refs}
            return weights.get("checkout-canary") == 100 or proc.poll() is not None

        wait_for(on_canary, timeout=120)
        time.sleep(2)  # gate is waiting for the tool now, and says so
        assert cluster.image() == "shop/checkout:1.0", "external: gate must not write the stable Deployment"
        client = kube.connect(host=cluster.kube.url, timeout=5)  # the tool writes through the API
        ref = kube.ObjectRef(kube.DEPLOYMENT, "shop", "checkout")
        containers = client.get(ref)["spec"]["template"]["spec"]["containers"]
        containers[0]["image"] = "shop/checkout:1.1"  # the image only; the rest as the user wrote it
        client.patch(ref, {"spec": {"template": {"spec": {"containers": containers}}}})
        promoted_by_gitops["at"] = time.time()
        cluster.kube.complete_rollout("shop", "checkout")

    run = gate_run(cluster, contract(cluster, demo, mode="external"), during=gitops)
    assert run.code == 0, run
    assert promoted_by_gitops, "gate ended before the GitOps tool promoted"
    waits = [line for line in run.out.splitlines() if "waiting — " in line]
    assert waits and "shop/checkout:1.1" in waits[0], run  # it said what it was waiting for, once per change
    assert len(waits) == len(set(waits)), waits
    assert field_diff(gw.SEED, cluster.route()) == []  # back on stable (now the new version), as written
    assert cluster.image() == "shop/checkout:1.1"
    assert cluster.kube.stored(tp.D, "shop", "checkout-canary")["spec"]["replicas"] == 1  # left to its owner
    before = cluster.gateway.mirrored
    assert cluster.gateway.send(20, "/catalog") == {"checkout": 20}
    assert cluster.gateway.mirrored == before
    detail = show(cluster, run_id(run))
    assert detail["summary"]["status"] == "promoted"
    assert detail["summary"]["finished_at"] >= promoted_by_gitops["at"]


def test_a_regressed_canary_is_rolled_back(cluster: Cluster, demo: Topology) -> None:
    demo.set_switch("canary", latency_factor=6)
    run = gate_run(cluster, contract(cluster, demo))
    assert run.code == 1, run
    assert "rolled_back" in run.out and "http-latency" in run.out
    assert_clean_rollback(cluster)
    detail = show(cluster, run_id(run))
    assert detail["summary"]["status"] == "rolled_back"
    assert any(look["decision"] == "rollback" for look in detail["looks"])


# -- the error matrix ----------------------------------------------------------------------------

QUICK = "[mirror 100%, analyze 5s, 50%, analyze 5s, 100%]"


def _no_traceback(run: Run) -> None:
    assert "Traceback" not in run.err and "Traceback" not in run.out, run


def _hooks(cluster: Cluster) -> list[str]:
    return [str(body.get("event")) for body in cluster.hooks.bodies("/hooks")]


def _ended_for_good(cluster: Cluster, run: Run, status: str) -> dict[str, Any]:
    detail = show(cluster, run_id(run))
    assert detail["summary"]["status"] == status, detail["summary"]
    # The store is left consistent: no effect intended and not carried out, nobody holds the run.
    assert all(e["done"] for t in detail["timeline"] for e in t["effects"]), detail["timeline"]
    with RunStore(cluster.store) as store:
        assert store.pending_effects(run_id(run)) == []
    return detail


def test_a_route_deleted_mid_run_is_a_permanent_404_and_ends_rollback_failed(
    cluster: Cluster, demo: Topology
) -> None:
    seen: dict[str, int] = {}

    def delete() -> None:
        cluster.kube.delete(gw.R, "shop", "checkout")
        seen["gets"] = cluster.calls("get")

    run = gate_run(cluster, contract(cluster, demo, steps=QUICK), during=after_patches(cluster, 1, delete))
    assert run.code == 6, run
    _no_traceback(run)
    text = run.out + run.err
    assert "cannot get HTTPRoute shop/checkout: 404" in text  # the verb and the object
    assert "create HTTPRoute shop/checkout, or fix its name/namespace in the contract" in text  # the fix
    assert "traffic may still reach the canary" in text
    # Never retried: one get for the weight step, one per part of the one rollback attempt.
    assert cluster.calls("get") - seen["gets"] <= 4
    _ended_for_good(cluster, run, "rollback_failed")
    assert "rollback_failed" in _hooks(cluster)


def test_a_forbidden_patch_is_reported_once_and_ends_rollback_failed(
    cluster: Cluster, demo: Topology
) -> None:
    seen: dict[str, int] = {}

    def deny() -> None:
        cluster.kube.call(lambda: cluster.kube.emulator.deny("patch", "httproutes", group=gw.R.split("/")[0]))
        seen["patches"] = cluster.calls("patch")

    run = gate_run(cluster, contract(cluster, demo, steps=QUICK), during=after_patches(cluster, 1, deny))
    assert run.code == 6, run
    _no_traceback(run)
    text = run.out + run.err
    assert "cannot patch HTTPRoute shop/checkout: 403" in text
    assert "grant gate's identity `patch` on httproutes" in text
    # Never retried: the weight, then one per part of the one rollback attempt (weight, mirror, clean-up).
    assert cluster.calls("patch") - seen["patches"] <= 4
    _ended_for_good(cluster, run, "rollback_failed")
    assert "rollback_failed" in _hooks(cluster)
    # The mirror the run had turned on stays on (nobody may patch the route): said, not hidden.
    assert cluster.route()["spec"]["rules"][1].get("filters") != gw.SEED["spec"]["rules"][1]["filters"]


def test_an_invalid_write_fails_the_run_once_and_rolls_back(cluster: Cluster, demo: Topology) -> None:
    holder: dict[str, Any] = {}

    def refuse() -> None:
        holder["fault"] = cluster.kube.call(
            lambda: cluster.kube.emulator.fail(
                422,
                verb="patch",
                resource="httproutes",
                message="spec.rules[1].backendRefs[1].weight: Invalid",
            )
        )

    run = gate_run(cluster, contract(cluster, demo, steps=QUICK), during=after_patches(cluster, 1, refuse))
    assert run.code == 4, run
    _no_traceback(run)
    assert "cannot patch HTTPRoute shop/checkout: 422" in run.out + run.err
    assert holder["fault"].times == 0  # the refused patch was sent once, not retried
    _ended_for_good(cluster, run, "failed")
    assert_clean_rollback(cluster)


@pytest.mark.parametrize(
    ("status", "retry_after"), [(409, None), (429, 2.0), (503, None)], ids=["409", "429", "503"]
)
def test_a_temporary_error_is_retried_and_the_run_completes(
    cluster: Cluster, demo: Topology, status: int, retry_after: float | None
) -> None:
    holder: dict[str, Any] = {}

    def inject() -> None:
        gets = cluster.calls("get")
        holder["fault"] = cluster.kube.call(
            lambda: cluster.kube.emulator.fail(
                status, verb="patch", resource="httproutes", times=2, retry_after=retry_after
            )
        )
        holder["gets"] = gets

    run = gate_run(cluster, contract(cluster, demo, steps=QUICK), during=after_patches(cluster, 1, inject))
    assert run.code == 0, run
    _no_traceback(run)
    assert holder["fault"].times == 0  # both refusals were met, then the write went through
    waits = [float(w) for w in re.findall(r"trying again in ([0-9.]+)s", run.out + run.err)]
    assert len(waits) >= 2, run  # the wait is shown
    if retry_after is not None:
        assert min(waits) >= retry_after, waits  # the server's Retry-After is honoured
    if status == 409:
        # A conflict re-reads the object before writing again (read-modify-write, not a blind retry).
        assert cluster.calls("get") - holder["gets"] >= 3
    _ended_for_good(cluster, run, "promoted")
    assert cluster.gateway.send(20, "/catalog") == {"checkout-canary": 20}


@pytest.mark.slow
def test_a_frozen_api_server_delays_the_weight_and_no_window_mixes_two_weights(
    cluster: Cluster, demo: Topology
) -> None:
    frozen: dict[str, float] = {}

    def freeze() -> None:
        frozen["at"] = time.time()
        cluster.kube.freeze(30)

    run = gate_run(
        cluster, contract(cluster, demo, steps=QUICK), during=after_patches(cluster, 1, freeze), timeout=240
    )
    assert run.code == 0, run
    _no_traceback(run)
    assert re.search(r"setWeight 50% took effect [0-9.]+s after it was asked", run.out + run.err), run
    with RunStore(cluster.store) as store:
        detail = store.run_detail(run_id(run))
    assert detail is not None
    applied = [
        (t.at, t.state.get("weight")) for t in detail.timeline if t.input_kind == "applied" and t.state
    ]
    [(confirmed, _)] = [(at, w) for at, w in applied if w == 50 and at >= frozen["at"]]
    assert confirmed >= frozen["at"] + 25  # it landed after the thaw, and says so
    late = [
        t.state.get("late")
        for t in detail.timeline
        if t.input_kind == "applied" and t.state.get("weight") == 50
    ]
    assert late and float(late[0]) >= 10
    # Every look of a step after the 50 % weight has its window start at or after its confirmation.
    weight_step = next(
        t.state["step"] for t in detail.timeline if t.input_kind == "applied" and t.at == confirmed
    )
    later = [lk for lk in detail.looks if lk.step >= weight_step]
    assert later, "looks were taken at 50 %"
    assert all(lk.since >= confirmed - 1e-6 for lk in later), [(lk.look, lk.since, confirmed) for lk in later]
    # And no look was taken while the change was on its way (between the ask and the confirmation).
    asked = max(t.at for t in detail.timeline if t.at < confirmed and t.state.get("applying") == "set_weight")
    assert not [lk for lk in detail.looks if asked < lk.at < confirmed]
