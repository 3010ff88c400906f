"""Run store benchmark: checkpoints, the dashboard's queries at 10,000 runs and 10,000 looks, leases.

    python -m bench.store --out docs/benchmarks.md [--runs 10000] [--looks 10000] [--repeat 50]

On both back ends: an SQLite file in a temporary directory on the disk (WAL, synchronous=FULL, as gate
runs it) and a real PostgreSQL 15 started on loopback (Debian's binaries, as in the tests; fsync off as
in the test fixture, so PostgreSQL commit figures are a floor, not what a production disk gives).

Measured, as wall time of this process per call (median and p95 of --repeat calls):
- one checkpoint + its effect's completion (the engine's write-ahead pair), in a store holding no
  diagnostics and again in one holding 40 diagnostics of 4 MiB (the blobs must not slow it);
- ``list_runs`` (a page of 50) and ``count_runs`` over --runs runs: unfiltered, by status, by contract,
  by namespace, and deep (offset 5,000);
- ``looks`` of a run with --looks looks of 4 verdicts each: all, the last page of 100 (live updates),
  ``run_detail`` of that run, ``run_summary``;
- ``acquire_lease`` (renewal) and a fenced checkpoint.
The stores are filled with bulk inserts (not timed).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from bench.report import write_section
from gate.drivers.store import LookWrite, RunStore
from gate.drivers.store import models as m

STATE = {"phase": "stepping", "status": "running", "step": 2, "weight": 20, "reason": "holding at 20 %"}
EVIDENCE = {"canary": {"production": {"n": 4000, "p95": 0.181}}, "stable": {"production": {"n": 39000}}}


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    fn()  # warm: connections, statement caches
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


def fill(store: RunStore, runs: int, looks: int) -> str:
    plan = {"steps": [{"kind": "setWeight", "weight": w} for w in (5, 20, 50, 100)]}
    rows = [
        {
            "id": f"run-{i:06d}",
            "contract_name": f"contract-{i % 50}",
            "service": f"svc-{i % 50}",
            "namespace": f"ns-{i % 20}",
            "face": "operator" if i % 3 else "cli",
            "contract_text": "spec:\n" + "  x: y\n" * 300,
            "plan": plan,
            "steps": 4,
            "meta": {"face": "operator"},
            "state": STATE,
            "status": ("promoted", "rolled_back", "running", "held")[i % 4],
            "phase": "finished" if i % 4 < 2 else "stepping",
            "step": 2,
            "weight": 20,
            "reason": "r",
            "last_seq": 0,
            "created_at": 1_700_000_000.0 + i,
            "updated_at": 1_700_000_000.0 + i,
            "finished_at": None,
        }
        for i in range(runs)
    ]
    big = "run-big"
    rows.append({**rows[0], "id": big, "created_at": 1_800_000_000.0, "status": "running"})
    with store._writer.begin() as conn:
        conn.execute(insert(m.Run), rows)
        conn.execute(
            insert(m.Look),
            [
                {
                    "run_id": big,
                    "look": n,
                    "seq": n,
                    "step": 2,
                    "at": float(n),
                    "since": 0.0,
                    "action": "hold",
                    "reason": "not enough evidence yet",
                    "evidence": EVIDENCE,
                }
                for n in range(1, looks + 1)
            ],
        )
        conn.execute(
            insert(m.Verdict),
            [
                {
                    "run_id": big,
                    "look": n,
                    "objective": f"objective-{o}",
                    "sli": "http-latency",
                    "source": ("synthetic", "shadow", "production", "production")[o],
                    "status": "inconclusive",
                    "reason": "the interval still straddles the bound",
                    "numbers": {"diff": 0.01, "low": -0.02, "high": 0.04, "n": 4000},
                }
                for n in range(1, looks + 1)
                for o in range(4)
            ],
        )
    return big


def checkpoint_pair(store: RunStore, run: str, holder: str | None = None) -> Callable[[], None]:
    seq = [store.last_seq(run)]

    def pair() -> None:
        seq[0] += 1
        store.checkpoint(
            run,
            seq=seq[0],
            at=float(seq[0]),
            input={"kind": "tick"},
            state=STATE,
            effects=[{"kind": "measure"}],
            holder=holder,
        )
        look = LookWrite(seq[0], 2, float(seq[0]), 0.0, "hold", "wait", EVIDENCE, [])
        store.effect_done(run, seq[0], 0, at=float(seq[0]), look=look, holder=holder)

    return pair


def measure(store: RunStore, runs: int, looks: int, repeat: int) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    lone = store.create_run(contract_name="bench", plan={"steps": []}, state=STATE, at=1.0)
    out["checkpoint + effect_done"] = timed(checkpoint_pair(store, lone), repeat)
    blob = b"\x00" * (4 * 1024 * 1024)
    for i in range(40):
        store.record_diagnostic(
            lone, name=f"heap-{i}", url="http://canary/debug/pprof/heap", at=1.0, data=blob
        )
    out["checkpoint + effect_done, 160 MiB of diagnostics stored"] = timed(
        checkpoint_pair(store, lone), repeat
    )
    big = fill(store, runs, looks)
    out[f"list_runs(limit=50), {runs:,} runs"] = timed(lambda: store.list_runs(limit=50), repeat)
    out["list_runs(status='held', limit=50)"] = timed(
        lambda: store.list_runs(status="held", limit=50), repeat
    )
    out["list_runs(contract=…, limit=50)"] = timed(
        lambda: store.list_runs(contract="contract-7", limit=50), repeat
    )
    out["list_runs(namespace=…, face=…, limit=50)"] = timed(
        lambda: store.list_runs(namespace="ns-3", face="operator", limit=50), repeat
    )
    out["list_runs(limit=50, offset=5000)"] = timed(lambda: store.list_runs(limit=50, offset=5000), repeat)
    out["count_runs()"] = timed(store.count_runs, repeat)
    out["count_runs(status='held')"] = timed(lambda: store.count_runs(status="held"), repeat)
    few = max(3, repeat // 10)
    out[f"looks(run), {looks:,} looks × 4 verdicts"] = timed(lambda: store.looks(big), few)
    out[f"looks(run, with_verdicts=False), {looks:,} looks"] = timed(
        lambda: store.looks(big, with_verdicts=False), few
    )
    out["looks(run, after_look=N-100) (live update)"] = timed(
        lambda: store.looks(big, after_look=looks - 100), repeat
    )
    out["looks(run, limit=100) (first page)"] = timed(lambda: store.looks(big, limit=100), repeat)
    out[f"run_detail(run), {looks:,} looks"] = timed(lambda: store.run_detail(big), few)
    out["run_summary(run)"] = timed(lambda: store.run_summary(big), repeat)
    store.acquire_lease(lone, "bench", ttl=30, now=time.time())
    out["acquire_lease (a renewal)"] = timed(
        lambda: store.acquire_lease(lone, "bench", ttl=30, now=time.time()), repeat
    )
    out["fenced checkpoint + effect_done"] = timed(checkpoint_pair(store, lone, holder="bench"), repeat)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--looks", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()
    from tests.support.pg import start_server, stop_server

    results: dict[str, dict[str, tuple[float, float]]] = {}
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="gate-bench-store-", dir=Path.cwd()) as d,
        RunStore(Path(d) / "runs.sqlite") as store,
    ):
        results["SQLite"] = measure(store, args.runs, args.looks, args.repeat)
    server = start_server()
    try:
        name = server.create_db()
        with RunStore(server.url(name)) as store:
            results["PostgreSQL"] = measure(store, args.runs, args.looks, args.repeat)
    finally:
        stop_server(server)
    wall = time.monotonic() - started
    names = list(results["SQLite"])
    lines = [
        "## Run store (`make bench-store`)",
        "",
        f"Command: `python -m bench.store --out docs/benchmarks.md --runs {args.runs} --looks {args.looks} "
        f"--repeat {args.repeat}` ({wall:.0f} s wall on this shared 2-core machine, other work running).",
        "",
        "Wall time per call in ms, median / p95. SQLite: a file on the disk, WAL, synchronous=FULL. "
        "PostgreSQL 15 on loopback with fsync off (the test fixture's settings): its commit times are a "
        "floor. Targets (issue 12): the runs list ≤ 200 ms and the run page of a run with 10,000 looks "
        "≤ 300 ms server time — the store's share of those is below.",
        "",
        "| call | SQLite | PostgreSQL |",
        "|---|---:|---:|",
    ]
    for n in names:
        cells = [f"{results[b][n][0]:.2f} / {results[b][n][1]:.2f}" for b in ("SQLite", "PostgreSQL")]
        lines.append(f"| {n} | {cells[0]} | {cells[1]} |")
    body = "\n".join(lines)
    print(body)
    if args.out:
        write_section(args.out, "bench-store", body)


if __name__ == "__main__":
    main()
