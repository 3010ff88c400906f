"""Experiments gate generates or accepts: valid for chaoslib, built from the contract, refused when wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from chaoslib.exceptions import InvalidActivity
from chaoslib.experiment import ensure_experiment_is_valid

from gate.contract import load_contract
from gate.drivers.chaos import (
    BuiltinFault,
    ChaosDriver,
    ExperimentError,
    ExperimentFile,
    FaultContext,
    FaultLedger,
    HttpFault,
    InlineExperiment,
    builtin_experiment,
    parse_journal,
    spec_from_contract,
    specs_from_contract,
)
from tests.drivers.chaos.conftest import TARGET, Topology

ROOT = Path(__file__).resolve().parents[3]
FAULT = HttpFault("risk-api", delay=0.8, delay_percent=1.0, abort=0.15, abort_status=503)
ISTIO = {
    "istio": {
        "virtual_service": "checkout",
        "namespace": "shop",
        "routes": [{"destination": {"host": "checkout", "subset": "canary"}}],
    }
}


def test_builtin_experiment_for_the_fault_proxy_is_valid_for_chaoslib() -> None:
    experiment = builtin_experiment("slow", FAULT, FaultContext(fault_proxy="http://127.0.0.1:9901"), 60)
    ensure_experiment_is_valid(experiment)
    inject = experiment["method"][0]["provider"]
    assert inject["func"] == "inject_http_fault"
    assert inject["arguments"] == {
        "admin_url": "http://127.0.0.1:9901",
        "target": "risk-api",
        "delay_ms": 800.0,
        "delay_percent": 100.0,
        "abort_status": 503,
        "abort_percent": 15.0,
    }
    assert experiment["method"][-1]["pauses"] == {"after": 60}  # held for the step
    assert [r["provider"]["func"] for r in experiment["rollbacks"]] == ["clear_http_fault"]


def test_builtin_experiment_for_istio_is_valid_for_chaoslib() -> None:
    experiment = builtin_experiment("slow", FAULT, FaultContext.from_mapping(ISTIO), 30)
    ensure_experiment_is_valid(experiment)
    args = experiment["method"][0]["provider"]["arguments"]
    assert experiment["method"][0]["provider"]["module"] == "gate.drivers.chaos.istio"
    assert (args["virtual_service_name"], args["ns"], args["delay_s"], args["abort_percent"]) == (
        "checkout",
        "shop",
        0.8,
        15.0,
    )
    assert experiment["rollbacks"][0]["provider"]["func"] == "clear_istio_fault"


def test_per_target_context_and_missing_context() -> None:
    ctx = FaultContext.from_mapping({"fault_proxy": "http://127.0.0.1:1", "targets": {"risk-api": ISTIO}})
    assert "istio" in builtin_experiment("x", FAULT, ctx, 5)["tags"]
    with pytest.raises(ExperimentError, match="nowhere to inject"):
        builtin_experiment("x", FAULT, FaultContext(), 5)
    with pytest.raises(ExperimentError, match="abortStatus"):
        builtin_experiment("x", HttpFault("t", abort=0.5, abort_status=200), ctx, 5)
    with pytest.raises(ExperimentError, match="held"):
        builtin_experiment("x", FAULT, ctx, 0)


def test_specs_from_the_contract() -> None:
    contract = load_contract(ROOT / "contracts" / "checkout.yaml")
    specs = specs_from_contract(contract)
    assert specs == {"risk-api-slow": BuiltinFault(FAULT)}
    assert spec_from_contract({"experiment": "chaos/x.yaml"}) == ExperimentFile(Path("chaos/x.yaml"))
    assert spec_from_contract({"inline": {"title": "t", "method": []}}) == InlineExperiment(
        {"title": "t", "method": []}
    )
    with pytest.raises(ExperimentError, match="exactly one"):
        spec_from_contract({"fault": {"target": "a", "delay": 1}, "inline": {}})


def test_driver_validates_with_chaoslib_in_a_worker(tmp_path: Path, driver: ChaosDriver) -> None:
    driver.validate("slow", BuiltinFault(FAULT), {"fault_proxy": "http://127.0.0.1:9901"}, duration=10)
    broken = {"title": "t", "description": "d", "method": [{"type": "action", "name": "x"}]}
    with pytest.raises(ExperimentError, match="provider"):
        driver.validate("broken", InlineExperiment(broken))
    with pytest.raises(InvalidActivity, match="provider"):
        ensure_experiment_is_valid(broken)
    path = tmp_path / "exp.json"
    path.write_text(json.dumps({**broken, "method": []}))
    driver.validate("file", ExperimentFile(path))
    with pytest.raises(ExperimentError, match="does not exist"):
        driver.validate("missing", ExperimentFile(tmp_path / "nope.yaml"))


def test_an_invalid_experiment_runs_nothing(driver: ChaosDriver) -> None:
    journal = driver.run("broken", InlineExperiment({"title": "t", "method": []}), duration=30)
    assert journal.status == "invalid" and "description" in (journal.error or "")
    assert journal.method == [] and journal.faults_undone


def test_gate_process_never_imports_chaoslib_or_kubernetes() -> None:
    code = (
        "import sys, gate.drivers.chaos, gate.drivers.chaos.actions, gate.drivers.chaos.istio; "
        "bad = {m for m in sys.modules if m.split('.')[0] in {'chaoslib', 'chaosistio', 'chaosk8s', 'kubernetes'}}; "
        "assert not bad, sorted(bad)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_gate_actions_work_under_plain_chaos_run(tmp_path: Path, topology: Topology) -> None:
    """The documented use outside gate: `chaos run` with a ledger; the journal parses; the fault is gone."""
    where = {"admin_url": topology.admin, "target": TARGET}
    provider = {"type": "python", "module": "gate.drivers.chaos.actions"}
    experiment = {
        "title": "slow risk-api",
        "description": "gate's actions under the chaos CLI",
        "method": [
            {
                "type": "action",
                "name": "slow",
                "provider": {**provider, "func": "inject_http_fault", "arguments": {**where, "delay_ms": 20}},
            }
        ],
        "rollbacks": [
            {
                "type": "action",
                "name": "clear",
                "provider": {**provider, "func": "clear_http_fault", "arguments": where},
            }
        ],
    }
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(experiment))
    ledger = FaultLedger(tmp_path / "faults.jsonl")
    env = {**os.environ, "GATE_FAULT_LEDGER": str(ledger.path), "PYTHONPATH": str(ROOT)}
    chaos = Path(sys.executable).parent / "chaos"
    journal_path = tmp_path / "journal.json"
    subprocess.run(
        [str(chaos), "run", "--rollback-strategy=always", "--journal-path", str(journal_path), str(path)],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    journal = parse_journal(json.loads(journal_path.read_text()))
    assert journal.status == "completed" and journal.method[0].succeeded and journal.rollbacks[0].succeeded
    assert journal.window.fault_start is not None and journal.window.fault_end is not None
    assert [e.cleared_by for e in ledger.entries()] == ["rollback"]
    assert httpx.get(f"{topology.admin}/faults", timeout=5).json()["targets"][TARGET] is None
