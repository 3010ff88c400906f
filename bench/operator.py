"""Capacity of the operator: the real `gate operator` process, the emulated API server, a real Prometheus.

    python -m bench.operator --out docs/benchmarks.md [--levels 100,250,500,1000] [--interval 10]

Two demo services (stable, canary) take a steady trickle of requests and are scraped every second by a
real Prometheus. Gates are added in batches up to each level; every gate of a batch follows the batch's
canary Deployment, which is created once the batch exists (one revision change starts the batch), and
each gate has its own HTTPRoute. A gate's contract: production p95 and error ratio against bounds,
steps `10%`, `analyze 1h` — in steady state every gate is looked at once per interval (a look: a tick,
Prometheus queries, the judge, a checkpoint), which is the operator's steady work.

At each level, once every gate is Progressing at 10 %, the operator process is measured over a window
of three intervals: CPU seconds (psutil, user + system), evaluations (its /metrics), RSS, Kubernetes API
calls it made and Prometheus queries its gates asked and it sent.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from bench.report import write_section
from gate.demo.procs import ChildProcess
from gate.drivers import kube
from gate.drivers.promserver import ScrapeJob
from gate.operator.worker import GATES
from tests.support.ports import free_port
from tests.support.prom import live_prometheus

COMMAND = "make bench-operator  (python -m bench.operator --out docs/benchmarks.md)"
NS = "bench"


@dataclass
class Level:
    gates: int
    settle: float
    window: float
    cpu: float
    evaluations: float
    rss_mb: float
    api_calls: float
    asked: float
    sent: float
    interval: float
    emulator_cpu: float = 0.0

    @property
    def cpu_ms_per_evaluation(self) -> float:
        return 1000 * self.cpu / self.evaluations if self.evaluations else float("nan")

    @property
    def cores(self) -> float:
        return self.cpu / self.window

    @property
    def gates_per_core(self) -> float:
        """Gates one core keeps at one evaluation per interval: the evaluations made per interval
        per core used. (Not gates / cores: when evaluations fall behind the interval, that would
        count gates that were not evaluated.)"""
        done = self.per_interval(self.evaluations)
        return done / self.cores if self.cores else float("inf")

    @property
    def kept_up(self) -> float:
        """Share of the gates evaluated per interval (1.0: every gate looked every interval)."""
        return self.per_interval(self.evaluations) / self.gates if self.gates else 0.0

    def per_interval(self, value: float) -> float:
        return value * self.interval / self.window


def _metrics(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.name + (
                "{" + ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items())) + "}"
                if sample.labels
                else ""
            )
            out[key] = out.get(key, 0.0) + sample.value
            if sample.labels:
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def _spec(i: int, batch: int, prometheus: str, stable: str, canary: str, interval: float) -> dict[str, Any]:
    return {
        "service": "checkout",  # every gate judges the demo service (its series carry service="checkout")
        "target": {
            "stable": {"url": stable, "service": "checkout-stable", "deployment": "checkout"},
            "canary": {"url": canary, "service": "checkout-canary", "deployment": f"canary-{batch}"},
        },
        "router": {"type": "gateway-api", "httpRoute": f"route-{i}"},
        "prometheus": {"url": prometheus, "scrapeInterval": "1s"},
        "traffic": {"selector": {"service": "checkout"}},
        "objectives": [
            # maxIncrease 1 % vs stable keeps every gate analysing (a trickle cannot prove so small a
            # tolerance, and an unchanged canary shows no harm): without it the judge proves the absolute
            # bounds within a minute and the gates promote early, leaving the steady state measured.
            {
                "sli": "http-latency",
                "quantile": 0.95,
                "max": "500ms",
                "maxIncrease": "1%",
                "sources": ["production"],
            },
            {"sli": "http-error-ratio", "max": "5%", "sources": ["production"]},
        ],
        "steps": ["10%", "analyze 1h"],
        "policy": {"interval": f"{interval:g}s", "deadline": "2h"},
    }


def _traffic(urls: list[str], stop: threading.Event, rate: float) -> None:
    with httpx.Client(timeout=5) as client:
        while not stop.is_set():
            for url in urls:
                with contextlib.suppress(httpx.HTTPError):
                    client.get(f"{url}/catalog/42")
            stop.wait(1.0 / rate)


def run(
    levels: list[int], interval: float, workdir: Path, qps: float, burst: int
) -> tuple[list[Level], float]:
    emulator = _Emulator(workdir / "emulator.log")
    client = kube.connect(host=emulator.url)
    ports = {"stable": free_port(), "canary": free_port()}
    services = [
        ChildProcess(
            name=track,
            module="gate.demo.service",
            args=["--port", str(port), "--track", track],
            log_path=workdir / f"{track}.log",
            health_url=f"http://127.0.0.1:{port}/healthz",
        )
        for track, port in ports.items()
    ]
    stop = threading.Event()
    op: psutil.Popen | None = None
    results: list[Level] = []
    try:
        for s in services:
            s.start()
        urls = [f"http://127.0.0.1:{p}" for p in ports.values()]
        jobs = [ScrapeJob(f"checkout-{t}", [f"127.0.0.1:{p}"]) for t, p in ports.items()]
        with live_prometheus(workdir / "prom", jobs, scrape_interval=1.0) as prom:
            feeder = threading.Thread(target=_traffic, args=(urls, stop, 10.0), daemon=True)
            feeder.start()
            probe = free_port()
            log = (workdir / "operator.log").open("wb")
            op = psutil.Popen(
                [
                    *(os.environ.get("GATE_BENCH_OPERATOR", "").split() or [str(Path(sys.executable).with_name("gate"))]),
                    "operator",
                    "--kube-server", emulator.url,
                    "--store", str(workdir / "runs.sqlite"),
                    "--workdir", str(workdir / "work"),
                    "--probe-host", "127.0.0.1",
                    "--probe-port", str(probe),
                    "--kube-qps", str(qps),
                    "--kube-burst", str(burst),
                    "--status-every", "60",
                ],
                stdout=log, stderr=subprocess.STDOUT,
                cwd=workdir,
            )  # fmt: skip
            probes = f"http://127.0.0.1:{probe}"
            _wait(lambda: httpx.get(f"{probes}/readyz", timeout=2).status_code == 200, 60)
            time.sleep(3)
            base_rss = op.memory_info().rss
            created = 0
            for batch, level in enumerate(levels):
                started = time.monotonic()
                for i in range(created, level):
                    client.create(
                        kube.ObjectRef(kube.HTTPROUTE, NS, f"route-{i}"),
                        {
                            "spec": {
                                "rules": [
                                    {
                                        "backendRefs": [
                                            {"name": "checkout-stable", "port": 8080, "weight": 100}
                                        ]
                                    }
                                ]
                            }
                        },
                    )
                    client.create(
                        kube.ObjectRef(GATES, NS, f"gate-{i}"),
                        {"spec": _spec(i, batch, prom.url, urls[0], urls[1], interval)},
                    )
                created = level
                client.create(
                    kube.ObjectRef(kube.DEPLOYMENT, NS, f"canary-{batch}"),
                    {
                        "spec": {
                            "template": {
                                "spec": {"containers": [{"name": "app", "image": f"checkout:{batch}"}]}
                            }
                        }
                    },
                )
                _wait(lambda lv=level: _progressing(probes) >= lv, 600)
                time.sleep(interval)  # past the first looks: steady state
                settle = time.monotonic() - started
                window = 3 * interval
                before, cpu0, t0 = _metrics(probes), op.cpu_times(), time.monotonic()
                emu0 = emulator.cpu_seconds()
                time.sleep(window)
                after, cpu1, t1 = _metrics(probes), op.cpu_times(), time.monotonic()
                emu1 = emulator.cpu_seconds()
                cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
                results.append(
                    Level(
                        gates=level,
                        settle=settle,
                        window=t1 - t0,
                        cpu=cpu,
                        evaluations=after.get("gate_operator_evaluations_total", 0)
                        - before.get("gate_operator_evaluations_total", 0),
                        rss_mb=(op.memory_info().rss - base_rss) / 1e6,
                        api_calls=after.get("gate_operator_kube_api_calls_total", 0)
                        - before.get("gate_operator_kube_api_calls_total", 0),
                        asked=after.get("gate_operator_prometheus_asked_total", 0)
                        - before.get("gate_operator_prometheus_asked_total", 0),
                        sent=after.get("gate_operator_prometheus_queries_total", 0)
                        - before.get("gate_operator_prometheus_queries_total", 0),
                        interval=interval,
                        emulator_cpu=emu1 - emu0,
                    )
                )
                print(_row(results[-1]), flush=True)
            base_mb = base_rss / 1e6
    except BaseException:
        with contextlib.suppress(OSError):
            tail = (workdir / "operator.log").read_text(errors="replace").splitlines()[-40:]
            print("the operator's last words:\n" + "\n".join(tail), file=sys.stderr)
        raise
    finally:
        stop.set()
        if op is not None and op.poll() is None:
            op.terminate()
            try:
                op.wait(60)
            except psutil.TimeoutExpired:
                op.kill()
        for s in services:
            s.stop()
        client.close()
        emulator.stop()
    return results, base_mb


class _Emulator:
    """The emulated API server in a process of its own (``python -m tests.operator.emulator``): its
    per-request work competes neither with the measured operator nor with the benchmark's loop."""

    def __init__(self, log_path: Path) -> None:
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.operator.emulator"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().decode().strip()
        if not self.url.startswith("http"):
            self.stop()
            raise RuntimeError(f"the emulator did not start; see {log_path}")

    def cpu_seconds(self) -> float:
        t = psutil.Process(self.proc.pid).cpu_times()
        return float(t.user + t.system)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def _progressing(probes: str) -> float:
    found = _metrics(probes)
    phases = {
        k.split("phase=")[1].rstrip("}"): v for k, v in found.items() if k.startswith("gate_operator_gates{")
    }
    print(f"  {time.strftime('%H:%M:%S')} gates by phase: {phases}", file=sys.stderr, flush=True)
    return phases.get("Progressing", 0.0)


def _wait(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"not reached within {timeout:g}s")


def _row(lv: Level) -> str:
    return (
        f"| {lv.gates:,} | {lv.per_interval(lv.evaluations):,.0f} ({100 * lv.kept_up:.0f} %) | "
        f"{lv.cpu_ms_per_evaluation:.1f} | {lv.cores:.2f} | {lv.gates_per_core:,.0f} | "
        f"{1000 * lv.rss_mb / lv.gates:.0f} | {lv.per_interval(lv.api_calls):.0f} | "
        f"{lv.per_interval(lv.asked):.0f} | {lv.per_interval(lv.sent):.0f} | {lv.settle:.0f} | {lv.emulator_cpu / lv.window:.2f} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.operator")
    parser.add_argument("--levels", default="100,250,500,1000")
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--kube-qps", type=float, default=100.0)
    parser.add_argument("--kube-burst", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp:
        results, base_mb = run(levels, args.interval, Path(tmp), args.kube_qps, args.kube_burst)
    wall = time.monotonic() - started
    header = (
        "| gates | evaluations per interval (of the gates) | CPU ms per gate per evaluation | cores used | "
        "gates per core | RSS KB per gate | API calls per interval | queries asked per interval | "
        "queries sent per interval | ramp + settle (s) | emulator cores |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    rows = "\n".join(_row(r) for r in results)
    last = results[-1]
    body = f"""## Operator: capacity (`make bench-operator`)

Command: `{COMMAND} --levels {args.levels} --interval {args.interval:g} --kube-qps {args.kube_qps:g} --kube-burst {args.kube_burst}` ({wall:.0f} s wall on this shared 2-core machine).

The real `gate operator` process (kopf, one daemon per gate, 8 worker threads, SQLite run store) against the
emulated API server (kmock, in a process of its own: `python -m tests.operator.emulator`) and a real Prometheus scraping two demo services
under a trickle of production requests. Gates are added in batches up to each level; a batch starts
together on one revision change of its canary Deployment. Each gate: production p95 ≤ 500 ms and ≤ stable +1 % (a
tolerance a trickle cannot prove, so the gate keeps analysing rather than promoting early) and error
ratio ≤ 5 %, steps `10%`, `analyze 1h`, interval {args.interval:g} s — in steady state one look per gate per
interval. Measured over three intervals once every gate is Progressing; RSS is the growth over the
operator's {base_mb:.0f} MB with no gates, divided by the gates.

{header}
{rows}

At {last.gates:,} gates: {last.gates_per_core:,.0f} gates per core (target ≥ 500; the evaluations made per
interval per core used), {100 * last.kept_up:.0f} % of the gates evaluated per interval, {1000 * last.rss_mb / last.gates:.0f} KB RSS
per gate (target ≤ 1,024 KB). Queries *asked* are what the gates' looks need (objectives × looks); *sent* is
what reached Prometheus after the shared client's coalescing (a query names its evaluation time; gates of
one batch look at the same whole second over the same window, so one answer serves the batch). Sent
queries grow with batches × distinct SLI queries, not with gates; gates started at different moments
(different windows) do not share queries.
"""
    print(body)
    if args.out is not None:
        write_section(args.out, "bench-operator", body)


if __name__ == "__main__":
    main()
