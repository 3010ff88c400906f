"""The one composition (``gate.compose``) and the settings, tested once: real nginx router on loopback in
front of two loopback receivers, a real SQLite store opened from its URL, no Prometheus (the looks
are inconclusive, which is all these tests need: they are about what is built and recorded)."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gate.cli.main import app
from gate.compose import open_store, resume_run, start_run
from gate.contract import parse_contract
from gate.drivers.nginx import NginxError, NginxServer, nginx_binary
from gate.drivers.routers.nginx import parse_state
from gate.engine.clock import ManualClock
from gate.errors import GateError
from gate.settings import Settings, mask_url
from tests.engine.receiver import Receiver, receiver
from tests.support.ports import free_port


def _have_nginx() -> bool:
    try:
        nginx_binary()
    except NginxError:
        return False
    return True


needs_nginx = pytest.mark.skipif(not _have_nginx(), reason="nginx is not installed (Debian package nginx)")

CONTRACT = """\
apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {{name: checkout-compose}}
spec:
  service: checkout
  target:
    stable: {{url: "{stable}"}}
    canary: {{url: "{canary}"}}
  router: {{type: nginx, port: {port}}}
  prometheus: {{url: "http://127.0.0.1:9"}}
  objectives:
    - {{sli: http-latency, quantile: 0.95, max: 220ms, sources: [production]}}
  steps: [{steps}]
  policy: {{interval: 5s, deadline: 10m}}
"""


@pytest.fixture
def backends() -> Iterator[tuple[Receiver, Receiver]]:
    with receiver() as stable, receiver() as canary:
        yield stable, canary


def _contract_text(
    backends: tuple[Receiver, Receiver], port: int, steps: str = "20%, pause 30s, 100%"
) -> str:
    stable, canary = backends
    return CONTRACT.format(stable=stable.url, canary=canary.url, port=port, steps=steps)


def _settings(tmp_path: Path) -> Settings:
    return Settings(store=f"sqlite:///{tmp_path}/runs.sqlite", nginx_prefix=tmp_path / "nginx")


@needs_nginx
def test_start_run_builds_the_parts_records_the_run_and_moves_real_traffic(
    tmp_path: Path, backends: tuple[Receiver, Receiver]
) -> None:
    port = free_port()
    text = _contract_text(backends, port)
    contract = parse_contract(text)
    settings = _settings(tmp_path)
    clock = ManualClock(1000.0)
    parts = start_run(contract, text, settings=settings, store=settings.store, face="test", clock=clock)
    try:
        assert parts.owns_store  # opened from the URL: closed with the parts
        assert (tmp_path / "runs.sqlite").is_file()
        assert settings.workdir == tmp_path / "work"  # beside a SQLite store unless told otherwise
        due = parts.runner.advance(clock.now())
        assert clock.now() == 1000.0  # advance never sleeps
        assert due is not None and due > clock.now()
        state = parse_state((tmp_path / "nginx" / "conf" / "nginx.conf").read_text())
        assert state is not None and state.canary_weight == 20
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as answer:
            assert answer.status == 200  # gate's nginx, started by the composition, serves
        detail = parts.store.run_detail(parts.run_id)
        assert detail is not None
        assert detail.contract_text == text
        assert detail.meta["face"] == "test" and "nginx" in detail.meta["router"]
        assert detail.summary.steps == 3
    finally:
        parts.close()
        NginxServer(tmp_path / "nginx").stop()


@needs_nginx
def test_resume_uses_the_recorded_contract_and_says_when_the_file_changed(
    tmp_path: Path, backends: tuple[Receiver, Receiver]
) -> None:
    port = free_port()
    text = _contract_text(backends, port)
    settings = _settings(tmp_path)
    clock = ManualClock(1000.0)
    with open_store(settings.store) as store:
        parts = start_run(
            parse_contract(text), text, settings=settings, store=store, face="test", clock=clock
        )
        assert not parts.owns_store
        parts.runner.advance(clock.now())
        run_id = parts.run_id
        parts.close()  # a run cut short: its parts closed, the store (ours) still open

        changed = _contract_text(backends, port, steps="50%, 100%")
        resumed, warnings = resume_run(
            run_id, settings=settings, store=store, contract_text=changed, clock=clock
        )
        try:
            assert any("differs" in w for w in warnings)
            # The recorded plan goes on: 3 steps, the pause; not the two of today's file.
            assert len(resumed.runner.plan.steps) == 3
            clock.advance(31)
            due = resumed.runner.advance(clock.now())  # a new runner's first tick is an interval on
            assert due == clock.now() + 5
            clock.advance(5)
            resumed.runner.advance(clock.now())
            assert resumed.runner.state.status == "promoted"
            assert resumed.runner.advance(clock.now()) is None  # terminal: nothing is due any more
        finally:
            resumed.close()
        same, warnings = resume_run(run_id, settings=settings, store=store, contract_text=text, clock=clock)
        same.close()
        assert warnings == []
    NginxServer(tmp_path / "nginx").stop()


def test_an_unknown_run_or_a_bad_store_url_is_refused_with_its_reason(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with open_store(settings.store) as store, pytest.raises(Exception, match="no run 'nope'"):
        resume_run("nope", settings=settings, store=store)
    with pytest.raises(GateError, match="names a file"):
        open_store("sqlite://")
    with pytest.raises(ValueError, match="the run store is a URL"):
        Settings(store="mysql://root@db/gate")


def test_a_flag_beats_the_environment_which_beats_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().store == "sqlite:///.gate/runs.sqlite"
    monkeypatch.setenv("GATE_STORE", "postgresql://gate:hunter2@db.example/gate")
    monkeypatch.setenv("GATE_KUBE_QPS", "5")
    assert Settings().store.startswith("postgresql://") and Settings().kube_qps == 5.0
    flagged = Settings.from_flags(store="sqlite:////tmp/x.sqlite", kube_context=None)
    assert flagged.store == "sqlite:////tmp/x.sqlite" and flagged.kube_qps == 5.0


def test_secrets_and_url_passwords_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_STORE", "postgresql://gate:hunter2@db.example/gate?sslpassword=s3cr3t")
    monkeypatch.setenv("GATE_DASHBOARD_SECRET", "very-secret-key")
    masked = Settings().masked()
    assert masked["store"] == "postgresql://gate:****@db.example/gate?****"
    assert masked["dashboard_secret"] == "****"
    assert mask_url("sqlite:///.gate/runs.sqlite") == "sqlite:///.gate/runs.sqlite"
    result = CliRunner().invoke(app, ["config", "--json"])
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output and "s3cr3t" not in result.output
    assert "very-secret-key" not in result.output
    assert '"kube_qps": 20.0' in result.output


def test_gate_config_refuses_a_bad_environment_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_KUBE_BURST", "many")
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code == 2
    assert "GATE_KUBE_BURST" in result.output


def test_python_dash_m_gate_is_the_gate_command() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "gate", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    for command in ("run", "check", "demo", "config"):
        assert command in out.stdout


def test_long_reasons_are_cut_on_a_word_and_marked() -> None:
    from gate.compose.reports import clip

    reason = "rolled back: http-latency-p95 failed on production, p95 250 ms above the 220 ms bound"
    cut = clip(reason, 40)
    assert len(cut) <= 40 and cut.endswith("…")
    assert reason.startswith(cut[:-1]) and reason[len(cut) - 1] == " "  # the cut falls between words
    assert clip("short", 40) == "short"


KUBE_CONTRACT = """\
apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {{name: checkout{namespace}}}
spec:
  service: checkout
  target: {{stable: {{service: checkout-stable}}, canary: {{service: checkout-canary}}}}
  router: {{type: gateway-api, httpRoute: checkout}}
  prometheus: {{url: "http://127.0.0.1:9"}}
  objectives:
    - {{sli: http-latency, quantile: 0.95, max: 220ms, sources: [production]}}
  steps: [20%, 100%]
"""


def test_the_namespace_setting_fills_in_what_the_contract_leaves_open(tmp_path: Path) -> None:
    from gate.compose import build_router
    from gate.drivers import kube

    client = kube.connect(host="http://127.0.0.1:9")  # building a router calls nothing yet
    settings = Settings(store=f"sqlite:///{tmp_path}/runs.sqlite", namespace="shop")
    open_ns = parse_contract(KUBE_CONTRACT.format(namespace=""))
    named = parse_contract(KUBE_CONTRACT.format(namespace=", namespace: payments"))
    assert (
        build_router(open_ns, settings, kube_client=client).describe().startswith("HTTPRoute shop/checkout")
    )
    assert (
        build_router(named, settings, kube_client=client).describe().startswith("HTTPRoute payments/checkout")
    )
    client.close()
