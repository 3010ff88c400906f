"""The records a Locust process streams back to gate: one JSON object per line on its stdout.

Both sides use this module: the Locust process builds batches (`BatchBuilder`), gate reads them
(`parse_line`). It imports neither Locust nor gevent, so gate's own process may import it.

Records:
- `{"type": "started", "t": unix, "nodes": n}` once the users start spawning;
- `{"type": "batch", "node": id, "seq": n, "final": bool, "t": unix, "cpu": s, "busy": s | null,
  "clock": s, "users": n, "tracks": {track: {"n", "errors", "failures": {kind: n}, "us": [...], "hdr": str}}}`
  every report interval from every node (a local runner, or each worker of a master);
  `cpu` and `clock` are the node's cumulative CPU seconds and monotonic clock, so gate can tell
  how busy each load generator was over any interval; `busy` adds the time its event loop waited
  for a CPU (Linux `/proc/self/schedstat`): on a crowded machine a generator that wants a whole
  core but gets a third of one is just as saturated as one that uses a whole core;
- `{"type": "done", "t": unix}` after every node's final batch;
- `{"type": "error", "message": str}` when the run cannot go on.

Latencies travel in whole microseconds: raw (`us`, subsampled above `MAX_RAW_PER_BATCH`) and as an
HDR histogram (`hdr`, 3 significant digits, every request) that gate merges across nodes and batches.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

HDR_MIN_US = 1
HDR_MAX_US = 3_600_000_000  # one hour: a request slower than that is a failure anyway
HDR_DIGITS = 3
MAX_RAW_PER_BATCH = 20_000
MAX_LINE = 16 * 1024 * 1024
"""A record longer than this is not from our worker; gate drops it rather than parse it."""


def new_histogram() -> HdrHistogram:
    return HdrHistogram(HDR_MIN_US, HDR_MAX_US, HDR_DIGITS)


@dataclass
class _TrackBatch:
    n: int = 0
    errors: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    latencies_us: list[int] = field(default_factory=list)


class BatchBuilder:
    """Collects one node's requests between two reports (runs inside the Locust process)."""

    def __init__(self, node: str, tracks: tuple[str, ...]) -> None:
        self.node = node
        self.tracks = tracks
        self.seq = 0
        self._current = {t: _TrackBatch() for t in tracks}

    def add(self, track: str, latency_ms: float | None, failure: str | None) -> None:
        """One request: its latency (None when no response came back) and its failure kind."""
        batch = self._current.get(track)
        if batch is None:
            return
        batch.n += 1
        if failure is not None:
            batch.errors += 1
            batch.failures[failure] = batch.failures.get(failure, 0) + 1
        if latency_ms is not None:
            batch.latencies_us.append(max(HDR_MIN_US, round(latency_ms * 1000.0)))

    def take(
        self, *, final: bool, t: float, cpu: float, clock: float, users: int, busy: float | None = None
    ) -> dict[str, Any]:
        """The batch so far as a record; starts a new one."""
        current, self._current = self._current, {t_: _TrackBatch() for t_ in self.tracks}
        tracks: dict[str, Any] = {}
        for track, batch in current.items():
            hist = new_histogram()
            for v in batch.latencies_us:
                hist.record_value(min(v, HDR_MAX_US))
            raw = batch.latencies_us
            if len(raw) > MAX_RAW_PER_BATCH:
                # A uniform subsample keeps the distribution; the histogram still has every request.
                raw = random.sample(raw, MAX_RAW_PER_BATCH)
            tracks[track] = {
                "n": batch.n,
                "errors": batch.errors,
                "failures": batch.failures,
                "us": raw,
                "hdr": hist.encode().decode("ascii") if batch.latencies_us else "",
            }
        self.seq += 1
        return {
            "type": "batch",
            "node": self.node,
            "seq": self.seq,
            "final": final,
            "t": t,
            "cpu": cpu,
            "busy": busy,
            "clock": clock,
            "users": users,
            "tracks": tracks,
        }


def sched_busy() -> float | None:
    """Seconds this thread ran on a CPU plus seconds it waited for one, or None off Linux."""
    try:
        with open("/proc/thread-self/schedstat") as fh:
            run_ns, wait_ns, _slices = fh.read().split()
    except (OSError, ValueError):
        return None
    return (int(run_ns) + int(wait_ns)) / 1e9


def dump(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"))


def parse_line(line: str | bytes) -> dict[str, Any] | None:
    """A record from one line, or None for anything that is not one (logs, noise, oversize)."""
    if len(line) > MAX_LINE:
        return None
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = text.strip()
    if not text.startswith("{"):
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("type"), str):
        return None
    return record
