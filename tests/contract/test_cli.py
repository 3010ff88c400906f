"""`gate validate`, `gate schema`, `gate explain`: exit codes and what a user reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from gate.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
RUNNER = CliRunner()


def test_validate_examples_exit_zero() -> None:
    result = RUNNER.invoke(app, ["validate", str(ROOT / "contracts")])
    assert result.exit_code == 0, result.stdout
    assert "checkout.yaml: ok" in result.stdout
    assert "orders-api.yaml: skipped" in result.stdout


def test_validate_broken_exits_two_and_prints_every_problem() -> None:
    broken = ROOT / "tests" / "contract" / "broken"
    result = RUNNER.invoke(
        app, ["validate", str(broken / "unknown-step.yaml"), str(ROOT / "contracts" / "checkout.yaml")]
    )
    assert result.exit_code == 2
    lines = [line for line in result.stdout.splitlines() if "unknown-step.yaml:" in line]
    assert len(lines) == 3
    assert lines[0].startswith(f"{broken / 'unknown-step.yaml'}:18:7: spec.steps[1]: ")


def test_validate_missing_file_exits_two(tmp_path: Path) -> None:
    result = RUNNER.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "cannot read" in result.stdout


def test_validate_folder_without_contracts_exits_two(tmp_path: Path) -> None:
    result = RUNNER.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 2


def test_schema_prints_json() -> None:
    result = RUNNER.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["title"] == "PerformanceContract"


def test_explain_shows_steps_objectives_and_queries() -> None:
    result = RUNNER.invoke(app, ["explain", str(ROOT / "contracts" / "checkout.yaml")])
    assert result.exit_code == 0, result.stdout
    out = result.stdout
    assert "send 5% of production traffic to the canary" in out
    assert "hold for 3m" in out
    assert "risk-api-slow" in out
    assert "histogram_quantile(0.95" in out
    assert "canary×shadow" in out
    assert "go-goroutines" in out
    # The policy and the objectives in words a user acts on, not field names.
    flat = " ".join(out.split())  # rich wraps long lines at the terminal's width
    assert "rolls back as soon as a verdict fails" in flat
    assert "holds the canary where it is" in flat
    assert "go-goroutines: go-goroutines no growth — per track (whole process)" in flat
    assert "needs 100 requests and 30s per track and source" in flat
    assert 'namespace="shop"' in out


def test_explain_invalid_contract_exits_two() -> None:
    result = RUNNER.invoke(app, ["explain", str(ROOT / "tests" / "contract" / "broken" / "unknown-sli.yaml")])
    assert result.exit_code == 2
    assert "unknown SLI" in result.stdout


def test_installed_gate_command() -> None:
    gate = Path(sys.executable).parent / "gate"
    broken = ROOT / "tests" / "contract" / "broken" / "weights-go-down.yaml"
    done = subprocess.run(
        [str(gate), "validate", str(broken)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "weight 20% is lower than 50%" in done.stdout
    assert "Traceback" not in done.stderr


def test_validate_warns_of_a_ladder_reaching_100_with_the_mirror_on(tmp_path: Path) -> None:
    path = tmp_path / "mirror.yaml"
    path.write_text(
        """apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {name: checkout}
spec:
  target: {stable: {service: checkout}, canary: {service: checkout-canary}}
  router: {type: gateway-api, httpRoute: checkout}
  prometheus: {url: "http://127.0.0.1:9090"}
  objectives:
    - {sli: http-latency, quantile: 0.95, max: 220ms}
  steps: [mirror 100%, 20%, 100%]
"""
    )
    result = RUNNER.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output  # a warning, not an error
    assert (
        f"{path}: warning: spec.steps[2]: the ladder reaches 100% while the mirror of spec.steps[0] is still on"
        in result.output
    )
    fixed = path.read_text().replace("[mirror 100%, 20%, 100%]", "[mirror 100%, mirror 0%, 20%, 100%]")
    path.write_text(fixed)
    assert "warning: spec.steps" not in RUNNER.invoke(app, ["validate", str(path)]).output
