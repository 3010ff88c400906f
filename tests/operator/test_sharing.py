"""Gates measuring the same thing over the same window share one measurement; others do not."""

from __future__ import annotations

from typing import Any

from gate.engine.runner import LookRequest
from gate.operator import resource
from gate.operator.engine_bridge import EvidenceCache, SharedEvidenceAnalyst, _measures, aligned, base_library

SPEC: dict[str, Any] = {
    "service": "checkout",
    "target": {
        "stable": {"url": "http://127.0.0.1:1", "service": "s"},
        "canary": {"url": "http://127.0.0.1:2", "service": "c", "deployment": "d"},
    },
    "prometheus": {"url": "http://127.0.0.1:9"},
    "traffic": {"selector": {"service": "checkout"}},
    "objectives": [{"sli": "http-latency", "quantile": 0.95, "max": "500ms", "sources": ["production"]}],
    "steps": ["10%", "analyze 1h"],
}


class CountingPrometheus:
    def __init__(self) -> None:
        self.calls = 0

    def query(self, promql: str, at: float | None = None) -> list[Any]:
        self.calls += 1
        return []

    def query_range(self, *args: Any, **kwargs: Any) -> list[Any]:
        self.calls += 1
        return []


def _analyst(
    i: int, spec: dict[str, Any], cache: EvidenceCache, client: CountingPrometheus, grid: float = 0.0
) -> SharedEvidenceAnalyst:
    gate = {
        "metadata": {"name": f"g{i}", "namespace": "n"},
        "spec": {**spec, "router": {"type": "gateway-api", "httpRoute": f"r{i}"}},
    }
    contract = resource.contract_of(gate, library=base_library())
    return SharedEvidenceAnalyst(
        contract, base_library(), client, cache=cache, measures=_measures(contract), grid=grid
    )  # type: ignore[arg-type]


def test_same_measurement_same_window_is_measured_once() -> None:
    cache, client = EvidenceCache(), CountingPrometheus()
    analysts = [_analyst(i, SPEC, cache, client) for i in range(5)]
    for a in analysts:
        a.look(LookRequest(1, 1, 100.0, 110.0, None, ("production",)))
    once = client.calls
    assert once >= 1 and cache.hits == 4
    analysts[0].look(LookRequest(2, 1, 100.0, 120.0, None, ("production",)))  # another window
    assert client.calls == 2 * once


def test_other_objectives_or_services_are_measured_apart() -> None:
    cache, client = EvidenceCache(), CountingPrometheus()
    other = {**SPEC, "objectives": [{"sli": "http-error-ratio", "max": "1%", "sources": ["production"]}]}
    named = {**SPEC, "service": "payments"}
    for i, spec in enumerate((SPEC, other, named)):
        _analyst(i, spec, cache, client).look(LookRequest(1, 1, 100.0, 110.0, None, ("production",)))
    assert cache.hits == 0


def test_gates_started_moments_apart_share_the_aligned_window() -> None:
    cache, client = EvidenceCache(), CountingPrometheus()
    starts = [100.3, 101.7, 103.2, 104.9]  # one batch: weights applied over a few seconds
    for i, since in enumerate(starts):
        _analyst(i, SPEC, cache, client, grid=5.0).look(
            LookRequest(1, 1, since, since + 10.0, None, ("production",))
        )
    assert client.calls >= 1 and cache.hits == 3
    unaligned, plain = EvidenceCache(), CountingPrometheus()
    for i, since in enumerate(starts):
        _analyst(i, SPEC, unaligned, plain).look(
            LookRequest(1, 1, since, since + 10.0, None, ("production",))
        )
    assert unaligned.hits == 0 and plain.calls == 4 * client.calls


def test_an_aligned_window_never_starts_before_the_weight_nor_ends_after_the_look() -> None:
    for since, at in [(100.3, 110.3), (100.0, 110.0), (99.99, 117.01), (7.2, 3600.5)]:
        got = aligned(LookRequest(1, 1, since, at, None, ("production",)), 5.0)
        assert since <= got.since < since + 5.0 and at - 5.0 < got.at <= at
        assert got.since % 5.0 == 0 and got.at % 5.0 == 0
    short = LookRequest(1, 1, 101.0, 104.0, None, ("production",))  # rounded: 105 .. 100, empty
    assert aligned(short, 5.0) == short
    assert aligned(short, 0.0) == short
