"""`gate run` end to end: real demo services, a real Prometheus scraping them, gate's own nginx as the
router; the CLI promotes or rolls back, exits accordingly and leaves the run in the store."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gate.cli.main import app
from gate.drivers.nginx import NginxError, NginxServer, nginx_binary
from gate.drivers.promserver import ScrapeJob
from gate.drivers.routers.nginx import parse_state
from gate.drivers.store import RunStore
from tests.support.ports import free_port, wait_port
from tests.support.prom import live_prometheus

ROOT = Path(__file__).resolve().parents[2]


def _have(binary: str) -> bool:
    try:
        if binary == "nginx":
            nginx_binary()
        else:
            subprocess.run([binary, "--version"], capture_output=True, check=True, timeout=10)
    except (NginxError, OSError, subprocess.SubprocessError):
        return False
    return True


pytestmark = pytest.mark.skipif(
    not (_have("nginx") and _have("prometheus")), reason="needs nginx and prometheus (Debian packages)"
)

CONTRACT = """\
apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {{name: checkout-run}}
spec:
  service: checkout
  target:
    stable: {{url: "{stable}"}}
    canary: {{url: "{canary}"}}
  router: {{type: nginx, port: {port}}}
  prometheus: {{url: "{prometheus}", scrapeInterval: 1s}}
  objectives:
    - {{sli: http-latency, quantile: 0.95, max: 220ms, sources: [production],
       minEvidence: {{requests: 20, duration: 1s}}}}
  steps: {steps}
  policy: {{interval: 1s, deadline: 2m, onInconclusive: rollback, inconclusiveLimit: 0}}
"""


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Stable and canary demo services and a Prometheus scraping both every second."""
    procs: list[subprocess.Popen[bytes]] = []
    urls: dict[str, str] = {}
    try:
        ports = {}
        for track in ("stable", "canary"):
            port = free_port()
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "gate.demo.service", "--track", track, "--port", str(port)],
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            ports[track] = port
            urls[track] = f"http://127.0.0.1:{port}"
        for port in ports.values():
            wait_port(port, timeout=30)
        job = ScrapeJob("checkout", [f"127.0.0.1:{p}" for p in ports.values()])
        with live_prometheus(tmp_path_factory.mktemp("prom"), [job], scrape_interval=1.0) as prom:
            urls["prometheus"] = prom.url
            yield urls
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


def run_gate(tmp: Path, topology: dict[str, str], steps: str, *extra: str) -> tuple[int, str, Path, Path]:
    port = free_port()
    contract = tmp / "contract.yaml"
    contract.write_text(CONTRACT.format(port=port, steps=steps, **topology))
    store, prefix = tmp / "runs.sqlite", tmp / "nginx"
    try:
        result = CliRunner().invoke(
            app,
            # The services have served no request yet, so Prometheus has no series: preflight would
            # refuse (tested below); these tests are about the rollout itself.
            [
                "run",
                str(contract),
                "--store",
                str(store),
                "--nginx-prefix",
                str(prefix),
                "--no-preflight",
                *extra,
            ],
            catch_exceptions=False,
        )
    finally:
        NginxServer(prefix).stop()  # gate leaves its nginx serving; the test stops it by its pid file
    return result.exit_code, result.output, store, prefix


def test_gate_run_promotes_through_nginx_and_records_the_run(
    tmp_path: Path, topology: dict[str, str]
) -> None:
    code, out, store_path, prefix = run_gate(tmp_path, topology, "[10%, pause 2s, 50%, 100%]", "--no-live")
    assert code == 0, out
    assert "promoted" in out
    state = parse_state((prefix / "conf" / "nginx.conf").read_text())
    assert state is not None and (state.canary_weight, state.mirror_percent) == (100, 0)
    with RunStore(store_path) as store:
        (run,) = store.list_runs()
        assert run.status == "promoted" and run.weight == 100
        detail = store.run_detail(run.id)
        assert detail is not None and detail.meta["face"] == "cli"
        assert detail.looks  # Prometheus was read while the canary had weight


def test_gate_run_with_a_postgresql_store_promotes_and_keeps_the_records_there(
    tmp_path: Path, topology: dict[str, str], pg_url: str
) -> None:
    port = free_port()
    contract = tmp_path / "contract.yaml"
    contract.write_text(CONTRACT.format(port=port, steps="[10%, pause 2s, 50%, 100%]", **topology))
    prefix = tmp_path / "nginx"
    try:
        result = CliRunner().invoke(
            app,
            [
                *("run", str(contract), "--store", pg_url, "--nginx-prefix", str(prefix), "--no-live"),
                "--no-preflight",
                *("--workdir", str(tmp_path / "work")),
            ],
            catch_exceptions=False,
        )
    finally:
        NginxServer(prefix).stop()
    assert result.exit_code == 0, result.output
    with RunStore(pg_url) as store:
        assert store.backend == "postgresql"
        (run,) = store.list_runs()
        assert run.status == "promoted" and run.weight == 100
        detail = store.run_detail(run.id)
        assert detail is not None and detail.looks and detail.meta["face"] == "cli"


def test_preflight_refuses_a_rollout_prometheus_has_no_series_for_and_changes_nothing(
    tmp_path: Path, topology: dict[str, str]
) -> None:
    # Nobody has sent these services a request: their latency histograms have no series yet.
    contract = tmp_path / "contract.yaml"
    contract.write_text(CONTRACT.format(port=free_port(), steps="[10%, 100%]", **topology))
    store, prefix = tmp_path / "runs.sqlite", tmp_path / "nginx"
    args = ["run", str(contract), "--store", str(store), "--nginx-prefix", str(prefix)]
    dry = CliRunner().invoke(app, [*args, "--dry-run"])
    result = CliRunner().invoke(app, args)
    if " ".join(result.output.split()).find("has no series") < 0:
        pytest.skip("an earlier test sent the services requests: Prometheus has their series")
    assert dry.exit_code == 1 and "not ready" in dry.output, dry.output
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())
    assert "not started" in flat and "nothing was changed" in flat
    assert not (prefix / "conf").exists()  # gate's nginx was never configured, let alone started
    if store.exists():
        with RunStore(store) as s:
            assert s.list_runs() == []


def test_gate_run_rolls_back_when_evidence_stays_inconclusive(
    tmp_path: Path, topology: dict[str, str]
) -> None:
    # No production users: the production objective cannot be concluded; the policy says roll back.
    code, out, store_path, prefix = run_gate(tmp_path, topology, "[10%, analyze 2s, 100%]")
    assert code == 1, out
    state = parse_state((prefix / "conf" / "nginx.conf").read_text())
    assert state is not None and (state.canary_weight, state.mirror_percent) == (0, 0)
    with RunStore(store_path) as store:
        (run,) = store.list_runs()
        assert run.status == "rolled_back"
        detail = store.run_detail(run.id)
        assert detail is not None and detail.state["cause"] == "inconclusive"
        assert any(v.status == "inconclusive" for lk in detail.looks for v in lk.verdicts)


def _wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError("condition not reached")


def _at_weight(store_path: Path, weight: int) -> Callable[[], bool]:
    def check() -> bool:
        if not store_path.exists():
            return False
        with RunStore(store_path) as store:
            runs = store.list_runs()
            return bool(runs) and runs[0].weight == weight

    return check


@pytest.mark.parametrize("how", ["ctrl-c"])  # --abort from another process: the held-run test
def test_a_rollout_in_progress_is_rolled_back_by_a_person(
    tmp_path: Path, topology: dict[str, str], how: str
) -> None:
    port = free_port()
    contract = tmp_path / "contract.yaml"
    contract.write_text(CONTRACT.format(port=port, steps="[10%, pause 1m, 100%]", **topology))
    store_path, prefix = tmp_path / "runs.sqlite", tmp_path / "nginx"
    gate = str(ROOT / ".venv" / "bin" / "gate")
    args = [
        gate,
        "run",
        str(contract),
        "--store",
        str(store_path),
        "--nginx-prefix",
        str(prefix),
        "--no-live",
        "--no-preflight",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        try:
            _wait_for(_at_weight(store_path, 10))
        except TimeoutError:
            proc.kill()
            raise AssertionError(proc.communicate(timeout=10)[0]) from None
        if how == "ctrl-c":
            proc.send_signal(signal.SIGINT)
        else:
            with RunStore(store_path) as store:
                run_id = store.list_runs()[0].id
            asked = subprocess.run(
                [*args, "--abort", run_id], capture_output=True, text=True, timeout=60, check=False
            )
            assert asked.returncode == 0, asked.stderr
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        NginxServer(prefix).stop()
    assert proc.returncode == 1, out
    state = parse_state((prefix / "conf" / "nginx.conf").read_text())
    assert state is not None and (state.canary_weight, state.mirror_percent) == (0, 0)
    with RunStore(store_path) as store:
        (run,) = store.list_runs()
        detail = store.run_detail(run.id)
        assert detail is not None and detail.state["cause"] == "abort" and run.status == "rolled_back"


def test_a_held_run_exits_3_keeps_its_weight_and_a_person_decides_later(
    tmp_path: Path, topology: dict[str, str]
) -> None:
    port = free_port()
    contract = tmp_path / "contract.yaml"
    text = CONTRACT.format(port=port, steps="[10%, analyze 1s, 100%]", **topology)
    contract.write_text(text.replace("onInconclusive: rollback", "onInconclusive: hold"))
    store_path, prefix = tmp_path / "runs.sqlite", tmp_path / "nginx"
    base = ["run", str(contract), "--store", str(store_path), "--nginx-prefix", str(prefix), "--no-live"]
    base.append("--no-preflight")  # the services have served no request: no series yet
    runner = CliRunner()
    try:
        held = runner.invoke(app, [*base, "--exit-when-held"], catch_exceptions=False)
        assert held.exit_code == 3, held.output
        state = parse_state((prefix / "conf" / "nginx.conf").read_text())
        assert state is not None and state.canary_weight == 10  # held, not promoted, not rolled back
        with RunStore(store_path) as store:
            run_id = store.list_runs()[0].id
        asked = runner.invoke(app, [*base, "--abort", run_id], catch_exceptions=False)
        assert asked.exit_code == 0, asked.output
        resumed = runner.invoke(app, [*base, "--resume", run_id], catch_exceptions=False)
        assert resumed.exit_code == 1, resumed.output
    finally:
        NginxServer(prefix).stop()
    state = parse_state((prefix / "conf" / "nginx.conf").read_text())
    assert state is not None and state.canary_weight == 0
    with RunStore(store_path) as store:
        (run,) = store.list_runs()
        assert run.status == "rolled_back"
