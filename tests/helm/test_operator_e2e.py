"""The chart's default install, end to end: `helm template` → `kubectl apply` to the emulated API server
→ the image's entry point (`gate` + the rendered Deployment's args and env) as a local process → the
chart's example PerformanceGate, applied with kubectl, goes from created to Promoted (a good canary)
or to RolledBack (the demo's regressed canary) against a real Prometheus scraping the demo's loopback
services; the HTTPRoute's weights moved (rolled back: the route as the user wrote it), Events posted.

The emulator enforces the rendered RBAC: a request with the operator's ServiceAccount token is allowed
only when a (Cluster)RoleBinding of that ServiceAccount grants it, else 403 (and recorded). So the test
also proves the rendered Role is enough for a whole run.

The in-cluster ServiceAccount (token file + KUBERNETES_SERVICE_HOST) cannot exist here; it is mapped to
a kubeconfig (the KUBECONFIG variable) whose user is the ServiceAccount's token, the API server being
the emulator. Paths under /var/lib/gate and HOME move under the test's temporary folder; the probes
bind 127.0.0.1 on a free port instead of 0.0.0.0:8080. Nothing else of the rendered env is retyped."""

from __future__ import annotations

import contextvars
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import aiohttp.web
import kmock
import pytest
import yaml

from gate.demo.contract import contract_source, demo_contract_data, keep_sources
from gate.demo.topology import Topology, TopologyConfig
from tests.helm import kubecalls, tools
from tests.helm.conftest import CHART, Render, by_kind, one
from tests.helm.test_apply import ALL_VERBS, EXTRA
from tests.operator.emulator import Emulator, EmulatorThread
from tests.support.kube import Call, _verb
from tests.support.ports import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SA_TOKEN, ADMIN_TOKEN = "gate-operator-sa-token", "admin-token"
_subject: contextvars.ContextVar[str] = contextvars.ContextVar("subject", default="")


class RbacEmulator(Emulator):
    """The operator's emulator; requests with SA_TOKEN are held to ``grants`` (namespace None:
    cluster-wide), every refusal recorded in ``refused``."""

    grants: ClassVar[set[tuple[str | None, str, str, str]]] = set()
    refused: ClassVar[list[Call]] = []

    async def _handle(self, request: Any) -> aiohttp.web.StreamResponse:
        _subject.set(str(request.headers.get("Authorization", "")).removeprefix("Bearer "))
        res = request.resource
        if _subject.get() == SA_TOKEN and res is not None and res.plural is not None:
            verb, group = _verb(request), res.group or ""
            resource = res.plural + (f"/{request.subresource}" if request.subresource else "")
            ns = request.namespace
            if not any((g_ns is None or g_ns == ns) and t == (group, resource, verb)
                       for g_ns, *rest in self.grants for t in [tuple(rest)]):  # fmt: skip
                self.refused.append(
                    Call(
                        verb,
                        group,
                        res.version or "",
                        res.plural,
                        ns,
                        request.name,
                        request.subresource,
                        "",
                        None,
                    )
                )
                return self._error(
                    403, "Forbidden", f"{verb} {group}/{resource} in {ns}: not granted by the chart"
                )
        return await super()._handle(request)


class RbacEmulatorThread(EmulatorThread):
    async def _serve(self) -> None:
        try:
            self._stop = __import__("asyncio").Event()
            async with RbacEmulator() as k, kmock.Server(k, host="127.0.0.1") as srv:
                self.emulator = k
                self.url = str(srv.url).rstrip("/")
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._error = exc
            self._ready.set()


def _sa_grants(docs: list[dict[str, Any]], sa: str, sa_ns: str) -> set[tuple[str | None, str, str, str]]:
    """What the rendered bindings grant the ServiceAccount: (namespace or None, group, resource, verb)."""
    roles = {("ClusterRole", d["metadata"]["name"], None): d for d in by_kind(docs, "ClusterRole")}
    roles |= {("Role", d["metadata"]["name"], d["metadata"]["namespace"]): d for d in by_kind(docs, "Role")}
    out: set[tuple[str | None, str, str, str]] = set()
    for b in by_kind(docs, "ClusterRoleBinding") + by_kind(docs, "RoleBinding"):
        if not any(s["kind"] == "ServiceAccount" and s["name"] == sa and s["namespace"] == sa_ns
                   for s in b["subjects"]):  # fmt: skip
            continue
        where = b["metadata"].get("namespace") if b["kind"] == "RoleBinding" else None
        ref = b["roleRef"]
        role = roles[(ref["kind"], ref["name"], where if ref["kind"] == "Role" else None)]
        out |= {(where, *t) for t in kubecalls.rules_triples(role["rules"])}
    return out


def _kubeconfig(path: Path, server: str, token: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))  # fmt: skip
    return path


def _kubectl(config: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(["kubectl", "--kubeconfig", str(config), *args], input=stdin,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


@pytest.fixture(params=["good", "regression"])
def topology(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Topology]:
    topo = Topology(TopologyConfig(scenario=request.param, workdir=tmp_path / "demo", users_rate=50, seed=7))
    with topo.start():
        yield topo
    assert topo.pids() == {}


def _example_gate(topology: Topology) -> dict[str, Any]:
    """charts/gate/examples/gates/checkout.yaml (kind, name, namespace, router, targets' Deployments
    and Services kept) pointed at the loopback topology, with the demo's SLIs and short steps."""
    gate = yaml.safe_load((CHART / "examples" / "gates" / "checkout.yaml").read_text())
    data = demo_contract_data(contract_source(), stable_url=topology.stable_url, canary_url=topology.canary_url,
                              router_port=topology.ports["router"], prometheus_url=topology.prometheus_url,
                              quick=True)  # fmt: skip
    spec: dict[str, Any] = json.loads(json.dumps(data["spec"]))
    example = gate["spec"]
    spec["router"] = example["router"]
    for track in ("stable", "canary"):
        spec["target"][track]["deployment"] = example["target"][track]["deployment"]
        spec["target"][track]["service"] = f"checkout-{track}"
    spec["load"]["duration"] = "15s"
    spec["steps"] = ["load 15s", "50%", "analyze 20s", "100%"]
    spec.pop("chaos", None)
    spec["objectives"] = [o for o in spec["objectives"] if not o.get("during")]
    keep_sources(spec, {"synthetic"})  # the emulated route moves no real traffic to the canary
    for objective in spec["objectives"]:
        objective.setdefault("sources", ["synthetic"])
    gate["spec"] = spec
    out: dict[str, Any] = gate
    return out


def test_default_install_takes_the_example_gate_to_its_outcome(
    render: Render, topology: Topology, tmp_path: Path
) -> None:
    """good: Promoted, every verdict passing, canary at 100 %; regression: RolledBack on the evidence
    with a failing verdict, the route back as written (stable only). Either way the chart's RBAC
    refused nothing."""
    expected = "Promoted" if topology.config.scenario == "good" else "RolledBack"
    docs = render()
    container = one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    sa = one(docs, "ServiceAccount")["metadata"]
    grants = _sa_grants(docs, sa["name"], sa["namespace"])
    assert grants, "the chart binds nothing to its ServiceAccount"
    em_thread = RbacEmulatorThread().start()
    proc: subprocess.Popen[bytes] | None = None
    try:
        em = em_thread.emulator
        assert isinstance(em, RbacEmulator)

        def register() -> None:
            RbacEmulator.grants, RbacEmulator.refused = grants, []
            for key, (kind, namespaced) in EXTRA.items():
                em.resources[key] = kmock.ResourceInfo(
                    kind=kind, singular=kind.lower(), namespaced=namespaced, verbs=ALL_VERBS,
                    subresources={"status"} if kind == "PerformanceGate" else set(),
                )  # fmt: skip
            em.resources["apiextensions.k8s.io/v1/customresourcedefinitions"].verbs = ALL_VERBS

        em_thread.call(register)
        admin = _kubeconfig(tmp_path / "admin.kubeconfig", em_thread.url, ADMIN_TOKEN)
        _kubectl(admin, "apply", "--validate=false", "-f", "-", stdin=yaml.safe_dump_all(docs))
        world: list[dict[str, Any]] = [
            {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "checkout", "namespace": "shop"},
             "spec": {"rules": [{"backendRefs": [{"name": "checkout-stable", "port": 8080, "weight": 100}]}]}},
            *({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"checkout-{t}", "namespace": "shop"},
               "spec": {"ports": [{"port": 8080}]}} for t in ("stable", "canary")),
            *({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": n, "namespace": "shop"},
               "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "app", "image": i}]}}}}
              for n, i in (("checkout", "checkout:1"), ("checkout-canary", "checkout:2"))),
        ]  # fmt: skip
        _kubectl(admin, "apply", "--validate=false", "-f", "-", stdin=yaml.safe_dump_all(world))

        # The entry point with the rendered args and env (see the module's docstring for the mapping).
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GATE_", "KUBE"))}
        for e in container["env"]:
            if "value" in e:
                env[e["name"]] = str(e["value"]).replace("/var/lib/gate", str(tmp_path))
        # values prometheus.url (the cluster's Prometheus, which overrides a gate's own URL as a flag
        # would) is the loopback one here
        assert env.get("GATE_PROMETHEUS_URL"), "the chart sets the operator's Prometheus"
        env["GATE_PROMETHEUS_URL"] = topology.prometheus_url
        env["HOME"] = str(tmp_path)
        env["GATE_OPERATOR_PROBE_HOST"], env["GATE_OPERATOR_PROBE_PORT"] = "127.0.0.1", str(port)
        env["KUBECONFIG"] = str(_kubeconfig(tmp_path / "sa.kubeconfig", em_thread.url, SA_TOKEN))
        for mount in container["volumeMounts"]:  # the emptyDir and PVC mounts
            if mount["mountPath"].startswith("/var/lib/gate"):
                Path(mount["mountPath"].replace("/var/lib/gate", str(tmp_path))).mkdir(
                    parents=True, exist_ok=True
                )
        log = tmp_path / "operator.log"
        entry = tools.ROOT / ".venv" / "bin" / "gate"
        proc = subprocess.Popen([str(entry), *container["args"]], env=env, cwd=tmp_path,
                                stdout=log.open("wb"), stderr=subprocess.STDOUT)  # fmt: skip

        def tail() -> str:
            return "\n".join(log.read_text(errors="replace").splitlines()[-40:])

        gate = _example_gate(topology)
        _kubectl(admin, "apply", "--validate=false", "-f", "-", stdin=yaml.safe_dump(gate))
        deadline, status = time.monotonic() + 200, dict[str, Any]()
        while time.monotonic() < deadline and proc.poll() is None:
            got = json.loads(
                _kubectl(admin, "-n", "shop", "get", "performancegate", "checkout", "-o", "json")
            )
            status = dict(got.get("status") or {})
            if status.get("phase") in ("Promoted", "RolledBack", "Failed", "Invalid"):
                break
            time.sleep(1)
        assert status.get("phase") == expected, f"{json.dumps(status, indent=1)}\n{tail()}"
        assert status["lastDecision"]["basis"] == "evidence"
        verdicts = status["lastDecision"]["verdicts"]
        route = json.loads(_kubectl(admin, "-n", "shop", "get", "httproute", "checkout", "-o", "json"))
        weights = {r["name"]: int(r.get("weight", 0)) for r in route["spec"]["rules"][0]["backendRefs"]}
        events = json.loads(_kubectl(admin, "-n", "shop", "get", "events", "-o", "json"))["items"]
        reasons = {e["reason"] for e in events if e["involvedObject"]["name"] == "checkout"}
        if expected == "Promoted":
            assert all(v["status"] == "pass" for v in verdicts), status["lastDecision"]
            assert weights.get("checkout-canary") == 100 and weights.get("checkout-stable", 0) == 0, weights
            assert {"Started", "WeightChanged", "Promoted"} <= reasons, reasons
        else:
            assert any(v["status"] == "fail" for v in verdicts), status["lastDecision"]
            assert route["spec"]["rules"] == world[0]["spec"]["rules"], route["spec"]  # as written
            assert not any(k.startswith("perfgate.dev/") for k in route["metadata"].get("annotations") or {})
            assert {"Started", "RolledBack"} <= reasons, reasons
            rolled = [
                e for e in events if e["involvedObject"]["name"] == "checkout" and e["reason"] == "RolledBack"
            ]
            assert any(ch.isdigit() for ch in rolled[-1]["message"]), rolled[-1]  # with the numbers
        assert em.refused == [], f"the chart's RBAC refused the operator: {em.refused}\n{tail()}"
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        em_thread.stop()
