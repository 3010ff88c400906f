"""The HTTP client against a scripted loopback server: retries with backoff on 5xx, 429, timeouts and
refused connections, none on a bad query, bounded answers, malformed answers refused, errors short."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gate.drivers.prometheus import PermanentError, PrometheusClient, TemporaryError
from tests.support.ports import free_port
from tests.support.prom import T0, OpenMetrics, backfilled_prometheus

OK = json.dumps(
    {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {"a": "b"}, "value": [T0, "1.5"]}]},
    }
).encode()


class Script:
    """Answers requests in order from a list of (status, body, headers, delay seconds)."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, bytes, dict[str, str], float]] = []
        self.requests: list[str] = []
        self.release = threading.Event()


@pytest.fixture
def scripted() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            self.requests.append(self.path + " " + self.rfile.read(length).decode())
            status, body, headers, delay = script.answers.pop(0) if script.answers else (200, OK, {}, 0.0)
            if delay:
                script.release.wait(delay)
            self.send_response(status)
            self.send_header("content-type", "application/json")
            length = headers.pop("content-length", str(len(body)))
            if length != "omit":  # omitted: the body ends when the connection closes (HTTP/1.0)
                self.send_header("content-length", length)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        requests = script.requests
        do_GET = _answer
        do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", script
    finally:
        script.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _client(url: str, sleeps: list[float], **kw: object) -> PrometheusClient:
    return PrometheusClient(url, timeout=kw.pop("timeout", 2.0), retries=3, sleep=sleeps.append, **kw)  # type: ignore[arg-type]


def test_503_then_200_is_retried_with_exponential_backoff(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    script.answers = [(503, b'{"status":"error","error":"busy"}', {}, 0.0)] * 2
    sleeps: list[float] = []
    with _client(url, sleeps) as client:
        [sample] = client.query("up", at=T0)
    assert sample.value == 1.5 and sample.labels == {"a": "b"}
    assert (client.query_count, client.attempts) == (1, 3)
    assert sleeps == [0.2, 0.4]
    assert "time=1767225600.000" in script.requests[0]


def test_retry_after_is_honoured_within_the_cap(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    script.answers = [(429, b"{}", {"retry-after": "3"}, 0.0), (503, b"{}", {"retry-after": "60"}, 0.0)]
    sleeps: list[float] = []
    with _client(url, sleeps) as client:
        client.query("up")
    assert sleeps == [3.0, 5.0]


def test_persistent_5xx_is_a_temporary_error_after_every_retry(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    script.answers = [(502, b"<html>" + b"x" * 5000 + b"</html>", {}, 0.0)] * 4
    sleeps: list[float] = []
    with (
        _client(url, sleeps) as client,
        pytest.raises(TemporaryError, match=r"HTTP 502.*after 4 attempts") as info,
    ):
        client.query("up")
    assert client.attempts == 4 and len(sleeps) == 3
    assert "xxxx" not in str(info.value)


def test_bad_query_is_permanent_and_not_retried(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    words = "1:4: parse error: unexpected end of input" + " and more" * 200
    script.answers = [
        (400, json.dumps({"status": "error", "errorType": "bad_data", "error": words}).encode(), {}, 0.0)
    ]
    sleeps: list[float] = []
    with (
        _client(url, sleeps) as client,
        pytest.raises(PermanentError, match=r"HTTP 400.*bad_data: 1:4: parse") as info,
    ):
        client.query("sum(")
    assert client.attempts == 1 and sleeps == []
    assert len(str(info.value)) < 500


def test_timeouts_are_retried_then_temporary(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    script.answers = [(200, OK, {}, 1.0), (200, OK, {}, 0.0)]
    sleeps: list[float] = []
    with _client(url, sleeps, timeout=0.2) as client:
        [sample] = client.query("up")
    assert sample.value == 1.5 and client.attempts == 2


def test_connection_refused_is_temporary() -> None:
    sleeps: list[float] = []
    with (
        _client(f"http://127.0.0.1:{free_port()}", sleeps) as client,
        pytest.raises(TemporaryError, match="cannot reach"),
    ):
        client.query("up")
    assert client.attempts == 4


def test_huge_answers_are_refused(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    big = (
        b'{"status":"success","data":{"resultType":"vector","result":['
        + b'{"metric":{},"value":[1,"1"]},' * 5000
    )
    script.answers = [
        (200, big + b"{}]}}", {"content-length": "omit"}, 0.0),
        (200, big, {"content-length": "999999999"}, 0.0),
    ]
    with _client(url, [], max_bytes=10_000) as client:
        with pytest.raises(PermanentError, match="exceeds the 10000 bytes"):
            client.query("up")
        with pytest.raises(PermanentError, match="999999999 bytes"):
            client.query("up")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[" * 100000,
        b'{"status":"success","data":{"resultType":"matrix","result":[]}}',
        b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":1},"value":[1,"1"]}]}}',
        b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"one"]}]}}',
        b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":"1"}]}}',
        b'{"status":"error","data":{}}',
    ],
)
def test_malformed_answers_are_refused(scripted: tuple[str, Script], body: bytes) -> None:
    url, script = scripted
    script.answers = [(200, body, {}, 0.0)]
    with _client(url, []) as client, pytest.raises(PermanentError) as info:
        client.query("up")
    assert client.attempts == 1
    assert body[:40].decode() not in str(info.value) or len(body) < 12


def test_too_many_series_are_refused(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    result = [{"metric": {"i": str(i)}, "value": [1, "1"]} for i in range(30)]
    script.answers = [
        (
            200,
            json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode(),
            {},
            0.0,
        )
    ]
    with _client(url, [], max_series=20) as client, pytest.raises(PermanentError, match="30 series"):
        client.query("up")


def test_real_server_range_series_and_bad_query(tmp_path: Path) -> None:
    om = OpenMetrics()
    for track in ("stable", "canary"):
        om.gauge(
            "demo_goroutines",
            {"track": track},
            [(T0 + i, 100.0 + (i if track == "canary" else 0)) for i in range(60)],
        )
    with (
        backfilled_prometheus(om.text(), tmp_path) as server,
        PrometheusClient(server.url, retries=0) as client,
    ):
        series = client.query_range("demo_goroutines", T0 + 10, T0 + 20, 5)
        by_track = {s.labels["track"]: s.points for s in series}
        assert by_track["canary"] == [(T0 + 10, 110.0), (T0 + 15, 115.0), (T0 + 20, 120.0)]
        assert by_track["stable"] == [(T0 + 10, 100.0), (T0 + 15, 100.0), (T0 + 20, 100.0)]
        found = client.series(['demo_goroutines{track="canary"}'], T0, T0 + 60)
        assert found == [{"__name__": "demo_goroutines", "track": "canary"}]
        with pytest.raises(PermanentError, match="HTTP 400"):
            client.query("sum(demo_goroutines", at=T0)
        with pytest.raises(PermanentError, match="more than 11000 points"):
            client.query_range("demo_goroutines", T0, T0 + 100000, 1)
        assert client.query_count == 3 and client.attempts == 3  # the oversized range never left
