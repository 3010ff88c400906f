"""Real Locust (in its own processes) against real loopback services, one per track."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gate.drivers.load import LoadDriver, LoadPlan, LoadProgress, LoadTask
from tests.drivers.load.conftest import Services
from tests.support.ports import free_port

TASKS = (
    LoadTask("home", "/", weight=3),
    LoadTask("order", "/orders", method="POST", json={"sku": "A-1", "qty": 1}),
)


def plan_for(services: Services, **kw: object) -> LoadPlan:
    # A little think time keeps the generator well below saturation on a shared 2-core machine.
    args: dict[str, object] = {
        "tasks": TASKS,
        "users": 4,
        "spawn_rate": 100.0,
        "duration": 2.0,
        "think_time": (0.005, 0.01),
    }
    args.update(kw)
    return LoadPlan(stable_url=services.urls["stable"], canary_url=services.urls["canary"], **args)  # type: ignore[arg-type]


def test_gate_process_never_imports_locust() -> None:
    code = "import sys, gate.drivers.load; assert not {'locust', 'gevent'} & set(sys.modules), sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_same_scenario_on_both_tracks_with_the_synthetic_header(services: Services) -> None:
    events: list[LoadProgress] = []
    plan = plan_for(services)
    with LoadDriver(plan) as run:
        events.extend(run.progress())
        result = run.result()

    assert result.complete, result.problems
    stable, canary = result.tracks["stable"], result.tracks["canary"]
    assert stable.requests > 20 and canary.requests > 20
    # Paired: every task goes to both tracks, so counts differ by at most the requests in flight.
    assert abs(stable.requests - canary.requests) <= 8  # 2 x users Locust users
    for track, res in result.tracks.items():
        seen = services.seen(track)
        assert res.errors == 0 and res.failures == {}
        assert len(res.samples) == res.requests == res.histogram.get_total_count()
        assert all(0 < s < 5 for s in res.samples)
        # Every request the service saw carried the synthetic header; the driver saw each answer.
        assert set(seen["sources"]) == {"synthetic"}
        # Requests in flight when the run stops reach the server unrecorded: at most one per Locust user.
        assert res.requests <= seen["requests"] <= res.requests + 8
        assert seen["methods"].keys() == {"GET", "POST"}
        assert seen["bodies"] == {'{"sku": "A-1", "qty": 1}': seen["paths"]["/orders"]}
        q = res.quantile(0.99)
        assert q is not None and q >= (res.quantile(0.5) or 0)
    assert events and events[-1].tracks["stable"].requests == stable.requests
    # The generator's own accounting is there (whether a crowded test machine starved it or not).
    assert 0 < result.nodes["local"].peak <= result.nodes["local"].demand
    assert result.saturated == (result.generator_demand >= plan.saturation_cpu)
    assert set(result.nodes) == {"local"}


def test_failures_by_kind_and_custom_header(make_services) -> None:  # type: ignore[no-untyped-def]
    services = make_services(canary=("--status", "503"))
    plan = plan_for(services, header="X-Load-Kind", header_value="bench", duration=1.5)
    with LoadDriver(plan) as run:
        result = run.result()
    stable, canary = result.tracks["stable"], result.tracks["canary"]
    assert stable.errors == 0 and stable.requests > 0
    assert canary.errors == canary.requests > 0
    assert canary.failures == {"HTTP 503": canary.requests}
    assert canary.error_ratio == 1.0
    # An error answer still has a latency.
    assert len(canary.samples) == canary.requests
    assert services.seen("stable")["sources"] == {"": services.seen("stable")["requests"]}


def test_unreachable_canary_counts_connection_failures_without_latency(services: Services) -> None:
    plan = LoadPlan(
        stable_url=services.urls["stable"],
        canary_url=f"http://127.0.0.1:{free_port()}",
        tasks=TASKS,
        users=2,
        spawn_rate=100,
        duration=1.5,
    )
    with LoadDriver(plan) as run:
        result = run.result()
    canary = result.tracks["canary"]
    assert canary.requests > 0 and canary.errors == canary.requests
    assert set(canary.failures) == {"ConnectionRefusedError"}
    assert canary.samples == [] and canary.quantile(0.95) is None
    assert result.tracks["stable"].errors == 0


def test_master_and_workers(services: Services) -> None:
    with LoadDriver(plan_for(services, workers=2, users=6, duration=2.0)) as run:
        result = run.result()
    assert result.complete, result.problems
    assert "master" in result.nodes and len(result.nodes) == 3
    stable, canary = result.tracks["stable"], result.tracks["canary"]
    assert stable.requests > 20 and abs(stable.requests - canary.requests) <= 12
    for track in ("stable", "canary"):
        assert set(services.seen(track)["sources"]) == {"synthetic"}


def test_user_locustfile_runs_on_both_tracks_with_header(services: Services, tmp_path: Path) -> None:
    locustfile = tmp_path / "mylocust.py"
    locustfile.write_text(
        textwrap.dedent(
            """
            from locust import FastHttpUser, HttpUser, constant, task

            class Shopper(FastHttpUser):
                wait_time = constant(0.01)

                @task
                def browse(self):
                    self.client.get("/shop", headers={"X-Mine": "1"})

            class Legacy(HttpUser):
                wait_time = constant(0.01)

                @task
                def old(self):
                    self.client.get("/legacy")
            """
        )
    )
    plan = LoadPlan(
        stable_url=services.urls["stable"],
        canary_url=services.urls["canary"],
        locustfile=str(locustfile),
        users=4,
        spawn_rate=100,
        duration=2,
    )
    with LoadDriver(plan) as run:
        result = run.result()
    assert result.complete, result.problems
    for track in ("stable", "canary"):
        seen = services.seen(track)
        assert set(seen["sources"]) == {"synthetic"}
        # Both user classes ran on both tracks (users split evenly across tracks).
        assert seen["paths"].keys() == {"/shop", "/legacy"}
        assert result.tracks[track].requests > 5
        assert result.tracks[track].requests <= seen["requests"]


def test_stop_early_keeps_a_valid_partial_result(services: Services) -> None:
    with LoadDriver(plan_for(services, duration=60)) as run:
        for event in run.progress():
            if event.tracks["stable"].requests > 0:
                run.stop()
                break
        result = run.result(timeout=20)
    assert result.duration < 30
    assert result.tracks["stable"].requests > 0
    assert not any(p for p in result.problems if "exited" in p)


def test_broken_locustfile_is_a_problem_not_a_hang(services: Services, tmp_path: Path) -> None:
    locustfile = tmp_path / "broken.py"
    locustfile.write_text("import no_such_module_here\n")
    plan = LoadPlan(
        stable_url=services.urls["stable"],
        canary_url=services.urls["canary"],
        locustfile=str(locustfile),
        duration=30,
    )
    with LoadDriver(plan) as run:
        result = run.result(timeout=30)
    assert not result.complete
    assert result.problems and "no_such_module_here" in result.problems[0]
    assert result.tracks["stable"].requests == 0


GATE_THAT_DIES = """
import sys, time
from gate.drivers.load import LoadDriver, LoadPlan, LoadTask
plan = LoadPlan(stable_url=sys.argv[1], canary_url=sys.argv[2], tasks=(LoadTask("home", "/"),),
                users=2, spawn_rate=100, duration=120, workers=int(sys.argv[3]), think_time=(0.01, 0.02))
run = LoadDriver(plan).start()
next(iter(run.progress()))
print(" ".join(map(str, run.pids)), flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_load_stops_when_gate_is_killed(services: Services, workers: int) -> None:
    gate = subprocess.Popen(
        [
            sys.executable,
            "-c",
            GATE_THAT_DIES,
            services.urls["stable"],
            services.urls["canary"],
            str(workers),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert gate.stdout is not None
        pids = [int(p) for p in gate.stdout.readline().split()]
        assert len(pids) == (1 if workers == 1 else 1 + workers)
        gate.kill()  # SIGKILL: gate cannot clean up; its Locust processes must notice by themselves
        gate.wait(timeout=10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            time.sleep(0.1)
        assert not any(alive(p) for p in pids)
    finally:
        if gate.poll() is None:
            gate.kill()
            gate.wait()
        for pid in pids if "pids" in locals() else []:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] not in ("Z", "X")
    except OSError:
        return False
