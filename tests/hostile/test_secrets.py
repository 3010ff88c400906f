"""No test output, report or store record contains a password given in a URL; real authentication.

A real Prometheus demands basic auth (its own --web.config.file); gate reaches it with credentials from
the URL, from an environment variable and from a file, and every failure it reports names the server
without the password. On main the password was printed in 6 of 11 error messages and reached the run
store and the reports.
"""

from __future__ import annotations

import base64
import logging
import sqlite3
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gate import redact
from gate.cli.main import app
from gate.contract.models import Prometheus
from gate.drivers.prometheus import PermanentError, PrometheusClient, TemporaryError
from gate.drivers.prometheus.auth import client_for
from gate.drivers.promserver import PrometheusServer, backfill_openmetrics, scrape_config
from gate.drivers.store import RunStore
from tests.support.ports import free_port
from tests.support.prom import T0, OpenMetrics

PASSWORD = "Hunter2-s3cr3t-pw"
USER = "gate"


def _bcrypt(password: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # libxcrypt's bcrypt, which Prometheus's web config reads

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A real Prometheus that answers only with basic auth gate:PASSWORD, holding one series."""
    workdir = tmp_path_factory.mktemp("prom-auth")
    om = OpenMetrics()
    om.gauge("demo_goroutines", {"track": "canary"}, [(T0 + i, 7.0) for i in range(30)])
    backfill_openmetrics(om.text(), workdir / "data")
    server = PrometheusServer(
        workdir / "data",
        free_port(),
        config=scrape_config([]),
        web_config=f"basic_auth_users:\n  {USER}: '{_bcrypt(PASSWORD)}'\n",
        probe_headers={"Authorization": _basic(USER, PASSWORD)},
    )
    with server:
        yield server


def _with_password(url: str) -> str:
    return url.replace("http://", f"http://{USER}:{PASSWORD}@")


def test_the_real_server_refuses_without_credentials(guarded: PrometheusServer) -> None:
    with PrometheusClient(guarded.url, retries=0) as client, pytest.raises(PermanentError) as caught:
        client.query("demo_goroutines", at=T0 + 10)
    assert "HTTP 401 (not authorised)" in str(caught.value)
    assert "spec.prometheus.auth" in str(caught.value)


def test_url_credentials_authenticate_and_never_appear(
    guarded: PrometheusServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    messages: list[str] = []
    url = _with_password(guarded.url)
    with PrometheusClient(url, retries=1, sleep=lambda _s: None) as client:
        assert PASSWORD not in client.url and "***@" in client.url
        (sample,) = client.query("demo_goroutines", at=T0 + 10)
        assert sample.value == 7.0
        for bad in ("sum(demo_goroutines", 'demo_goroutines{a=~"("}'):
            with pytest.raises(PermanentError) as caught:
                client.query(bad, at=T0 + 10)
            messages.append(str(caught.value))
    wrong = url.replace(PASSWORD, PASSWORD + "x")
    with PrometheusClient(wrong, retries=0) as client, pytest.raises(PermanentError) as caught:
        client.query("up")
    messages.append(str(caught.value))
    closed = f"http://{USER}:{PASSWORD}@127.0.0.1:{free_port()}"
    with (
        PrometheusClient(closed, retries=1, sleep=lambda _s: None) as client,
        pytest.raises(TemporaryError) as t,
    ):
        client.query("up")
    messages.append(str(t.value))
    with pytest.raises(PermanentError) as caught:
        PrometheusClient(f"ftp://{USER}:{PASSWORD}@host")
    messages.append(str(caught.value))
    assert all("***@" in m or "HTTP 400" in m or "HTTP 401" in m for m in messages), messages
    for text in [*messages, caplog.text]:
        assert PASSWORD not in text


def test_basic_auth_from_env_and_a_file(
    guarded: PrometheusServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATE_TEST_PROM_PW", PASSWORD)
    section = Prometheus.model_validate(
        {"url": guarded.url, "auth": {"basic": {"username": USER, "password": {"env": "GATE_TEST_PROM_PW"}}}}
    )
    with client_for(section, retries=0) as client:
        assert client.query("demo_goroutines", at=T0 + 10)[0].value == 7.0
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    from_file = Prometheus.model_validate(
        {"url": guarded.url, "auth": {"basic": {"username": USER, "password": {"file": "pw"}}}}
    )
    with client_for(from_file, base_dir=tmp_path, retries=0) as client:
        assert client.query("demo_goroutines", at=T0 + 10)[0].value == 7.0
    monkeypatch.delenv("GATE_TEST_PROM_PW")
    with pytest.raises(PermanentError, match=r"auth\.basic\.password\.env: the environment variable"):
        client_for(section)
    with pytest.raises(PermanentError, match=r"operator only"):
        client_for(
            Prometheus.model_validate(
                {"url": guarded.url, "auth": {"bearer": {"secret": {"name": "prom-token"}}}}
            )
        )


@pytest.fixture
def bearer_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP API that answers like Prometheus only to `Authorization: Bearer TOKEN`."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            seen.append(f"{self.headers.get('authorization')}|{self.headers.get('x-scope-orgid')}")
            ok = self.headers.get("authorization") == f"Bearer {PASSWORD}"
            body = b'{"status":"success","data":{"resultType":"vector","result":[]}}' if ok else b"{}"
            self.send_response(200 if ok else 401)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_bearer_token_from_a_file_and_custom_headers(
    bearer_server: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, seen = bearer_server
    (tmp_path / "token").write_text(PASSWORD)
    section = Prometheus.model_validate(
        {"url": url, "auth": {"bearer": {"file": "token"}}, "headers": {"X-Scope-OrgID": "team-a"}}
    )
    with client_for(section, base_dir=tmp_path, retries=0) as client:
        assert client.query("up") == []
    assert seen == [f"Bearer {PASSWORD}|team-a"]


def test_credential_headers_and_double_credentials_are_refused_in_the_contract() -> None:
    with pytest.raises(ValueError, match=r"use auth\.bearer or auth\.basic"):
        Prometheus.model_validate({"url": "http://p:9090", "headers": {"Authorization": "Bearer x"}})
    with pytest.raises(ValueError, match="drop the URL's credentials"):
        Prometheus.model_validate({"url": "http://a:b@p:9090", "auth": {"bearer": {"env": "T"}}})
    with pytest.raises(ValueError, match="exactly one of file, env or secret"):
        Prometheus.model_validate({"url": "http://p:9090", "auth": {"bearer": {"env": "T", "file": "f"}}})
    with pytest.raises(ValueError, match="contradict"):
        Prometheus.model_validate({"tls": {"caFile": "ca.pem", "insecureSkipVerify": True}})


def test_gate_check_output_and_reports_never_hold_the_password(tmp_path: Path) -> None:
    services = ThreadingHTTPServer(("127.0.0.1", free_port()), BaseHTTPRequestHandler)
    thread = threading.Thread(target=services.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        up = f"http://127.0.0.1:{services.server_address[1]}"
        contract = tmp_path / "c.yaml"
        contract.write_text(
            "apiVersion: perfgate.dev/v1alpha1\nkind: PerformanceContract\nmetadata: {name: c}\nspec:\n"
            f"  target: {{stable: {{url: '{up}'}}, canary: {{url: '{up}'}}}}\n"
            f"  prometheus: {{url: 'http://{USER}:{PASSWORD}@127.0.0.1:{free_port()}'}}\n"
            "  load: {users: 1, duration: 1s, tasks: [{name: a, get: /}]}\n"
            "  objectives: [{sli: http-latency, quantile: 0.95, max: 220ms}]\n"
        )
        closed = f"http://{USER}:{PASSWORD}@127.0.0.1:{free_port()}"
        reports = {k: tmp_path / f"r.{k}" for k in ("json", "xml", "md")}
        result = CliRunner().invoke(
            app,
            [
                "check",
                str(contract),
                "--stable-url",
                up,
                "--canary-url",
                up,
                "--prometheus",
                closed,
                "--json-report",
                str(reports["json"]),
                "--junit",
                str(reports["xml"]),
                "--markdown",
                str(reports["md"]),
            ],
        )
        assert result.exit_code == 4, result.output
        assert "prometheus at http://***@127.0.0.1" in result.output
        texts = [result.output, *(p.read_text() for p in reports.values())]
        assert all(PASSWORD not in t for t in texts)
        explain = CliRunner().invoke(app, ["explain", str(contract)])
        assert explain.exit_code == 0 and "***@" in explain.output and PASSWORD not in explain.output
    finally:
        services.shutdown()
        services.server_close()
        thread.join(timeout=5)


def test_no_store_record_keeps_a_url_password(tmp_path: Path) -> None:
    leaky = f"http://{USER}:{PASSWORD}@prometheus:9090"
    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    try:
        rid = store.create_run(
            contract_name="c",
            plan={"prometheus": leaky},
            state={"status": "running", "reason": f"reading {leaky}"},
            at=T0,
            contract_text=f"spec:\n  prometheus: {{url: '{leaky}'}}\n",
            meta={"notes": [leaky]},
        )
        store.checkpoint(
            rid,
            seq=1,
            at=T0 + 1,
            input={"kind": "look", "error": f"cannot reach {leaky}"},
            state={"status": "running", "reason": f"Prometheus at {leaky} down"},
            effects=[{"kind": "look", "url": leaky}],
        )
        store.effect_done(rid, 1, 0, at=T0 + 2, ok=False, error=f"query: {leaky} answered HTTP 503")
        detail = store.run_detail(rid)
        assert detail is not None and "***@prometheus" in detail.contract_text
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for (table,) in db.execute("select name from sqlite_master where type='table'").fetchall():
            for row in db.execute(f"select * from {table}").fetchall():
                assert PASSWORD not in repr(row), table
    assert PASSWORD.encode() not in path.read_bytes()


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("http://u:p@h:1/x", "http://***@h:1/x"),
        ("see https://u:p%40x@h/a and http://h/b", "see https://***@h/a and http://h/b"),
        ("https://u:p@ss@h/", "https://***@h/"),
        ("mail me@x.org at http://h:9090", "mail me@x.org at http://h:9090"),
        ("http://h/?next=a@b", "http://h/?next=a@b"),
    ],
)
def test_redact_text(text: str, clean: str) -> None:
    assert redact.redact_text(text) == clean
