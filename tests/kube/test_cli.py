"""`gate preflight`, `gate runs`, `gate runs show`, `gate abort`, `gate approve` as a user types them:
the real CLI (typer's runner) against the emulator via a kubeconfig, a real Prometheus, and real
run stores (SQLite files)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gate.cli.main import app
from gate.drivers.store import LookWrite, RunStore
from tests.drivers.routers import test_gateway_api as gw
from tests.kube import test_preflight as pf
from tests.support.kube import RunningKube
from tests.support.prom import T0, OpenMetrics, backfilled_prometheus, latency_points

runner = CliRunner()


@pytest.fixture(scope="module")
def prom_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Live-looking data: the series end "now", so the CLI's queries (evaluated at the current time) see them.
    import time

    start = int(time.time()) - 500
    om = OpenMetrics()
    for track, rps in (("stable", 10), ("canary", 1)):
        om.histogram(
            "http_request_duration_seconds",
            {"track": track, "traffic_source": "production"},
            pf.BOUNDS,
            latency_points(pf.BOUNDS, [0.04] * rps, start, 480),
        )
    with backfilled_prometheus(om.text(), tmp_path_factory.mktemp("prom")) as server:
        yield server.url


def _write(tmp_path: Path, prom: str, route: str = "checkout") -> Path:
    path = tmp_path / f"contract-{route}.yaml"
    path.write_text(pf.contract_text(prom, route=route))
    return path


@pytest.fixture
def kubeconfig(kube_api: RunningKube, tmp_path: Path) -> Path:
    kube_api.seed(gw.R, "shop", "checkout", gw.SEED)
    kube_api.seed("v1/services", "shop", "checkout", pf.SERVICE)
    kube_api.seed("v1/services", "shop", "checkout-canary", pf.SERVICE)
    return kube_api.kubeconfig(tmp_path / "kubeconfig", context="emu")


def test_preflight_ready_and_not_ready(kubeconfig: Path, tmp_path: Path, prom_url: str) -> None:
    ok = runner.invoke(
        app,
        ["preflight", str(_write(tmp_path, prom_url)), "--kubeconfig", str(kubeconfig), "--context", "emu"],
    )
    assert ok.exit_code == 0, ok.output
    assert "ready to roll out" in ok.output
    bad = runner.invoke(
        app,
        [
            "preflight",
            str(_write(tmp_path, prom_url, route="nope")),
            "--kubeconfig",
            str(kubeconfig),
            "--json",
        ],
    )
    assert bad.exit_code == 1, bad.output
    report = json.loads(bad.output)
    assert not report["ready"]
    assert [p["subject"] for p in report["problems"]] == ["HTTPRoute shop/nope"]


def test_preflight_invalid_contract_and_no_cluster(
    tmp_path: Path, prom_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "apiVersion: perfgate.dev/v1alpha1\nkind: PerformanceContract\nmetadata: {name: x}\nspec: {}\n"
    )
    assert runner.invoke(app, ["preflight", str(broken)]).exit_code == 2
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    result = runner.invoke(app, ["preflight", str(_write(tmp_path, prom_url))])
    assert result.exit_code == 1
    assert "--kubeconfig" in result.output and "Traceback" not in result.output


def _store(tmp_path: Path) -> tuple[str, list[str]]:
    url = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    ids = []
    with RunStore(url) as s:
        for i, (name, status) in enumerate(
            [("checkout", "promoted"), ("orders", "rolled_back"), ("checkout", "running")]
        ):
            phase = "running" if status == "running" else "finished"
            rid = s.create_run(
                contract_name=name,
                plan={"steps": [{"kind": "setWeight", "weight": 20}, {"kind": "analyze"}]},
                state={"status": "running", "phase": "pending"},
                at=T0 + i,
                service=name,
                run_id=f"run-{i}",
            )
            s.checkpoint(
                rid,
                seq=1,
                at=T0 + i + 1,
                input={"kind": "start", "at": T0 + i + 1},
                state={
                    "status": status,
                    "phase": phase,
                    "step": 1,
                    "weight": 20,
                    "reason": f"{status} because of the p95",
                },
                effects=[{"kind": "set_weight", "percent": 20}],
            )
            s.effect_done(
                rid,
                1,
                0,
                at=T0 + i + 2,
                look=LookWrite(
                    look=1,
                    step=1,
                    at=T0 + i + 40,
                    since=T0 + i + 10,
                    action="promote" if status != "rolled_back" else "rollback",
                    reason="every objective held",
                    evidence={"basis": "evidence"},
                    verdicts=[
                        {
                            "objective": "http-latency-p95",
                            "sli": "http-latency",
                            "source": "production",
                            "status": "pass",
                            "reason": "p95 41 ms ≤ 300 ms",
                            "numbers": {"p95": 0.041},
                        }
                    ],
                ),
            )
            ids.append(rid)
    return url, ids


def test_runs_list_filter_and_page(tmp_path: Path) -> None:
    url, ids = _store(tmp_path)
    listed = runner.invoke(app, ["runs", "--store", url])
    assert listed.exit_code == 0, listed.output
    assert all(i in listed.output for i in ids)
    only = runner.invoke(
        app, ["runs", "--store", url, "--contract", "checkout", "--status", "promoted", "--json"]
    )
    assert [r["id"] for r in json.loads(only.output)["runs"]] == ["run-0"]
    paged = json.loads(
        runner.invoke(app, ["runs", "--store", url, "--limit", "2", "--page", "2", "--json"]).output
    )
    assert paged["total"] == 3 and [r["id"] for r in paged["runs"]] == ["run-0"]  # newest first


def test_runs_from_gate_store_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = _store(tmp_path)
    monkeypatch.setenv("GATE_STORE", url)
    assert "run-2" in runner.invoke(app, ["runs"]).output


def test_runs_show(tmp_path: Path) -> None:
    url, _ = _store(tmp_path)
    shown = runner.invoke(app, ["runs", "show", "run-1", "--store", url])
    assert shown.exit_code == 0, shown.output
    for words in (
        "rolled_back",
        "timeline",
        "set_weight",
        "decisions",
        "rollback",
        "basis",
        "http-latency-p95",
        "p95 41 ms",
    ):
        assert words in shown.output
    as_json = json.loads(runner.invoke(app, ["runs", "show", "run-1", "--store", url, "--json"]).output)
    assert as_json["looks"][0]["verdicts"][0]["status"] == "pass"
    missing = runner.invoke(app, ["runs", "show", "nope", "--store", url])
    assert missing.exit_code == 3


def test_abort_and_approve_go_through_the_inbox_and_are_audited(tmp_path: Path) -> None:
    url, _ = _store(tmp_path)
    done = runner.invoke(app, ["abort", "run-2", "--reason", "p99 spikes on the dashboard", "--store", url])
    assert done.exit_code == 0, done.output
    with RunStore(url) as s:
        queued = s.next_input("run-2")
        assert queued is not None and queued[1]["kind"] == "abort" and queued[1]["by"].endswith("@cli")
        [audit] = s.audit("run-2")
        assert audit.action == "abort" and audit.reason == "p99 spikes on the dashboard"
    assert runner.invoke(app, ["approve", "run-2", "--store", url]).exit_code == 0
    finished = runner.invoke(app, ["abort", "run-0", "--store", url])
    assert finished.exit_code == 3 and "already finished" in finished.output
    assert runner.invoke(app, ["approve", "nope", "--store", url]).exit_code == 3


def test_a_bad_store_url_is_invalid_input(tmp_path: Path) -> None:
    result = runner.invoke(app, ["runs", "--store", "mysql://x"])
    assert result.exit_code == 2, result.output
