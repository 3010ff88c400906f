"""`gate judge EVIDENCE` and `gate schema evidence`: exit codes, words, JSON, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from gate.cli.main import app
from gate.judge.evidence import evidence_json_schema

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]

OBJECTIVES = [
    {
        "sli": "http-latency",
        "quantile": "p95",
        "maxIncrease": "10%",
        "critical": True,
        "sources": ["synthetic"],
    },
    {"sli": "http-error-ratio", "max": "1%", "sources": ["synthetic"]},
]


def _write(tmp_path: Path, stable: np.ndarray, canary: np.ndarray, errors: int = 2) -> Path:
    doc = {
        "objectives": OBJECTIVES,
        "policy": {"confidence": "99%"},
        "slis": {
            "http-latency": {
                "synthetic": {
                    "stable": {"kind": "samples", "values": stable.tolist()},
                    "canary": {"kind": "samples", "values": canary.tolist()},
                }
            },
            "http-error-ratio": {
                "synthetic": {
                    "stable": {"kind": "counts", "errors": 1, "total": int(stable.size)},
                    "canary": {"kind": "counts", "errors": errors, "total": int(canary.size)},
                }
            },
        },
    }
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_regression_exits_1_and_says_why(tmp_path: Path, rng: np.random.Generator) -> None:
    path = _write(tmp_path, rng.lognormal(np.log(0.1), 0.4, 3000), rng.lognormal(np.log(0.14), 0.4, 3000))
    result = runner.invoke(app, ["judge", str(path)])
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "ROLLBACK" in result.output


def test_a_good_canary_with_plenty_of_evidence_exits_0(tmp_path: Path, rng: np.random.Generator) -> None:
    path = _write(
        tmp_path, rng.lognormal(np.log(0.1), 0.3, 60_000), rng.lognormal(np.log(0.1), 0.3, 60_000), 1
    )
    result = runner.invoke(app, ["judge", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["judgement"]["decision"]["action"] == "promote"
    assert {v["status"] for v in payload["judgement"]["verdicts"]} == {"pass"}
    assert payload["evidence"]["http-latency"]["synthetic"]["canary"]["n"] == 60_000


def test_too_little_evidence_exits_3(tmp_path: Path, rng: np.random.Generator) -> None:
    path = _write(tmp_path, rng.lognormal(np.log(0.1), 0.4, 150), rng.lognormal(np.log(0.1), 0.4, 150), 0)
    result = runner.invoke(app, ["judge", str(path)])
    assert result.exit_code == 3, result.output
    assert "HOLD" in result.output


def test_invalid_yaml_exits_2_with_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "objectives:\n  - {sli: http-latency, quantile: p95, max: 200ms}\n"
        "slis:\n  http-latency:\n    synthetic:\n      canary: {kind: counts, errors: 5, totl: 9}\n"
    )
    result = runner.invoke(app, ["judge", str(path)])
    assert result.exit_code == 2
    assert f"{path}:6:" in result.output and "slis.http-latency.synthetic.canary" in result.output


def test_unknown_source_and_missing_objectives_are_invalid(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"slis": {"x": {"prod": {}}}}))
    result = runner.invoke(app, ["judge", str(path)])
    assert result.exit_code == 2 and "prod" in result.output
    path.write_text(json.dumps({"slis": {}}))
    result = runner.invoke(app, ["judge", str(path)])
    assert result.exit_code == 2 and "objectives" in result.output


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["judge", str(tmp_path / "nope.json")])
    assert result.exit_code == 2 and "cannot read" in result.output


def test_schema_evidence_is_printed_and_committed() -> None:
    result = runner.invoke(app, ["schema", "evidence"])
    assert result.exit_code == 0
    printed = json.loads(result.output)
    assert printed == evidence_json_schema()
    committed_text = (ROOT / "docs" / "evidence.schema.json").read_text()
    # The whole file, embedded contract models included: any change to what `gate judge` reads (the
    # evidence or the contract's objective and policy syntax) must come with the regenerated schema.
    hint = "regenerate: gate schema evidence > docs/evidence.schema.json"
    assert json.loads(committed_text) == printed, hint
    assert committed_text.rstrip("\n") == result.output.rstrip("\n"), hint
