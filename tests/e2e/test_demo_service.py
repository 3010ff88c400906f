"""The demo service labels every request by track and traffic source, takes bounded fault switches,
and keeps answering through its circuit breaker when the dependency is sick."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gate.demo.service import CircuitBreaker, Settings, create_app
from tests.support.ports import free_port


def _client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings)), base_url="http://demo")


async def _samples(client: httpx.AsyncClient, name: str) -> list[tuple[dict[str, str], float]]:
    text = (await client.get("/metrics")).text
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


async def test_requests_are_labelled_by_track_source_and_route() -> None:
    async with _client(Settings(track="canary", seed=1)) as client:
        await client.get("/catalog/7")
        await client.get("/catalog/8", headers={"X-Traffic-Source": "synthetic"})
        await client.get("/orders", params={"offset": 20}, headers={"X-Traffic-Source": "shadow"})
        await client.get("/catalog/9", headers={"X-Traffic-Source": "'; drop table"})
        counts = await _samples(client, "http_request_duration_seconds_count")
    seen = {(lab["track"], lab["traffic_source"], lab["route"], lab["method"]): v for lab, v in counts}
    assert seen == {
        ("canary", "production", "/catalog/{item_id}", "GET"): 1,
        ("canary", "synthetic", "/catalog/{item_id}", "GET"): 1,
        ("canary", "shadow", "/orders", "GET"): 1,
        # an unknown header value never becomes a label value of its own
        ("canary", "other", "/catalog/{item_id}", "GET"): 1,
    }


async def test_switch_is_bounded_partial_and_clearable() -> None:
    async with _client(Settings(track="canary", latency_factor=1.25, seed=1)) as client:
        bad = await client.post("/__switch", json={"error_rate": 2})
        assert bad.status_code == 422
        assert "2" not in str(bad.json()["detail"][0].get("input", ""))
        assert (await client.post("/__switch", json={"nonsense": 1})).status_code == 422
        state = (await client.post("/__switch", json={"latency_factor": 2})).json()
        assert state["switch"]["latency_factor"] == 2
        assert state["version"]["latency_factor"] == 1.25
        state = (await client.post("/__switch", json={"error_rate": 1})).json()
        assert state["switch"] == {"latency_ms": 0, "latency_factor": 2, "error_rate": 1, "leak": False}
        assert (await client.get("/catalog/1")).status_code == 500
        codes = await _samples(client, "http_requests_total")
        assert [lab["code"] for lab, _ in codes] == ["500"]
        await client.delete("/__switch")
        assert (await client.get("/catalog/1")).status_code == 200


async def test_leak_switch_grows_the_task_gauge() -> None:
    async with _client(Settings(track="canary", seed=1)) as client:
        before = dict((lab["track"], v) for lab, v in await _samples(client, "demo_tasks"))["canary"]
        await client.post("/__switch", json={"leak": True})
        for _ in range(30):
            await client.get("/catalog/1")
        # A task counts once it has lived a second: the first scrape sees them, a later one counts them.
        assert dict((lab["track"], v) for lab, v in await _samples(client, "demo_tasks"))["canary"] == before
        await asyncio.sleep(1.05)
        after = dict((lab["track"], v) for lab, v in await _samples(client, "demo_tasks"))["canary"]
        leaked = (await client.get("/__switch")).json()["leaked_tasks"]
        assert leaked == 30
        assert after >= before + 30
        await client.delete("/__switch")
        await asyncio.sleep(0)
        assert (await client.get("/__switch")).json()["leaked_tasks"] == 0


async def test_orders_survive_a_dead_dependency_through_the_breaker() -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: every call fails fast
    async with _client(Settings(track="stable", downstream=dead, seed=1)) as client:
        answers = [(await client.post("/orders", json={"sku": "A-1", "qty": 1})).json() for _ in range(20)]
        calls = {lab["outcome"]: v for lab, v in await _samples(client, "demo_downstream_calls_total")}
        breaker = await _samples(client, "demo_circuit_breaker_open")
    assert all(a["accepted"] for a in answers)
    assert answers[-1]["risk_source"] == "breaker-open"
    assert calls["error"] == CircuitBreaker().min_calls
    assert calls["rejected"] == 20 - CircuitBreaker().min_calls
    assert breaker[0][1] == 1.0


def test_breaker_opens_probes_and_closes() -> None:
    breaker = CircuitBreaker(window=10, min_calls=4, failure_ratio=0.5, open_for=0.05)
    for ok in (True, False, False, True):
        assert breaker.allow()
        breaker.record(ok)
    assert breaker.state() == "open"
    assert not breaker.allow()
    import time

    time.sleep(0.06)
    assert breaker.state() == "half-open"
    assert breaker.allow()  # one probe
    assert not breaker.allow()  # and only one
    breaker.record(True)
    assert breaker.state() == "closed"


@pytest.mark.parametrize("body", [{"sku": "x" * 65}, {"qty": 0}, {"qty": 10_000}])
async def test_orders_refuse_out_of_bounds_input_without_echoing_it(body: dict[str, object]) -> None:
    async with _client(Settings(track="stable", seed=1)) as client:
        resp = await client.post("/orders", json=body)
    assert resp.status_code == 422
    assert "xxxxxxxx" not in resp.text


async def test_http1_client_reads_chunked_and_sized_answers_and_reuses_connections() -> None:
    from gate.demo.http1 import Http1Client, Http1Error

    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                if head.startswith(b"GET /chunked"):
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                    )
                elif head.startswith(b"GET /slow"):
                    await asyncio.sleep(1)
                else:
                    writer.write(b'HTTP/1.1 503 Busy\r\nContent-Length: 11\r\n\r\n{"ok":true}')
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Http1Client(f"http://127.0.0.1:{port}")
    try:
        assert (await client.get("/chunked", {}, timeout=2)).body == b"abcde"
        answer = await client.post_json("/x", {"a": 1}, {"X-Traffic-Source": "shadow"}, timeout=2)
        assert (answer.status, answer.json()) == (503, {"ok": True})
        assert connections == 1  # the second request reused the kept connection
        with pytest.raises(TimeoutError):
            await client.get("/slow", {}, timeout=0.2)
        with pytest.raises(Http1Error):
            await Http1Client(f"http://127.0.0.1:{free_port()}").get("/", {}, timeout=2)
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()
