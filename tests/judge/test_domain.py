"""Evidence outside its domain is refused, never judged (issue 14 item 6).

In a file (`gate judge`): invalid input, exit 2, with the field path. From a driver (models built
without validation, as the load and Prometheus drivers may): unusable evidence, Inconclusive with the
reason. Arbitrary floats never give a Pass on garbage, nor an exception.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gate.cli.main import app
from gate.judge import Counts, Evidence, Histogram, ObjectiveSpec, Samples, Status, judge

runner = CliRunner()
GOOD = [0.1 + 0.001 * i for i in range(200)]


def _doc(canary: dict[str, object]) -> str:
    return json.dumps(
        {
            "objectives": [
                {"sli": "http-latency", "quantile": "p95", "maxIncrease": "10%", "sources": ["synthetic"]}
            ],
            "slis": {
                "http-latency": {
                    "synthetic": {"stable": {"kind": "samples", "values": GOOD}, "canary": canary}
                }
            },
        }
    )


@pytest.mark.parametrize(
    ("canary", "where"),
    [
        ({"kind": "samples", "values": [*GOOD[:10], -1.0, *GOOD[10:]]}, "values[10] is -1.0"),
        ({"kind": "samples", "values": [1e308] * 50}, "values[0] is 1e+308"),
        ({"kind": "histogram", "bounds": [0.1, "Infinity"], "counts": [-5, 10]}, "counts[0] is -5.0"),
        ({"kind": "histogram", "bounds": [0.1, "Infinity"], "counts": [5, 1e300]}, "counts[1]"),
    ],
)
def test_a_file_with_values_outside_the_domain_is_invalid_input(
    tmp_path: Path, canary: dict[str, object], where: str
) -> None:
    path = tmp_path / "evidence.json"
    path.write_text(_doc(canary))
    result = runner.invoke(app, ["judge", str(path)])
    assert result.exit_code == 2, result.output
    assert "slis.http-latency.synthetic.canary" in result.output
    assert where in result.output


def test_nan_in_a_json_file_is_invalid_input(tmp_path: Path) -> None:
    path = tmp_path / "evidence.json"
    path.write_text(_doc({"kind": "samples", "values": [0.1, float("nan")]}))  # json.dumps writes NaN
    result = runner.invoke(app, ["judge", str(path)])
    assert result.exit_code == 2 and "values[1] is nan" in result.output


def test_negative_counts_in_counts_evidence_are_invalid() -> None:
    with pytest.raises(ValueError, match="must be finite"):
        Counts(errors=1, total=math.inf)


OBJECTIVES = [
    ObjectiveSpec(
        key="p95", sli="latency", quantile=0.95, max=0.5, max_increase=0.1, sources=("production",)
    ),
    ObjectiveSpec(key="errors", sli="errors", max=0.01, max_increase=0.2, sources=("production",)),
]
anything = st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def garbage_histograms(draw: st.DrawFn) -> Histogram:
    k = draw(st.integers(min_value=1, max_value=6))
    edges = sorted(set(draw(st.lists(st.floats(min_value=0.001, max_value=10.0), min_size=k, max_size=k))))
    counts = draw(st.lists(anything, min_size=len(edges) + 1, max_size=len(edges) + 1))
    return Histogram.model_construct(bounds=[*edges, math.inf], counts=counts, kind="histogram")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stable=st.lists(st.floats(min_value=0.01, max_value=1.0), min_size=30, max_size=60).map(
        Samples.from_array
    ),
    canary=st.one_of(
        st.lists(anything, min_size=1, max_size=80).map(Samples.from_array), garbage_histograms()
    ),
    errors=st.tuples(anything, anything),
)
def test_arbitrary_floats_from_a_driver_never_pass_as_garbage_nor_raise(stable, canary, errors) -> None:  # type: ignore[no-untyped-def]
    bad_errors = Counts.model_construct(errors=errors[0], total=errors[1], kind="counts")
    ev = Evidence.model_construct(
        slis={
            "latency": {"production": {"stable": stable, "canary": canary}},
            "errors": {"production": {"stable": Counts(errors=1, total=1000), "canary": bad_errors}},
        },
        chaos={},
    )
    for final in (False, True):
        j = judge(OBJECTIVES, ev, final=final)
        for v in j.verdicts:
            assert v.status != Status.ERROR, v.reason
            if v.sli == "latency":
                values = canary.values if isinstance(canary, Samples) else canary.counts
                garbage = any(not math.isfinite(x) or x < 0 or abs(x) > 1e12 for x in values)
                if garbage:
                    assert v.status == Status.INCONCLUSIVE and v.insufficient, v.reason
            if v.sli == "errors":
                e, t = errors
                garbage = not (math.isfinite(e) and math.isfinite(t) and 0 <= e <= t <= 1e12)
                if garbage:
                    assert v.status == Status.INCONCLUSIVE and v.insufficient, v.reason
        j.model_dump_json()
