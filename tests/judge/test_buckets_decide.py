"""Bucket evidence as a cluster gives it: a regression is never promoted, whatever the policy's limits.

The case of issue 14: prometheus_client's default buckets, 6,000 requests per track, objectives
p95 ≤ stable +10 % and error ratio ≤ 1 % (0.5 % errors on both tracks). The edges around the p95 are
2.5× apart, so no method can prove the p95 within +10 % from these buckets; that inconclusive must
count as insufficient (never tolerated by `inconclusiveLimit`), and a large regression must fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gate.cli.main import app

runner = CliRunner()

DEFAULT_BUCKETS = [
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    float("inf"),
]
N = 6000


def _cumulative(values: np.ndarray, bounds: list[float]) -> list[float]:
    return [float(np.sum(values <= b)) for b in bounds]


def _document(rng: np.random.Generator, factor: float, bounds: list[float]) -> dict[str, object]:
    stable = rng.lognormal(np.log(0.08), 0.4, N)  # median in (75, 100] ms, p95 in (100, 250] ms
    canary = rng.lognormal(np.log(0.08), 0.4, N) * factor
    errors = int(0.005 * N)
    hist = {"kind": "histogram", "bounds": [b if b != float("inf") else "Infinity" for b in bounds]}
    return {
        "objectives": [
            {"sli": "http-latency", "quantile": "p95", "maxIncrease": "10%", "sources": ["production"]},
            {"sli": "http-error-ratio", "max": "1%", "sources": ["production"]},
        ],
        "policy": {"confidence": "99%"},
        "slis": {
            "http-latency": {
                "production": {
                    "stable": {**hist, "counts": _cumulative(stable, bounds)},
                    "canary": {**hist, "counts": _cumulative(canary, bounds)},
                }
            },
            "http-error-ratio": {
                "production": {
                    "stable": {"kind": "counts", "errors": errors, "total": N},
                    "canary": {"kind": "counts", "errors": errors, "total": N},
                }
            },
        },
    }


def _judge(tmp_path: Path, doc: dict[str, object]) -> tuple[int, dict[str, object]]:
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(doc))
    result = runner.invoke(app, ["judge", str(path), "--final", "--format", "json"])
    return result.exit_code, json.loads(result.output)


@pytest.mark.parametrize("factor", [1.25, 1.5, 2.0])
def test_a_regression_on_default_buckets_is_never_promoted(
    tmp_path: Path, rng: np.random.Generator, factor: float
) -> None:
    code, out = _judge(tmp_path, _document(rng, factor, DEFAULT_BUCKETS))
    decision = out["judgement"]["decision"]  # type: ignore[index]
    assert decision["action"] != "promote", decision
    assert code != 0


def test_an_unresolvable_inconclusive_says_why_and_is_insufficient(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    code, out = _judge(tmp_path, _document(rng, 1.0, DEFAULT_BUCKETS))
    judgement = out["judgement"]  # type: ignore[index]
    latency = next(v for v in judgement["verdicts"] if v["sli"] == "http-latency")
    assert latency["status"] == "inconclusive"
    assert latency["insufficient"] is True
    assert "cannot resolve" in latency["reason"]
    assert judgement["decision"]["action"] == "hold"
    assert "cannot resolve" in judgement["decision"]["reason"]
    assert code == 3
