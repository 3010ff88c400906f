"""How often a good canary's canary-vs-stable verdicts end a demo step undecided, by resampling.

    python -m bench.demo_steps CONTRACT HIST.json [--rps 100] [--weight 20] [--mirror 100]
                               [--seconds 20] [--trials 200] [--seed 1]

CONTRACT is the demo contract (``contracts/local-demo.yaml``: only its objectives and policy are used);
HIST.json is Prometheus' answer to ``sum by (le, track, traffic_source) (increase(
http_request_duration_seconds_bucket{service="checkout"}[3m]))`` at the end of a demo run (start a
Prometheus on the ``prometheus`` directory `gate demo --keep` leaves to ask it).
``bench/data/demo-stable-production-buckets.json`` is that answer's stable × production series from
a good `gate demo` run on 2026-12-07 (7,420 requests). Stable production's bucket counts are the distribution both tracks draw from
(an A/A canary by construction); per trial, canary and stable bucket counts are drawn multinomially at
the requests the step gives (``rps`` × share × ``seconds``), error-free counts beside them, and judged
as the engine's last look of the step judges them (``final``, the recent window's share of alpha
reserved). Printed: per source and check, the side each horizon verdict stopped on; "undecided" at
the horizon is the tolerated-inconclusive case.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from gate.compose.judging import applicable, judge_policy
from gate.contract import load_contract
from gate.judge import Counts, Evidence, Histogram, judge
from gate.judge.pipeline import RecentLook
from gate.judge.spec import objective_spec

UNITS = {"http-latency": "seconds", "http-error-ratio": "ratio"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("contract", type=Path)
    p.add_argument("hist", type=Path)
    p.add_argument("--rps", type=float, default=100.0)
    p.add_argument("--weight", type=float, default=20.0)
    p.add_argument("--mirror", type=float, default=100.0)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    contract = load_contract(a.contract)
    result = json.loads(a.hist.read_text())["data"]["result"]
    rows = [
        r
        for r in result
        if r["metric"]["track"] == "stable" and r["metric"]["traffic_source"] == "production"
    ]
    edges = sorted((float(r["metric"]["le"]), float(r["value"][1])) for r in rows)  # "+Inf" parses as inf
    bounds = [e for e, _ in edges]
    probs = np.clip(np.diff(np.concatenate([[0.0], [c for _, c in edges]])), 0.0, None)
    probs /= probs.sum()
    sources = [s for s, share in (("production", a.weight), ("shadow", a.mirror)) if share > 0]
    specs = []
    for objective, chosen in applicable(contract, sources=sources):
        spec = objective_spec(objective, UNITS.get(objective.sli, ""))
        specs.append(replace(spec, sources=tuple(s for s in spec.sources if s in chosen)))
    policy = judge_policy(contract.spec.policy)
    rng = np.random.default_rng(a.seed)
    n = {
        "canary production": round(a.rps * a.weight / 100 * a.seconds),
        "stable production": round(a.rps * (100 - a.weight) / 100 * a.seconds),
        "canary shadow": round(a.rps * a.mirror / 100 * a.seconds),
    }

    def hist(k: int) -> Histogram:
        return Histogram(bounds=bounds, counts=np.cumsum(rng.multinomial(k, probs)).astype(float).tolist())

    statuses: Counter[tuple[str, str, str]] = Counter()
    sides: Counter[tuple[str, str, str]] = Counter()
    look = max(1, int(a.seconds // contract.spec.policy.interval))
    for _ in range(a.trials):
        stable = hist(n["stable production"])
        latency: dict[str, dict[str, Histogram]] = {}
        errors: dict[str, dict[str, Counts]] = {}
        for source in sources:
            k = n[f"canary {source}"]
            latency[source] = {"stable": stable, "canary": hist(k)}
            errors[source] = {
                "stable": Counts(errors=0, total=n["stable production"]),
                "canary": Counts(errors=0, total=k),
            }
        ev = Evidence.model_construct(slis={"http-latency": latency, "http-error-ratio": errors}, chaos={})
        j = judge(specs, ev, policy, final=True, recent=RecentLook(None, look, 2.0), units=UNITS)
        for v in j.verdicts:
            if "vs-stable" in v.objective:
                statuses[(v.objective, v.source, str(v.status))] += 1
                for c in v.checks:
                    sides[(v.source, c.name, str(c.numbers.get("side")))] += 1
    print(f"requests per track: {n}; {a.trials} trials")
    for key, count in sorted(statuses.items()):
        print(*key, count)
    for key, count in sorted(sides.items()):
        print(*key, count)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
