"""The records between the Locust processes and gate: batches, HDR merging, the sample reservoir."""

from __future__ import annotations

import json
import random

from gate.drivers.load import LoadPlan, LoadTask
from gate.drivers.load.protocol import MAX_LINE, MAX_RAW_PER_BATCH, BatchBuilder, dump, parse_line
from gate.drivers.load.result import Aggregator, aggregate

PLAN = LoadPlan(stable_url="http://a", canary_url="http://b", tasks=(LoadTask("x"),), max_samples=1000)


def test_batch_keeps_every_latency_in_the_histogram_and_a_uniform_sample_raw() -> None:
    rng = random.Random(7)
    builder = BatchBuilder("n1", ("stable", "canary"))
    values_ms = [rng.uniform(1, 100) for _ in range(MAX_RAW_PER_BATCH + 5000)]
    for v in values_ms:
        builder.add("stable", v, None)
    builder.add("canary", None, "ConnectionRefusedError")
    builder.add("canary", 12.5, "HTTP 503")
    builder.add("nowhere", 1.0, None)  # an unknown track is ignored
    record = builder.take(final=True, t=1.0, cpu=0.5, clock=2.0, users=3, busy=0.7)
    stable, canary = record["tracks"]["stable"], record["tracks"]["canary"]
    assert stable["n"] == len(values_ms) and len(stable["us"]) == MAX_RAW_PER_BATCH
    assert canary == {**canary, "n": 2, "errors": 2, "us": [12500]}
    assert canary["failures"] == {"ConnectionRefusedError": 1, "HTTP 503": 1}
    assert parse_line(dump(record)) == json.loads(json.dumps(record))
    # The next batch starts empty.
    assert builder.take(final=False, t=2.0, cpu=0.6, clock=3.0, users=3)["tracks"]["stable"]["n"] == 0

    agg = Aggregator(PLAN)
    agg.add({"type": "started", "t": 0.0})
    agg.add(record)
    agg.add({**record, "node": "n2", "clock": 2.0})  # a second node with the same batch
    result = agg.result()
    stable_result = result.tracks["stable"]
    assert stable_result.requests == 2 * len(values_ms)
    assert stable_result.histogram.get_total_count() == 2 * len(values_ms)
    assert len(stable_result.samples) == PLAN.max_samples  # the reservoir is bounded
    true_median = sorted(values_ms)[len(values_ms) // 2] / 1000
    assert abs((stable_result.quantile(0.5) or 0) - true_median) / true_median < 0.01  # HDR: 3 digits
    assert result.tracks["canary"].failures == {"ConnectionRefusedError": 2, "HTTP 503": 2}


def test_parse_line_refuses_anything_that_is_not_a_record() -> None:
    for junk in ("", "hello", "[1,2]", '{"no": "type"}', "{broken", '{"type": 3}', "x" * (MAX_LINE + 1)):
        assert parse_line(junk) is None
    assert parse_line(b'{"type": "done", "t": 1}\n') == {"type": "done", "t": 1}


def test_aggregate_from_a_log_without_a_run_says_so() -> None:
    result = aggregate(PLAN, ["[2026] some log line", '{"type": "error", "message": "no workers"}'])
    assert not result.complete
    assert result.problems == ["no workers"]
    result = aggregate(PLAN, [])
    assert result.problems and "no load run" in result.problems[0]
