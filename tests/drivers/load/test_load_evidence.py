"""Load results as judge evidence, the saturation flag, and plans from contracts."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gate.contract import SliLibrary, parse_contract
from gate.drivers.load import LoadDriver, LoadPlan, LoadTask, PlanError
from gate.drivers.load.result import Aggregator
from gate.judge import JudgePolicy, ObjectiveSpec, Status, judge
from tests.drivers.load.conftest import Services

LATENCY = ObjectiveSpec(
    key="p95", sli="http-latency", quantile=0.95, max=2.0, sources=("synthetic",), unit="seconds"
)
ERRORS = ObjectiveSpec(key="errors", sli="http-error-ratio", max=0.05, sources=("synthetic",), unit="ratio")

BUSY_LOCUSTFILE = """
import time
from locust import FastHttpUser, constant, task

class Busy(FastHttpUser):
    wait_time = constant(0)

    @task
    def spin_then_get(self):
        # A scenario that burns the generator's CPU: the generator, not the service, is the bottleneck.
        end = time.perf_counter() + 0.02
        while time.perf_counter() < end:
            pass
        self.client.get("/")
"""


def batch(node: str, clock: float, cpu: float, busy: float | None = None, n: int = 10) -> dict[str, object]:
    part = {"n": n, "errors": 0, "failures": {}, "us": [1000] * n, "hdr": ""}
    return {
        "type": "batch",
        "node": node,
        "clock": clock,
        "cpu": cpu,
        "busy": busy,
        "users": 1,
        "tracks": {"stable": part, "canary": part},
    }


def test_saturation_is_a_sustained_share_of_a_core_per_generator() -> None:
    plan = LoadPlan(stable_url="http://a", canary_url="http://b", tasks=(LoadTask("x"),))
    agg = Aggregator(plan)
    agg.add({"type": "started", "t": 0.0})
    # Worker a: 50 % of a core throughout, with a one-second spike to 100 %: not sustained.
    # Worker b: 90 % of a core for four seconds: saturated.
    for i, (cpu_a, cpu_b) in enumerate(
        [(0.0, 0.0), (1.0, 0.9), (1.5, 1.8), (2.0, 2.7), (2.5, 3.6), (3.0, 3.7)]
    ):
        agg.add(batch("a", float(i), cpu_a))
        agg.add(batch("b", float(i), cpu_b))
    nodes = agg.node_cpu()
    assert nodes["a"].peak == pytest.approx(2.0 / 3.0)
    assert nodes["b"].peak == pytest.approx(0.9)
    saturated, reason = agg.saturation()
    assert saturated and "load generator b needed 90% of a core" in reason
    assert agg.progress().saturated

    calm = Aggregator(plan)
    for i in range(6):
        calm.add(batch("a", float(i), 0.5 * i))
    assert calm.saturation() == (False, "")

    # A crowded machine: the generator got a third of a core but waited for the rest of it.
    starved = Aggregator(plan)
    for i in range(6):
        starved.add(batch("a", float(i), 0.33 * i, busy=0.99 * i))
    saturated, reason = starved.saturation()
    assert saturated and "needed 99% of a core" in reason and "33% on a CPU" in reason
    assert "66% waiting for a CPU" in reason
    assert starved.node_cpu()["a"].demand == pytest.approx(0.99)


def test_result_becomes_synthetic_evidence_and_passes(services: Services) -> None:
    plan = LoadPlan(
        stable_url=services.urls["stable"],
        canary_url=services.urls["canary"],
        tasks=(LoadTask("home", "/"),),
        users=2,
        spawn_rate=100,
        duration=2,
        think_time=(0.01, 0.02),
    )
    with LoadDriver(plan) as run:
        result = run.result()
    library = SliLibrary.default()
    evidence = result.evidence([LATENCY, ERRORS], library)
    for track in ("stable", "canary"):
        samples = evidence.get("http-latency", "synthetic", track)
        counts = evidence.get("http-error-ratio", "synthetic", track)
        assert samples is not None and samples.kind == "samples"
        assert samples.saturated == result.saturated
        assert len(samples.values) == result.tracks[track].requests
        assert counts is not None and counts.kind == "counts"
        assert counts.total == result.tracks[track].requests and counts.errors == 0
        assert samples.window is not None and samples.window.duration > 1
    assert evidence.get("http-latency", "production", "stable") is None
    j = judge([LATENCY, ERRORS], evidence, JudgePolicy(min_samples=20))
    statuses = {v.objective: v.status for v in j.verdicts}
    # A light load on a calm machine passes; should a crowded test machine starve the generator
    # anyway, the flag must turn the verdict into Inconclusive, never Pass.
    expected = Status.INCONCLUSIVE if result.saturated else Status.PASS
    assert statuses["p95"] == expected, (result.summary(), j.verdicts)
    assert statuses["errors"] != Status.FAIL, j.verdicts


def test_saturated_generator_is_flagged_and_judged_inconclusive(services: Services, tmp_path: Path) -> None:
    locustfile = tmp_path / "busy.py"
    locustfile.write_text(BUSY_LOCUSTFILE)
    plan = LoadPlan(
        stable_url=services.urls["stable"],
        canary_url=services.urls["canary"],
        locustfile=str(locustfile),
        users=2,
        spawn_rate=100,
        duration=2.5,
    )
    with LoadDriver(plan) as run:
        result = run.result()
    assert result.saturated, result.summary()
    assert "load generator local needed" in result.saturation_reason
    # On a crowded machine it may get less than a core, but it needs all of one.
    assert result.generator_demand >= 0.8
    evidence = result.evidence([LATENCY], SliLibrary.default())
    item = evidence.get("http-latency", "synthetic", "canary")
    assert item is not None and item.saturated and "queueing" in item.note
    j = judge([LATENCY], evidence, JudgePolicy(min_samples=5))
    (verdict,) = j.verdicts
    assert verdict.status == Status.INCONCLUSIVE
    assert "saturated" in verdict.reason
    assert j.decision.action != "promote"


CONTRACT = """
apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {name: shop}
spec:
  target:
    stable: {url: "http://127.0.0.1:1"}
    canary: {url: "http://127.0.0.1:2"}
  traffic: {header: X-Origin}
  load:
    users: 7
    spawnRate: 3/s
    duration: 2m
    workers: auto
    tasks:
      - {name: order, weight: 3, post: /orders, json: {sku: A-1}}
      - {name: page, get: "/orders?offset=10"}
      - {name: off, weight: 0, get: /never}
  objectives:
    - {sli: http-latency, quantile: 0.95, max: 220ms}
"""


def test_plan_from_contract(tmp_path: Path) -> None:
    contract = parse_contract(CONTRACT, filename="shop.yaml")
    plan = LoadPlan.from_contract(contract)
    assert (plan.stable_url, plan.canary_url) == ("http://127.0.0.1:1", "http://127.0.0.1:2")
    assert (plan.users, plan.spawn_rate, plan.duration, plan.workers) == (7, 3.0, 120.0, "auto")
    assert plan.header == "X-Origin"
    assert [(t.name, t.method, t.path, t.weight, t.json) for t in plan.tasks] == [
        ("order", "POST", "/orders", 3.0, {"sku": "A-1"}),
        ("page", "GET", "/orders?offset=10", 1.0, None),
    ]
    other = LoadPlan.from_contract(
        contract, stable_url="http://x:1", canary_url="http://y:2", duration=5, workers=2
    )
    assert (other.stable_url, other.canary_url, other.duration, other.worker_count) == (
        "http://x:1",
        "http://y:2",
        5,
        2,
    )
    assert LoadPlan.from_json(plan.to_json()) == plan

    with_file = tmp_path / "c.yaml"
    (tmp_path / "my_locustfile.py").write_text("")
    text = (
        CONTRACT.split("    tasks:", maxsplit=1)[0] + "    locustfile: my_locustfile.py\n  objectives: []\n"
    )
    with_file.write_text(text)
    from gate.contract import load_contract

    plan2 = LoadPlan.from_contract(load_contract(with_file))
    assert plan2.locustfile == str(tmp_path / "my_locustfile.py")


def test_plan_errors_say_what_and_where() -> None:
    with pytest.raises(PlanError, match=r"load.tasks\[0\].path"):
        LoadPlan(stable_url="http://a", canary_url="http://b", tasks=(LoadTask("x", "nope"),))
    with pytest.raises(PlanError, match="canary URL"):
        LoadPlan(stable_url="http://a", canary_url="ftp://b", tasks=(LoadTask("x"),))
    with pytest.raises(PlanError, match="control characters"):
        LoadPlan(
            stable_url="http://a",
            canary_url="http://b",
            tasks=(LoadTask("x", headers={"X-A": "1\r\nX-Traffic-Source: production"}),),
        )
    with pytest.raises(PlanError, match="spaces or control"):
        LoadPlan(stable_url="http://a", canary_url="http://b", tasks=(LoadTask("x", "/a b HTTP/1.1\r\n"),))
    with pytest.raises(PlanError, match="header name"):
        LoadPlan(stable_url="http://a", canary_url="http://b", tasks=(LoadTask("x"),), header="X Bad:")
    with pytest.raises(PlanError, match="no tasks and no locustfile"):
        LoadPlan(stable_url="http://a", canary_url="http://b")
    no_load = parse_contract(textwrap.dedent(CONTRACT.split("  load:", maxsplit=1)[0]) + "  objectives: []\n")
    with pytest.raises(PlanError, match=r"spec\.load"):
        LoadPlan.from_contract(no_load)
