"""Workers as Kubernetes pods: the manifests are valid, and their commands run the same protocol."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from typer.testing import CliRunner

from gate.cli.main import app
from gate.drivers.load import LoadPlan, LoadTask
from gate.drivers.load.kube import MASTER_PORT, job_manifests
from gate.drivers.load.result import aggregate
from tests.drivers.load.conftest import Services
from tests.support.ports import free_port


def manifests(plan: LoadPlan, workers: int = 2) -> dict[str, dict[str, Any]]:
    objs = job_manifests(
        plan, name="shop-load", namespace="shop", image="ghcr.io/example/gate:1", workers=workers
    )
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objs}


def test_manifests_are_valid_kubernetes_objects() -> None:
    plan = LoadPlan(
        stable_url="http://stable.shop:8080", canary_url="http://canary.shop:8080", tasks=(LoadTask("x"),)
    )
    objs = manifests(plan, workers=3)
    assert set(objs) == {
        "ConfigMap/shop-load-plan",
        "Service/shop-load-master",
        "Job/shop-load-master",
        "Job/shop-load-worker",
    }
    for obj in objs.values():
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
    workers = objs["Job/shop-load-worker"]["spec"]
    assert workers["parallelism"] == workers["completions"] == 3
    assert LoadPlan.from_json(objs["ConfigMap/shop-load-plan"]["data"]["plan.json"]) == plan
    master_cmd = objs["Job/shop-load-master"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert master_cmd[-2:] == ["--expect-workers", "3"]
    with pytest.raises(ValueError, match="name"):
        job_manifests(plan, name="Bad_Name", namespace="x", image="i", workers=1)


def test_the_pod_commands_run_the_load_on_this_machine(services: Services, tmp_path: Path) -> None:
    """Run the master and worker containers' exact commands as local processes (loopback for the Service)."""
    plan = LoadPlan(
        stable_url=services.urls["stable"],
        canary_url=services.urls["canary"],
        tasks=(LoadTask("home", "/"),),
        users=2,
        spawn_rate=100,
        duration=2,
        think_time=(0.005, 0.01),
    )
    objs = manifests(plan, workers=2)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(objs["ConfigMap/shop-load-plan"]["data"]["plan.json"])
    port = free_port()

    def local(cmd: list[str]) -> list[str]:
        out = [sys.executable if c == "python" else c for c in cmd]
        out = [str(plan_file) if c.endswith("/plan.json") else c for c in out]
        out = ["127.0.0.1" if c in ("0.0.0.0", "shop-load-master") else c for c in out]
        return [str(port) if c == str(MASTER_PORT) else c for c in out]

    def command(key: str) -> list[str]:
        return local(objs[key]["spec"]["template"]["spec"]["containers"][0]["command"])

    procs: list[subprocess.Popen[bytes]] = []
    try:
        master = subprocess.Popen(
            command("Job/shop-load-master"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        procs.append(master)
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    command("Job/shop-load-worker"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
        out, _ = master.communicate(timeout=60)
        for proc in procs[1:]:
            proc.wait(timeout=30)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    # What gate does with a master pod's log stream: the same records, read line by line.
    result = aggregate(plan, out.splitlines())
    assert result.complete, result.problems
    assert len(result.nodes) == 3
    assert result.tracks["stable"].requests > 10 and result.tracks["canary"].requests > 10
    assert all(p.returncode == 0 for p in procs)

    # What a user does with the master pod's log: `kubectl logs job/NAME-master | gate load C --from-log -`.
    log = tmp_path / "master.log"
    log.write_bytes(b"some log noise\n" + out)
    contract = tmp_path / "shop.yaml"
    contract.write_text(CONTRACT)
    done = CliRunner().invoke(app, ["load", str(contract), "--from-log", str(log), "--format", "json"])
    assert done.exit_code == (3 if result.saturated else 0), done.output
    summary = json.loads(done.stdout)
    assert summary["complete"] and len(summary["nodes"]) == 3
    for track in ("stable", "canary"):
        assert summary["tracks"][track]["requests"] == result.tracks[track].requests


CONTRACT = """
apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {name: shop}
spec:
  target:
    stable: {url: "http://checkout-stable.shop:8080"}
    canary: {url: "http://checkout-canary.shop:8080"}
  load:
    users: 20
    duration: 2m
    workers: auto
    tasks: [{name: home, get: /}]
  objectives:
    - {sli: http-latency, quantile: 0.95, max: 220ms}
"""


def test_gate_load_prints_the_kubernetes_objects(tmp_path: Path) -> None:
    from ruamel.yaml import YAML

    contract = tmp_path / "shop.yaml"
    contract.write_text(CONTRACT)
    args = ["load", str(contract), "--kube", "shop-load", "--namespace", "shop"]
    done = CliRunner().invoke(app, [*args, "--image", "ghcr.io/example/gate:1", "--workers", "4"])
    assert done.exit_code == 0, done.output
    objs = list(YAML(typ="safe").load_all(done.stdout))
    assert [o["kind"] for o in objs] == ["ConfigMap", "Service", "Job", "Job"]
    for obj in objs:
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
    assert objs[3]["spec"]["parallelism"] == 4
    assert LoadPlan.from_json(objs[0]["data"]["plan.json"]).stable_url == "http://checkout-stable.shop:8080"
    # `workers: auto` counts this machine's cores, which says nothing about a cluster; no image, no pods.
    assert CliRunner().invoke(app, [*args, "--image", "i"]).exit_code == 2
    refused = CliRunner().invoke(app, [*args, "--workers", "2"])
    assert refused.exit_code == 2 and "--image" in refused.output
