"""Hostile-input benchmark: how fast and how cheaply gate refuses what it must not read, and what the
strict JSON reader costs on the largest evidence file it accepts.

    python -m bench.hostile --out docs/benchmarks.md

Measured in this process (wall time, median of repeats; peak Python allocations with tracemalloc):
refusing /dev/zero, a FIFO and a 3 GiB sparse file as a contract; refusing a 60 MB evidence file;
parsing a 16 MiB evidence file with `gate.contract.jsonsrc.parse_json` beside plain `json.loads`;
and how long a Prometheus answer dripping one byte every 0.3 s holds a client whose deadline is 2 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from bench.report import write_section
from gate import boundedio
from gate.contract import ContractError, load_contract
from gate.contract.jsonsrc import parse_json
from gate.drivers.prometheus import PrometheusClient, TemporaryError


def _timed(call: Callable[[], object], repeats: int, *, trace: bool = True) -> tuple[float, int]:
    times = []
    peak = 0
    for _ in range(repeats):
        if trace:
            tracemalloc.start()
        started = time.perf_counter()
        with contextlib.suppress(ContractError, boundedio.FileRefused):
            call()
        times.append(time.perf_counter() - started)
        if trace:
            peak = max(peak, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
    return statistics.median(times), peak


def _drip(port_box: list[int], stop: threading.Event) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port_box.append(listener.getsockname()[1])
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n"
                )
                for _ in range(100):
                    if stop.wait(0.3):
                        break
                    try:
                        conn.sendall(b" ")
                    except OSError:
                        break


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="gate-bench-hostile-") as tmp:
        root = Path(tmp)
        fifo = root / "fifo.yaml"
        os.mkfifo(fifo)
        zero = root / "zero.yaml"
        zero.symlink_to("/dev/zero")
        sparse = root / "sparse.yaml"
        with sparse.open("wb") as fh:
            fh.truncate(3 * 1024**3)
        big = root / "big.json"
        with big.open("wb") as fh:
            fh.truncate(60_000_000)
        for label, path in (("/dev/zero (symlink)", zero), ("FIFO", fifo), ("3 GiB sparse file", sparse)):
            took, peak = _timed(lambda p=path: load_contract(p), args.repeats)
            rows.append((f"refuse {label} as a contract", f"{took * 1000:.2f} ms", f"{peak / 1024:.0f} KiB"))
        took, peak = _timed(lambda: boundedio.read_text_limited(big, 16 * 1024 * 1024), args.repeats)
        rows.append(("refuse a 60 MB evidence file", f"{took * 1000:.2f} ms", f"{peak / 1024:.0f} KiB"))
        values = [round(0.1 + i * 1e-7, 7) for i in range(200_000)]
        slis = {f"s{k}": {"synthetic": {"stable": {"kind": "samples", "values": values}}} for k in range(8)}
        text = json.dumps({"slis": slis})
        while len(text.encode()) > 16 * 1024 * 1024:  # the largest file `gate judge` reads
            slis.popitem()
            text = json.dumps({"slis": slis})
        samples = len(slis) * len(values)
        plain, _ = _timed(lambda: json.loads(text), 3, trace=False)
        strict, _ = _timed(lambda: parse_json(text, "e.json"), 3, trace=False)
        mib = len(text) / 1024 / 1024
        rows.append(
            (f"json.loads of {mib:.1f} MiB evidence ({samples:,} samples)", f"{plain * 1000:.0f} ms", "")
        )
        rows.append(("parse_json (strict) of the same", f"{strict * 1000:.0f} ms", ""))
    stop = threading.Event()
    box: list[int] = []
    server = threading.Thread(target=_drip, args=(box, stop), daemon=True)
    server.start()
    while not box:
        time.sleep(0.01)
    with PrometheusClient(f"http://127.0.0.1:{box[0]}", timeout=2.0, retries=0) as client:
        started = time.perf_counter()
        with contextlib.suppress(TemporaryError):
            client.query("up")
        held = time.perf_counter() - started
    stop.set()
    server.join(timeout=5)
    rows.append(("a dripping Prometheus (1 byte / 0.3 s, 30 s body), deadline 2 s", f"{held:.2f} s", ""))
    md = [
        "## Hostile input (bench/hostile.py)",
        "",
        f"`make bench-hostile` (`python -m bench.hostile --out docs/benchmarks.md`), {time.strftime('%Y-%m-%d')}, "
        f"Python {sys.version.split()[0]}, this 2-core machine shared with other work; wall time, median of "
        f"{args.repeats} (3 for the parses); peak Python allocations by tracemalloc (not traced for the parses).",
        "",
        "| what | time | peak allocations |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
    ]
    body = "\n".join(md)
    print(body)
    if args.out:
        write_section(args.out, "bench-hostile", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
