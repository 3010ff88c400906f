"""Server time of the dashboard's pages on big stores.

    python -m bench.dashboard --out docs/benchmarks.md [--looks 10000] [--runs 10000] [--repeat 15]

Builds two SQLite stores the way the engine writes them (same tables, same JSON documents): one run
with ``--looks`` looks (each with a tick transition carrying its Measure effect, a judged transition,
ten verdicts — 4 objectives over 3 sources — and an evidence summary of 3 SLIs × 3 sources × 2
tracks), and ``--runs`` finished runs. The fixture rows go in through the store's own ORM classes in
one transaction (the engine's fsync per commit would make set-up take minutes; reading is the
subject). Then it asks the real app, in-process over ASGI, for the run page, the run's JSON and the
runs list, and reports the server time per request: the first request (nothing cached) and the
median / p95 of the next ``--repeat`` (the dashboard caches a run's view until its next transition).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from bench.report import write_section
from gate.dashboard.app import create_app
from gate.dashboard.settings import DashboardSettings
from gate.drivers import store as st
from gate.drivers.store import models as m

TARGET_RUN_MS = 300
TARGET_LIST_MS = 200
OBJECTIVES = [
    ("http-latency-p95", "http-latency", ("synthetic", "shadow", "production")),
    ("http-latency-p95-vs-stable", "http-latency", ("synthetic", "shadow", "production")),
    ("http-error-ratio", "http-error-ratio", ("synthetic", "shadow")),
    ("demo-tasks", "demo-tasks", ("synthetic", "production")),
]
PLAN = {
    "steps": [
        {"kind": "load", "weight": None, "percent": None, "duration": 20.0, "experiment": None},
        {"kind": "mirror", "weight": None, "percent": 100, "duration": None, "experiment": None},
        {"kind": "setWeight", "weight": 50, "percent": None, "duration": None, "experiment": None},
        {"kind": "analyze", "weight": None, "percent": None, "duration": 20000.0, "experiment": None},
        {"kind": "setWeight", "weight": 100, "percent": None, "duration": None, "experiment": None},
    ],
    "policy": {"interval": 2.0},
}


def _evidence(rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sli in ("http-latency", "http-error-ratio", "demo-tasks"):
        for source in ("synthetic", "shadow", "production"):
            for track in ("stable", "canary"):
                if sli == "http-latency":
                    row: dict[str, Any] = {
                        "n": rng.randint(500, 3000),
                        "p50": 0.026 + rng.random() * 0.002,
                        "p95": 0.09 + rng.random() * 0.01,
                        "p99": 0.3 + rng.random() * 0.05,
                    }
                elif sli == "http-error-ratio":
                    row = {"n": rng.randint(500, 3000), "errors": 0, "ratio": 0.0}
                else:
                    row = {"n": 20, "level": 3.0, "last": 3.0}
                out.setdefault(sli, {}).setdefault(source, {})[track] = {
                    **row,
                    "usable": True,
                    "problems": "",
                }
    return out


def _verdict_numbers(objective: str, rng: random.Random) -> dict[str, Any]:
    if objective == "http-latency-p95":
        c = 0.09 + rng.random() * 0.01
        return {
            "check": "bound",
            "quantile": 0.95,
            "canary": c,
            "lower": c - 0.01,
            "upper": c + 0.01,
            "n_canary": 1500,
            "confidence": 0.9975,
            "max": 0.22,
            "min": None,
        }
    if objective == "http-latency-p95-vs-stable":
        return {
            "check": "location",
            "difference": -0.02,
            "lower": -0.08,
            "upper": 0.04,
            "tolerance": 0.1,
            "statistic": -1.2,
            "boundary": 4.03,
            "n_canary": 1500,
            "n_stable": 1500,
        }
    if objective == "http-error-ratio":
        return {"check": "bound", "canary": 0.0, "lower": 0.0, "upper": 0.004, "n_canary": 1500, "max": 0.01}
    return {"check": "trend", "slope": 0.0, "lower": 0.0, "upper": 0.0, "level": 3.0}


def build_big_run(path: Path, looks: int) -> str:
    rng = random.Random(1)
    with st.RunStore(path) as store:
        t0 = time.time() - looks * 2.0
        state = {
            "phase": "stepping",
            "status": "running",
            "step": 3,
            "weight": 50,
            "step_started_at": [t0, t0 + 20, t0 + 20, t0 + 20],
        }
        rid = store.create_run(
            contract_name="checkout",
            service="checkout",
            plan=PLAN,
            state=state,
            at=t0,
            meta={"face": "bench"},
            run_id="bench-big-run",
        )
        with store._session(write=True) as s:  # fixture rows in one transaction (see the module docstring)
            seq = 0
            for i in range(1, looks + 1):
                at = t0 + 20 + i * 2.0
                seq += 1
                s.add(
                    m.Transition(
                        run_id=rid,
                        seq=seq,
                        at=at,
                        input_kind="tick",
                        input={"kind": "tick", "at": at},
                        state=state,
                        inbox_id=None,
                        recorded_at=at,
                    )
                )
                s.add(
                    m.Effect(
                        run_id=rid,
                        seq=seq,
                        idx=0,
                        kind="measure",
                        done=True,
                        ok=True,
                        attempts=1,
                        done_at=at,
                        effect={"kind": "measure", "look": i, "step": 3, "since": t0 + 20, "at": at},
                    )
                )
                s.add(
                    m.Look(
                        run_id=rid,
                        look=i,
                        seq=seq,
                        step=3,
                        at=at,
                        since=t0 + 20,
                        action="hold",
                        reason="10 of 10 verdicts pass",
                        evidence=_evidence(rng),
                    )
                )
                for objective, sli, sources in OBJECTIVES:
                    for source in sources:
                        s.add(
                            m.Verdict(
                                run_id=rid,
                                look=i,
                                objective=objective,
                                sli=sli,
                                source=source,
                                status="pass",
                                reason=f"{objective} within bound",
                                numbers=_verdict_numbers(objective, rng),
                            )
                        )
                seq += 1
                s.add(
                    m.Transition(
                        run_id=rid,
                        seq=seq,
                        at=at + 0.3,
                        input_kind="judged",
                        input={
                            "kind": "judged",
                            "at": at + 0.3,
                            "look": i,
                            "action": "hold",
                            "reason": "10 of 10 verdicts pass",
                        },
                        state=state,
                        inbox_id=None,
                        recorded_at=at + 0.3,
                    )
                )
            run = s.get(m.Run, rid)
            assert run is not None
            run.last_seq = seq
    return rid


def build_many_runs(path: Path, runs: int) -> None:
    with st.RunStore(path) as store, store._session(write=True) as s:
        t0 = time.time() - runs * 60.0
        for i in range(runs):
            status = ("promoted", "rolled_back", "failed")[i % 3]
            at = t0 + i * 60.0
            s.add(
                m.Run(
                    id=f"run-{i:06d}",
                    contract_name=f"contract-{i % 25}",
                    service="checkout",
                    contract_text="",
                    namespace=f"team-{i % 4}",
                    face="bench",
                    steps=5,
                    plan=PLAN,
                    meta={"face": "bench"},
                    state={"phase": "finished", "status": status},
                    status=status,
                    phase="finished",
                    step=5,
                    weight=100 if status == "promoted" else 0,
                    reason="every step passed",
                    last_seq=40,
                    created_at=at,
                    updated_at=at + 50,
                    finished_at=at + 50,
                )
            )


def timed(client: TestClient, url: str, repeat: int, *, cold: bool) -> tuple[float, float, float, float, int]:
    """(first request of the process, median, p95) server time in ms, and the response size.

    ``cold``: the dashboard's view cache is emptied before every request (the run is read and its
    view computed each time, as for a run that just moved); otherwise repeats hit the cache."""
    times = []
    cpu = []
    size = 0
    cache = client.app.state.gate.cache  # type: ignore[attr-defined]
    for _ in range(repeat + 1):
        if cold:
            cache._items.clear()
        start, start_cpu = time.perf_counter(), time.process_time()
        resp = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
        assert resp.status_code == 200, (url, resp.status_code, resp.text[:300])
        size = len(resp.content)
    rest = sorted(times[1:])
    p95 = rest[min(len(rest) - 1, round(0.95 * (len(rest) - 1)))]
    return times[0], statistics.median(rest), p95, statistics.median(cpu[1:]), size


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--looks", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--keep", type=Path, default=None, help="build the stores here once and reuse them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gate-bench-dashboard-") as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        big, many = where / f"big-{args.looks}.sqlite", where / f"many-{args.runs}.sqlite"
        t = time.perf_counter()
        rid = "bench-big-run"
        if not big.exists():
            build_big_run(big, args.looks)
        if not many.exists():
            build_many_runs(many, args.runs)
        setup = time.perf_counter() - t
        rows = []
        with TestClient(
            create_app(DashboardSettings(store=f"sqlite:///{big}", dashboard_public_read=True))
        ) as c:
            n = f"{args.looks:,} looks"
            rows.append(
                (
                    "run page `/runs/{id}`, uncached",
                    n,
                    *timed(c, f"/runs/{rid}", args.repeat, cold=True),
                    TARGET_RUN_MS,
                )
            )
            rows.append(
                (
                    "run page `/runs/{id}`, cached",
                    n,
                    *timed(c, f"/runs/{rid}", args.repeat, cold=False),
                    TARGET_RUN_MS,
                )
            )
            rows.append(
                (
                    "run JSON `/api/v1/runs/{id}`, uncached",
                    n,
                    *timed(c, f"/api/v1/runs/{rid}", args.repeat, cold=True),
                    None,
                )
            )
        with TestClient(
            create_app(DashboardSettings(store=f"sqlite:///{many}", dashboard_public_read=True))
        ) as c:
            n = f"{args.runs:,} runs"
            rows.append(("runs list `/`", n, *timed(c, "/", args.repeat, cold=True), TARGET_LIST_MS))
            rows.append(
                (
                    "runs list filtered, page 100 `/?status=promoted&offset=4950`",
                    n,
                    *timed(c, "/?status=promoted&offset=4950", args.repeat, cold=True),
                    TARGET_LIST_MS,
                )
            )
            rows.append(
                ("runs JSON `/api/v1/runs`", n, *timed(c, "/api/v1/runs", args.repeat, cold=True), None)
            )
    lines = [
        "## Dashboard: server time (`make bench-dashboard`)",
        "",
        f"Command: `python -m bench.dashboard --out docs/benchmarks.md --looks {args.looks} --runs {args.runs} "
        f"--repeat {args.repeat}{' --keep DIR' if args.keep else ''}` (SQLite store, schema as the store "
        f"package creates it; the app in-process over ASGI; 2 cores shared with other sessions). "
        + (f"Fixture set-up {setup:.1f} s." if setup > 1 else "Stores built by an earlier run with --keep."),
        "",
        "The first column is the process's first request (tables reflected, templates compiled); median and p95",
        "are over the next requests. *Uncached*: the view cache is emptied before each request (the run read",
        "and its view computed again, as for a run that has just moved); *cached*: a run that has not moved.",
        "",
        "CPU ms is this process's CPU time per request (median): what the request costs when the two",
        "cores are not shared with seven other sessions, as they were during these runs.",
        "",
        "| request | store | first request ms | median ms | p95 ms | CPU ms | bytes | target (median and p95) |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, store, first, median, p95, cpu, size, target in rows:
        verdict = (
            ""
            if target is None
            else (
                f"≤ {target} ms: "
                + (
                    "met"
                    if max(first, p95) <= target
                    else ("met when cached" if p95 <= target else "**missed**")
                )
            )
        )
        lines.append(
            f"| {name} | {store} | {first:.0f} | {median:.0f} | {p95:.0f} | {cpu:.0f} | {size:,} | {verdict} |"
        )
    body = "\n".join(lines)
    print(body)
    if args.out:
        write_section(args.out, "bench-dashboard", body)


if __name__ == "__main__":
    main()
