"""One judging path for every face: `gate judge`, `gate check` and `gate run` give the same verdicts.

The engine's adapter is the judge's own (`gate.judge.spec`): the policy's tolerance applies, and an
objective with only `maxDecrease` is judged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from typer.testing import CliRunner

from gate.cli.main import app
from gate.compose.analysis import ContractAnalyst
from gate.compose.judging import judge_look, judge_policy, objective_spec
from gate.contract import SliLibrary, parse_contract
from gate.drivers.chaos import ChaosWindow
from gate.drivers.prometheus import recovery_key
from gate.engine.runner import LookRequest
from gate.judge import Evidence, GaugeSeries, Status, Window

OBJECTIVES: list[dict[str, Any]] = [
    {"key": "p95", "sli": "http-latency", "quantile": "p95", "maxIncrease": "10%", "sources": ["synthetic"]},
    {
        "key": "faster-is-suspicious",
        "sli": "http-latency",
        "quantile": "p50",
        "maxDecrease": "20%",
        "sources": ["synthetic"],
    },
    {"key": "errors", "sli": "http-error-ratio", "max": "5%", "sources": ["synthetic"]},
]
# recentWindow 0: the rollout path judges exactly what `gate check` and `gate judge` do (no alpha split).
POLICY: dict[str, Any] = {"confidence": "99%", "tolerance": "25%", "recentWindow": 0}

CONTRACT = f"""\
apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {{name: one-path}}
spec:
  service: checkout
  target:
    stable: {{url: http://stable:8080}}
    canary: {{url: http://canary:8080}}
  router: {{type: nginx, port: 8080}}
  prometheus: {{url: "http://prometheus:9090", scrapeInterval: 1s}}
  load: {{users: 2, duration: 10s, tasks: [{{name: home, get: /}}]}}
  objectives: {json.dumps(OBJECTIVES)}
  steps: [10%, analyze 1m, 100%]
  policy: {json.dumps(POLICY)}
"""


def _slis(canary_factor: float) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    stable = rng.lognormal(np.log(0.1), 0.3, 4000)
    canary = rng.lognormal(np.log(0.1 * canary_factor), 0.3, 4000)
    window = {"start": 1000.0, "end": 1060.0}
    return {
        "http-latency": {
            "synthetic": {
                "stable": {"kind": "samples", "values": stable.tolist(), "window": window},
                "canary": {"kind": "samples", "values": canary.tolist(), "window": window},
            }
        },
        "http-error-ratio": {
            "synthetic": {
                "stable": {"kind": "counts", "errors": 2, "total": 4000, "window": window},
                "canary": {"kind": "counts", "errors": 3, "total": 4000, "window": window},
            }
        },
    }


def test_the_engine_adapter_is_the_judges_own() -> None:
    contract = parse_contract(CONTRACT)
    library = SliLibrary.default()
    assert judge_policy(contract.spec.policy).tolerance == 0.25
    floor = objective_spec(contract.spec.objectives[1], library)
    assert floor.max_decrease == 0.2 and floor.max_increase is None and floor.unit == "seconds"


def _three_faces(tmp_path: Path, canary_factor: float) -> list[list[tuple[str, str, str, str]]]:
    contract = parse_contract(CONTRACT)
    library = SliLibrary.default()
    slis = _slis(canary_factor)
    evidence = Evidence.model_validate({"slis": slis})
    # gate check and gate run (the analyst of a rollout) both judge through gate.compose.judging.
    in_check = judge_look(contract, library, evidence, sources=["synthetic"], final=True)
    assert in_check is not None
    analyst = ContractAnalyst(contract, library, None, extra_evidence=lambda _s, _e: evidence)
    in_rollout = analyst.look(LookRequest(1, 0, 1000.0, 1060.0, None, ("synthetic",), True))
    # gate judge reads the same objectives and policy, in the contract's syntax, from an evidence file.
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps({"objectives": OBJECTIVES, "policy": POLICY, "slis": slis}))
    result = CliRunner().invoke(app, ["judge", str(path), "--format", "json"])
    assert result.exit_code in (0, 1, 3), result.output
    in_judge = json.loads(result.stdout)
    return [
        [(v.objective, v.source, v.status.value, v.reason) for v in in_check.verdicts],
        [(v["objective"], v["source"], v["status"], v["reason"]) for v in in_rollout.verdicts],
        [(v["objective"], v["source"], v["status"], v["reason"]) for v in in_judge["judgement"]["verdicts"]],
    ]


def test_a_change_within_the_policys_tolerance_passes_the_same_everywhere(tmp_path: Path) -> None:
    # 15 % slower: beyond maxIncrease 10 %, within the policy's tolerance of 25 %, which applies.
    check, run, judged = _three_faces(tmp_path, 1.15)
    assert check == run == judged
    status = {obj: st for obj, _src, st, _why in check}
    assert status["p95"] != Status.FAIL.value, check
    assert status["faster-is-suspicious"] == Status.PASS.value


def test_a_maxdecrease_only_objective_fails_the_same_everywhere(tmp_path: Path) -> None:
    # Twice as fast: beyond maxDecrease 20 % (and the 25 % tolerance): suspicious (e.g. skipped work).
    check, run, judged = _three_faces(tmp_path, 0.5)
    assert check == run == judged
    status = {obj: (st, why) for obj, _src, st, why in check}
    assert status["faster-is-suspicious"][0] == Status.FAIL.value, status
    assert "lower" in status["faster-is-suspicious"][1]


RECOVERY_CONTRACT = """\
apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {name: breaker}
spec:
  service: checkout
  target:
    stable: {url: http://stable:8080}
    canary: {url: http://canary:8080}
  router: {type: nginx, port: 8080}
  prometheus: {url: "http://prometheus:9090", scrapeInterval: 1s}
  chaos:
    risk-api-slow: {fault: {target: risk-api, delay: 3s}}
  objectives:
    - {sli: http-latency, quantile: p99, max: 2.1s, during: risk-api-slow, recoverWithin: 30s,
       sources: [production], minEvidence: {duration: 1s}}
  steps: [10%, {chaos: risk-api-slow, for: 1m}, 100%]
"""


def test_a_rollout_look_judges_recovery_from_the_running_experiments_fault_window() -> None:
    # `gate run`: the analyst asks the chaos runner for the live fault window (fault in place since
    # 1010, not undone yet) and judges p99 per step filed under the objective's recovery key.
    contract = parse_contract(RECOVERY_CONTRACT, filename="<test>")
    library = SliLibrary.default()
    key = recovery_key(contract.spec.objectives[0])
    points = [(1000.0 + t, 2.8 if 10 <= t < 22 else 0.3) for t in range(0, 61, 2)]
    evidence = Evidence(
        slis={
            key: {"production": {"canary": GaugeSeries(points=points, window=Window(start=1000, end=1060))}}
        }
    )
    windows = {"risk-api-slow": ChaosWindow(fault_start=1010.0)}
    analyst = ContractAnalyst(
        contract, library, None, extra_evidence=lambda _s, _e: evidence, chaos_window=windows.get
    )
    request = LookRequest(3, 1, 1000.0, 1060.0, "risk-api-slow", ("production",), True)
    outcome = analyst.look(request)
    [verdict] = outcome.verdicts
    assert verdict["status"] == "pass", verdict
    assert verdict["numbers"]["recovery_time"] == 12.0
    assert "p99 back under 2.1 s 12 s after the fault started (bound 30 s)" in verdict["reason"]
    # Without the fault window (no chaos driver) the same evidence is never a pass.
    blind = ContractAnalyst(contract, library, None, extra_evidence=lambda _s, _e: evidence)
    assert blind.look(request).verdicts[0]["status"] == "inconclusive"
