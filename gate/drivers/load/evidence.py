"""A load run's measurements as judge evidence: source `synthetic`, both tracks.

Latency SLIs (kind `latency-histogram`) get the raw per-request samples (seconds, a uniform sample of
at most `MAX_SAMPLES` per track); error-ratio SLIs (kind `counter-ratio`) get the request and failure
counts — every failed request: an error status (>= 400) or no response at all. Other kinds (gauges,
rates) describe the service's process, not the requests, and come from Prometheus. A saturated run
marks every item `saturated`, which the judge turns into Inconclusive; an unfinished run says so in
each item's note.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol, cast

from gate.judge.evidence import MAX_SAMPLES, Counts, Evidence, Item, Samples, Source, Track, Window

if TYPE_CHECKING:
    from gate.contract.sli import SliLibrary
    from gate.drivers.load.result import LoadResult

LATENCY_KINDS = frozenset({"latency-histogram"})
RATIO_KINDS = frozenset({"counter-ratio"})


class HasSli(Protocol):
    """An objective of the contract or of the judge: all evidence needs is its SLI's name."""

    @property
    def sli(self) -> str: ...


def load_evidence(
    result: LoadResult,
    objectives: Iterable[HasSli],
    library: SliLibrary,
) -> Evidence:
    """Evidence for every objective whose SLI the load measures itself (latency, error ratio)."""
    window = Window(start=result.started_at, end=max(result.started_at, result.ended_at))
    notes = []
    if result.saturated:
        notes.append(result.saturation_reason)
    if result.running:
        notes.append("the load run is still going: its samples so far")
    elif not result.complete:
        notes.append("the load run ended early: " + ("; ".join(result.problems) or "stopped"))
    note = " | ".join(notes)[:900]
    slis: dict[str, dict[Source, dict[Track, Item]]] = {}
    for sli in dict.fromkeys(o.sli for o in objectives):
        if sli not in library:
            continue
        kind = library.get(sli).kind
        per_track: dict[Track, Item] = {}
        for name, measured in result.tracks.items():
            track = cast(Track, name)
            common: dict[str, Any] = {"saturated": result.saturated, "note": note, "window": window}
            if kind in LATENCY_KINDS:
                values = measured.samples[:MAX_SAMPLES]
                per_track[track] = Samples.from_array(values, missing=not values, **common)
            elif kind in RATIO_KINDS:
                per_track[track] = Counts(
                    errors=measured.errors,
                    total=measured.requests,
                    missing=measured.requests == 0,
                    **common,
                )
        if per_track:
            slis[sli] = {"synthetic": per_track}
    # The items are validated models already (samples built from an array); pydantic keeps them as they are.
    return Evidence(slis=slis)
