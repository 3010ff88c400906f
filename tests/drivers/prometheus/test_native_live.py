"""Native histograms end to end: a real Prometheus (`--enable-feature=native-histograms`) scrapes a
protobuf exposition of two tracks' native histograms; `measure` reads `increase()` of them from the
HTTP API as native-histogram evidence with exact schema-3 edges, and the judge decides on it.

The exposition is written by hand from io.prometheus.client's metrics.proto (MetricFamily, Metric,
Histogram with schema, zero bucket, spans and deltas), length-delimited as Prometheus negotiates it.
"""

from __future__ import annotations

import math
import struct
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from gate.contract import parse_contract
from gate.contract.sli import SliLibrary
from gate.drivers.prometheus import PrometheusClient, measure
from gate.drivers.promserver import PrometheusServer, ScrapeJob, scrape_config
from gate.judge import judge
from gate.judge.evidence import NativeHistogram
from tests.support.ports import free_port

SCHEMA = 3
INTERVAL = 0.5
PROTO = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return _varint(number << 3 | wire) + payload


def _bytes(number: int, data: bytes) -> bytes:
    return _field(number, 2, _varint(len(data)) + data)


def native_histogram(labels: dict[str, str], values: np.ndarray) -> bytes:
    """One Metric holding a native histogram of `values` (bucket i: (2^((i-1)/8), 2^(i/8)])."""
    index = np.ceil(np.log2(values) * 2.0**SCHEMA).astype(int)
    lo, hi = int(index.min()), int(index.max())
    counts = np.bincount(index - lo, minlength=hi - lo + 1)
    deltas = np.diff(np.concatenate(([0], counts)))
    h = _field(1, 0, _varint(int(values.size)))  # sample_count
    h += _field(2, 1, struct.pack("<d", float(values.sum())))  # sample_sum
    h += _field(5, 0, _varint(_zigzag(SCHEMA)))  # schema (sint32)
    h += _field(6, 1, struct.pack("<d", 2.0**-128))  # zero_threshold
    h += _field(7, 0, _varint(0))  # zero_count
    span = _field(1, 0, _varint(_zigzag(lo))) + _field(2, 0, _varint(hi - lo + 1))
    h += _bytes(12, span)  # positive_span
    h += _bytes(13, b"".join(_varint(_zigzag(int(d)) & (2**64 - 1)) for d in deltas))  # positive_delta
    metric = b"".join(_bytes(1, _bytes(1, k.encode()) + _bytes(2, v.encode())) for k, v in labels.items())
    return _bytes(4, metric + _bytes(7, h))


class Exposition:
    """Serves both tracks' histograms; each scrape sees `step` more observations per track."""

    def __init__(self, stable: np.ndarray, canary: np.ndarray, step: int) -> None:
        self.tracks = {"stable": stable, "canary": canary}
        self.step, self.scrapes = step, 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer.lock:
                    outer.scrapes += 1
                    seen = outer.scrapes * outer.step
                metrics = b"".join(
                    native_histogram(
                        {"track": t, "traffic_source": "synthetic"}, v[: max(1, min(seen, v.size))]
                    )
                    for t, v in outer.tracks.items()
                )
                family = _bytes(1, b"http_request_duration_seconds") + _field(3, 0, _varint(4)) + metrics
                body = _varint(len(family)) + family
                self.send_response(200)
                self.send_header("Content-Type", PROTO)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


CONTRACT = """
apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {name: shop}
spec:
  target:
    stable: {url: http://127.0.0.1:1}
    canary: {url: http://127.0.0.1:2}
  prometheus: {scrapeInterval: 500ms}
  load: {tasks: [{name: home, get: /}]}
  objectives:
    - {sli: http-latency-native, quantile: 0.95, maxIncrease: 10%, sources: [synthetic], minEvidence: {duration: 2s}}
"""


@pytest.fixture
def native_prometheus(tmp_path: Path) -> Iterator[tuple[PrometheusServer, list[ScrapeJob]]]:
    server = PrometheusServer(
        tmp_path / "data",
        free_port(),
        config=scrape_config([], scrape_interval=INTERVAL),
        extra_args=["--enable-feature=native-histograms"],
    )
    try:
        server.start()
        yield server, []
    finally:
        server.stop()


@pytest.mark.parametrize("factor", [1.0, 1.5])
def test_native_histograms_from_a_real_prometheus_decide(
    native_prometheus: tuple[PrometheusServer, list[ScrapeJob]], factor: float
) -> None:
    server, _ = native_prometheus
    rng = np.random.default_rng(7)
    n = 20_000
    stable = rng.lognormal(math.log(0.08), 0.4, n)
    canary = rng.lognormal(math.log(0.08), 0.4, n) * factor
    exposition = Exposition(stable, canary, step=2_000)
    try:
        server.reload(
            scrape_config([ScrapeJob("shop", [f"127.0.0.1:{exposition.port}"])], scrape_interval=INTERVAL)
        )
        contract = parse_contract(CONTRACT, filename="<test>")
        library = SliLibrary.default()
        with PrometheusClient(server.url, retries=1) as client:
            deadline = time.monotonic() + 30
            evidence = None
            while time.monotonic() < deadline:
                time.sleep(0.3)
                now = time.time()
                evidence = measure(contract, library, client, now - 4, now)
                items = [evidence.get("http-latency-native", "synthetic", t) for t in ("stable", "canary")]
                if all(
                    isinstance(i, NativeHistogram) and not (i.missing or i.stale) and i.counts[-1] >= 4_000
                    for i in items
                ):
                    break
            else:
                raise AssertionError(f"no native histogram evidence from Prometheus: {evidence}")
    finally:
        exposition.stop()
    assert evidence is not None
    item = evidence.get("http-latency-native", "synthetic", "canary")
    assert isinstance(item, NativeHistogram) and item.resolution == SCHEMA
    # Exact schema-3 edges: consecutive finite edges are 2^(1/8) apart.
    finite = [b for b in item.bounds if 0 < b < math.inf]
    ratios = np.array(finite[1:]) / np.array(finite[:-1])
    assert np.allclose(ratios, 2 ** (1 / 8), rtol=1e-9)
    judgement = judge(
        contract.spec.objectives, evidence, final=True, units={"http-latency-native": "seconds"}
    )
    latency = judgement.verdicts[0]
    if factor == 1.0:
        assert latency.status.value == "pass", latency.reason
    else:
        assert latency.status.value == "fail", latency.reason
        assert judgement.decision.action != "promote"


def test_an_answer_that_fits_no_schema_is_unusable_not_judged() -> None:
    from gate.contract.sli import SliLibrary as Lib
    from gate.drivers.prometheus.measure import _native_item
    from gate.judge.evidence import Window

    contract = parse_contract(CONTRACT, filename="<test>")
    rendered = Lib.default().render(
        contract.spec.objectives[0], contract=contract, window=60.0, form="buckets", sources=["synthetic"]
    )
    span = Window(start=0.0, end=60.0)
    good = _native_item(rendered, [(0, 1.0, 2 ** (1 / 8), 5.0), (0, 2 ** (1 / 8), 2 ** (2 / 8), 3.0)], span)
    assert isinstance(good, NativeHistogram) and good.resolution == 3 and good.counts[-1] == 8.0
    mixed = _native_item(rendered, [(0, 1.0, 2 ** (1 / 8), 5.0), (0, 2.0, 4.0, 3.0)], span)
    assert mixed.missing and "does not fit schema" in mixed.note
