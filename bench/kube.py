"""What gate's routers cost the Kubernetes API: requests and time per router call.

Against the test emulator (tests/support/kube.py: kmock over real loopback HTTP, the official client),
for each Kubernetes router: the requests (by verb) and the median / p95 wall time of `set_weight`
(first touch and later), `set_mirror`, `finish("promoted")`, `finish("rolled_back")` on a route gate
never touched, and `preflight()` of the cluster part. The times are gate's side plus a loopback
emulator — a floor, not a real API server's latency; the request counts are what a real one sees,
and what `KubeOptions.qps`/`burst` must allow for.

    python -m bench.kube --out docs/benchmarks.md [--rounds 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.report import write_section
from gate.contract import parse_contract
from gate.drivers import kube
from gate.drivers.preflight import preflight
from gate.drivers.routers import router_for
from tests.drivers.routers import test_deployment_router as dep
from tests.drivers.routers import test_gateway_api as gw
from tests.drivers.routers import test_ingress_nginx as ing
from tests.drivers.routers import test_istio as ist
from tests.support.kube import RunningKube, serve

COMMAND = "python -m bench.kube --out docs/benchmarks.md"
HEAD = """apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {name: checkout, namespace: shop}
spec:
  target:
    stable: {service: checkout, deployment: checkout}
    canary: {service: checkout-canary, deployment: checkout-canary}
"""
ROUTERS: dict[str, tuple[str, bool]] = {
    "gateway-api": ("{type: gateway-api, httpRoute: checkout}", True),
    "istio": ("{type: istio, virtualService: checkout, destinationRule: checkout}", True),
    "ingress-nginx": ("{type: ingress-nginx, ingress: checkout}", False),
    "deployment": ("{type: deployment}", False),
}
SERVICE: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "spec": {"ports": [{"port": 8080}]}}


def _seed(k: RunningKube, name: str) -> None:
    for svc in ("checkout", "checkout-canary"):
        k.seed("v1/services", "shop", svc, SERVICE)
    if name == "gateway-api":
        k.seed(gw.R, "shop", "checkout", gw.SEED)
    elif name == "istio":
        k.seed(ist.R, "shop", "checkout", ist.SEED)
    elif name == "ingress-nginx":
        k.seed(ing.R, "shop", "checkout", ing.STABLE)
        if k.exists(ing.R, "shop", "checkout-canary"):
            k.delete(ing.R, "shop", "checkout-canary")
    else:
        k.seed(dep.R, "shop", "checkout", dep.STABLE)
        k.seed(dep.R, "shop", "checkout-canary", dep.CANARY)


def _measure(k: RunningKube, fn: Callable[[], object]) -> tuple[float, Counter[str]]:
    before = len(k.emulator.calls)
    started = time.perf_counter()
    fn()
    took = time.perf_counter() - started
    return took, Counter(c.verb for c in k.emulator.calls[before:])


def _row(name: str, op: str, samples: list[tuple[float, Counter[str]]]) -> str:
    times = sorted(t * 1000 for t, _ in samples)
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    verbs = samples[-1][1]
    calls = ", ".join(f"{n} {v}" for v, n in sorted(verbs.items())) or "none"
    return f"| {name} | `{op}` | {calls} | {statistics.median(times):.1f} | {p95:.1f} |"


def run(rounds: int) -> str:
    rows = []
    for name, (spec, mirrors) in ROUTERS.items():
        # A fresh emulator per router: kmock keeps every request it served, and grows slower with them.
        with serve() as k:
            client = kube.connect(host=k.url, timeout=5, qps=0)
            contract = parse_contract(f"{HEAD}  router: {spec}\n")
            samples: dict[str, list[tuple[float, Counter[str]]]] = {}
            for _ in range(rounds):
                _seed(k, name)
                router = router_for(contract, kube_client=client)
                ops: list[tuple[str, Callable[[], object]]] = [
                    ("set_weight(0) untouched", lambda r=router: r.set_weight(0)),
                    ("finish(rolled_back) untouched", lambda r=router: r.finish("rolled_back")),
                    ("set_weight(20) first", lambda r=router: r.set_weight(20)),
                    ("set_weight(50)", lambda r=router: r.set_weight(50)),
                ]
                if mirrors:
                    ops.append(("set_mirror(100)", lambda r=router: r.set_mirror(100)))
                ops += [
                    ("set_weight(100)", lambda r=router: r.set_weight(100)),
                    ("finish(promoted)", lambda r=router: r.finish("promoted")),
                    ("finish(promoted) again", lambda r=router: r.finish("promoted")),
                    ("preflight (cluster part)", lambda c=contract, kc=client: preflight(c, kube_client=kc)),
                ]
                for op, fn in ops:
                    samples.setdefault(op, []).append(_measure(k, fn))
            rows += [_row(name, op, s) for op, s in samples.items()]
            client.close()
    header = [
        "## Kubernetes API cost of the routers (`python -m bench.kube`)",
        "",
        f"Command: `{COMMAND}` ({rounds} rounds per router; each round on freshly seeded objects).",
        "Against the emulator of `tests/support/kube.py` over loopback HTTP with the official client, on",
        "this 2-core machine shared with other work: the times are a floor (gate's side plus an in-process",
        "emulator that slows as its request history grows), the request counts are what a real API server",
        "receives per call. `preflight` asks one",
        "SelfSubjectAccessReview per verb × resource (the `create` calls) and reads the route and",
        "Services. `untouched`: the object gate never changed — nothing is written.",
        "",
        "| router | call | API requests | median ms | p95 ms |",
        "|---|---|---|---|---|",
    ]
    return "\n".join(header + rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    body = run(args.rounds)
    print(body)
    if args.out is not None:
        write_section(args.out, "bench-kube", body)


if __name__ == "__main__":
    main()
