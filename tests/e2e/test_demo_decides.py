"""`gate demo` (the good scenario, its full ladder) end to end: every step ends on a decision, and the
canary-vs-stable objectives *pass* on synthetic, shadow and production evidence — by proof or, at the
step's horizon, as "no harm shown" with the smallest change the evidence could have detected — never
as an undecided verdict tolerated by the policy's limits. Read back from the run store the dashboard
reads: every recorded verdict says which side it stopped on, with its numbers.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from gate.cli.demo_cmd import run_demo
from gate.drivers.store import RunStore
from gate.drivers.store.records import LookRecord, VerdictRecord

pytestmark = pytest.mark.slow

SIDES = {"harm", "no harm", "no harm at horizon", "undecided", "no evidence", "underpowered"}
STOPPED = {"no harm", "no harm at horizon"}


def _last_look_per_step(looks: list[LookRecord]) -> dict[int, LookRecord]:
    out: dict[int, LookRecord] = {}
    for look in sorted(looks, key=lambda r: r.look):
        out[look.step] = look
    return out


def _assert_stopped_with_numbers(v: VerdictRecord, where: str) -> None:
    n = v.numbers
    assert v.status == "pass", f"{where}: {v.objective}@{v.source} is {v.status}: {v.reason}"
    assert n.get("side") in STOPPED, f"{where}: {v.objective}@{v.source} side {n.get('side')!r}"
    for key in ("difference", "lower", "upper", "tolerance", "n_canary", "n_stable", "confidence"):
        assert isinstance(n.get(key), int | float), f"{where}: {v.objective}@{v.source} lacks {key}: {n}"
    assert n["n_canary"] > 0 and n["n_stable"] > 0
    if n["side"] == "no harm":  # harm ruled out: the whole interval inside the tolerance
        assert n["upper"] <= n["tolerance"] + 1e-9, n
    else:  # at the horizon: no harm shown, with the minimum detectable effect in words and numbers
        assert isinstance(n.get("mde"), float) and n["mde"] >= n["tolerance"], n
        assert "smallest change it could have detected" in v.reason


def test_good_demo_passes_vs_stable_at_every_step_and_says_which_side(tmp_path: Path) -> None:
    out = io.StringIO()
    store_path = str(tmp_path / "runs.db")
    code = run_demo(Console(file=out, width=200), "good", store_path=store_path)
    text = out.getvalue()
    assert code == 0, text
    with RunStore(store_path) as store:
        [run] = store.list_runs()
        detail = store.run_detail(run.id)
    assert detail is not None and run.status == "promoted", text

    # Every recorded verdict of every look says which side it is on (undecided while evidence grows).
    for look in detail.looks:
        for v in look.verdicts:
            assert v.numbers.get("side") in SIDES, f"look {look.look}: {v.objective}@{v.source}: {v.numbers}"

    # No step was let through with a tolerated verdict: each ended on a promote every verdict earned.
    ends = _last_look_per_step(detail.looks)
    assert len(ends) >= 4, sorted(ends)  # load, shadow analysis, chaos, production analysis
    judged: set[str] = set()
    for step, look in ends.items():
        where = f"step {step + 1} (look {look.look})"
        assert look.action == "promote", f"{where}: {look.action}: {look.reason}"
        assert "tolerated" not in look.reason, f"{where}: {look.reason}"
        assert all(v.status == "pass" for v in look.verdicts), f"{where}: {look.reason}"
        for v in look.verdicts:
            if "vs-stable" in v.objective:
                _assert_stopped_with_numbers(v, where)
                judged.add(v.source)
    assert judged == {"synthetic", "shadow", "production"}, judged

    # Nowhere in the run did a promote tolerate an undecided vs-stable verdict.
    for look in detail.looks:
        if look.action == "promote":
            pending = [v for v in look.verdicts if "vs-stable" in v.objective and v.status != "pass"]
            assert not pending, f"look {look.look}: {look.reason}"
