"""`gate dashboard` as a user starts it: its own process, uvicorn on loopback, settings from flags."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gate.drivers.store import RunStore
from tests.dashboard.engine_runs import paused_run
from tests.support.ports import free_port

GATE = str(Path(sys.executable).with_name("gate"))


def test_gate_dashboard_serves_a_store_and_logs_each_request(tmp_path: Path) -> None:
    with RunStore(tmp_path / "runs.sqlite") as store:
        rid = paused_run(store).run_id
    port = free_port()
    log = tmp_path / "dashboard.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                GATE,
                "dashboard",
                "--store",
                f"sqlite:///{tmp_path / 'runs.sqlite'}",
                "--port",
                str(port),
                "--public-read",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).text == "ok":
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.3)
        runs = httpx.get(f"http://127.0.0.1:{port}/api/v1/runs", timeout=10).json()
        assert [r["id"] for r in runs["data"]] == [rid]
    finally:
        proc.terminate()
        proc.wait(20)
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    assert {"route": "/api/v1/runs", "status": 200} in [{k: e[k] for k in ("route", "status")} for e in lines]


def test_bad_settings_exit_2_with_what_and_where(tmp_path: Path) -> None:
    bad = subprocess.run(
        [GATE, "dashboard", "--store", "ftp://nowhere/runs"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "GATE_STORE" in bad.stderr
    missing = subprocess.run(
        [GATE, "dashboard", "--tokens-file", str(tmp_path / "nope")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "no such file" in " ".join(missing.stderr.split())
