"""The operator's shared bounds: the Kubernetes API token bucket and the shared Prometheus client
(against a real Prometheus)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gate.operator.limits import SharedPrometheus, TokenBucket
from tests.support.prom import OpenMetrics, backfilled_prometheus

T0 = 1_700_000_000


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_bucket_allows_a_burst_then_the_rate() -> None:
    t = FakeTime()
    bucket = TokenBucket(10, 5, clock=t.clock, sleep=t.sleep)
    for _ in range(5):
        assert bucket.acquire() == 0
    waits = [bucket.acquire() for _ in range(10)]
    assert all(w > 0 for w in waits)
    assert t.now == pytest.approx(1.0)  # 10 more calls at 10/s after the burst: one second
    assert bucket.taken == 15


def test_the_bucket_refills_while_idle() -> None:
    t = FakeTime()
    bucket = TokenBucket(2, 2, clock=t.clock, sleep=t.sleep)
    bucket.acquire()
    bucket.acquire()
    t.now += 10
    assert bucket.acquire() == 0 and bucket.acquire() == 0
    assert bucket.delay() == pytest.approx(0.5)


def test_a_bucket_needs_a_positive_rate() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 1)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    om = OpenMetrics()
    om.counter("requests", {"track": "stable"}, [(T0 + i, 10 * i) for i in range(120)])
    with backfilled_prometheus(om.text(), Path(tmp_path_factory.mktemp("prom"))) as server:
        yield server.url


def test_identical_queries_of_many_gates_are_sent_once(prometheus: str) -> None:
    client = SharedPrometheus(prometheus, concurrency=2)
    try:
        answers: list[float] = []
        lock = threading.Lock()

        def gate() -> None:
            samples = client.query("sum(rate(requests_total[1m]))", at=T0 + 100)
            with lock:
                answers.append(samples[0].value)

        threads = [threading.Thread(target=gate) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers == [pytest.approx(10.0)] * 20
        assert client.query_count == 20
        assert client.sent == 1
        # Another evaluation time is another query.
        client.query("sum(rate(requests_total[1m]))", at=T0 + 110)
        assert client.sent == 2
        assert client.max_in_flight <= 2
    finally:
        client.shutdown()


def test_a_run_closing_the_shared_client_leaves_it_open(prometheus: str) -> None:
    client = SharedPrometheus(prometheus)
    client.close()  # what a run's drivers do when it ends
    assert client.query("vector(1)", at=T0)[0].value == 1
    client.shutdown()
