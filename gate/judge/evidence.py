"""Evidence: what was measured, per SLI × source × track, in one of four forms.

These models are also the `gate judge` file format, so they are strict (unknown fields are errors) and
bounded (no entry may hold more values than the judge is built to read). Values are in base units:
seconds for latencies, plain numbers otherwise. Nothing here computes a verdict.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator
from pydantic.json_schema import SkipJsonSchema

from gate.contract.errors import ContractError, Problem
from gate.contract.jsonsrc import parse_json
from gate.contract.models import Objective, Policy
from gate.contract.pydantic_errors import problems_from_validation
from gate.contract.yamlsrc import Source as YamlSource
from gate.contract.yamlsrc import parse_yaml

Source = Literal["synthetic", "shadow", "production"]
Track = Literal["stable", "canary"]
SOURCES: tuple[Source, ...] = ("synthetic", "shadow", "production")
TRACKS: tuple[Track, ...] = ("stable", "canary")

MAX_SAMPLES = 200_000
"""Raw values per entry. Beyond this, send a histogram: the judge compresses large samples anyway."""
MAX_BUCKETS = 512
MAX_POINTS = 20_000
MAX_SLIS = 64
MAX_NOTE = 1_000
MAX_VALUE = 1e12
"""Largest value, count or bucket edge the judge accepts (a latency of 31,000 years; 10^12 requests)."""


def domain_problem(values: npt.ArrayLike, what: str, *, negative: bool = False) -> str | None:
    """Why these values are outside the judge's domain (the first offender, by index), or None.

    Non-finite values, values beyond MAX_VALUE, and (unless `negative`) values below zero are refused:
    a latency of -1 s or 1e308 s, a count of NaN is not a measurement.
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        return None
    bad = ~np.isfinite(arr) | (np.abs(arr) > MAX_VALUE)
    if not negative:
        bad |= arr < 0
    if not bool(bad.any()):
        return None
    i = int(np.flatnonzero(bad)[0])
    rule = "finite" if negative else "finite and ≥ 0"
    return (
        f"{what}[{i}] is {float(arr[i])!r}: {what} must be {rule} and at most {MAX_VALUE:g} "
        f"({int(bad.sum())} of {arr.size} are not)"
    )


Note = Annotated[str, Field(max_length=MAX_NOTE)]
SliName = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_.:-]+$")]


class Window(BaseModel):
    """The time span the evidence covers, in unix seconds (time comes in as data; the judge has no clock)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: float
    end: float

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if not (math.isfinite(self.start) and math.isfinite(self.end)) or self.end < self.start:
            raise ValueError("window needs finite start <= end (unix seconds)")
        return self

    @property
    def duration(self) -> float:
        """Seconds covered."""
        return self.end - self.start


class FaultWindow(BaseModel):
    """When a chaos experiment's fault was in place (unix seconds): `start` when it was injected, `end`
    when it was undone (None while it is still in place). Recovery (`recoverWithin`) is timed from `start`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: float
    end: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> FaultWindow:
        if not math.isfinite(self.start) or (
            self.end is not None and (not math.isfinite(self.end) or self.end < self.start)
        ):
            raise ValueError("a fault window needs a finite start <= end (unix seconds)")
        return self


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stale: bool = False
    """The newest data is older than the freshness limit: not evidence of the present."""
    saturated: bool = False
    """The load generator was saturated: its latencies measure the generator, not the service."""
    missing: bool = False
    """The series does not exist (no data). The other fields are then ignored."""
    note: Note = ""
    window: Window | None = None


class Samples(_Item):
    """Raw per-request values (seconds for latency), e.g. from gate's own Locust load."""

    kind: Literal["samples"] = "samples"
    values: list[float] = Field(default_factory=list, max_length=MAX_SAMPLES)

    _array: npt.NDArray[np.float64] | None = PrivateAttr(default=None)

    @classmethod
    def from_array(cls, values: npt.ArrayLike, **fields: Any) -> Samples:
        """Build from a numpy array without a Python-level copy being validated value by value."""
        arr = np.asarray(values, dtype=np.float64).ravel()
        if arr.size > MAX_SAMPLES:
            raise ValueError(f"{arr.size} samples exceed the limit of {MAX_SAMPLES}; send a histogram")
        item = cls.model_validate({"values": [], **fields})
        item.values = arr.tolist()
        item._array = arr
        return item

    @model_validator(mode="after")
    def _domain(self) -> Samples:
        # Per-request values are latencies (or other amounts) — never negative, never non-finite.
        if self._array is None and self.values:
            arr = np.asarray(self.values, dtype=np.float64)
            why = domain_problem(arr, "values")
            if why is not None:
                raise ValueError(why)
            self._array = arr  # converted once: `array()` reuses it
        return self

    def array(self) -> npt.NDArray[np.float64]:
        """The values as a float64 array (converted once, then cached)."""
        if self._array is None or self._array.size != len(self.values):
            self._array = np.fromiter(self.values, dtype=np.float64, count=len(self.values))
        return self._array


class Histogram(_Item):
    """Bucket counts as Prometheus gives them: upper edges (`le`, +Inf last) and cumulative counts."""

    kind: Literal["histogram"] = "histogram"
    bounds: list[float] = Field(default_factory=list, max_length=MAX_BUCKETS)
    counts: list[float] = Field(default_factory=list, max_length=MAX_BUCKETS)

    @model_validator(mode="after")
    def _shape(self) -> Histogram:
        return self._check_edges()

    def _check_edges(self) -> Histogram:
        if self.missing:
            return self
        if len(self.bounds) != len(self.counts):
            raise ValueError(f"bounds has {len(self.bounds)} entries but counts has {len(self.counts)}")
        if any(math.isnan(b) for b in self.bounds):
            raise ValueError("bounds must be numbers (NaN is not a bucket edge)")
        if not self.bounds or self.bounds[-1] != math.inf:
            raise ValueError('the last bound must be +Inf (Prometheus\' le="+Inf" bucket)')
        if any(b >= a for a, b in zip(self.bounds[1:], self.bounds[:-1], strict=False)):
            raise ValueError("bounds must be strictly increasing")
        why = domain_problem(self.bounds[:-1], "bounds", negative=True) or domain_problem(
            self.counts, "counts"
        )
        if why is not None:
            raise ValueError(why)
        return self


MAX_NATIVE_BUCKETS = 16_384
"""Buckets per side (positive or negative) a native histogram may list; a longer answer is refused."""
MAX_NATIVE_SPANS = 4_096
NATIVE_SCHEMAS = (-4, 8)
"""The schemas Prometheus defines: bucket growth factor 2^(2^-schema), from ×65536 (-4) to ×1.0027 (8)."""
_LOG2_MAX = math.log2(MAX_VALUE)


class Span(BaseModel):
    """A run of consecutive native buckets: `offset` indices after the previous run (the first run's
    offset is its first bucket index), `length` buckets long."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    offset: int = Field(ge=-(2**20), le=2**20)
    length: int = Field(ge=0, le=MAX_NATIVE_BUCKETS)


def native_upper_edge(schema: int, index: int) -> float:
    """Upper edge of native bucket `index` at `schema`: 2^(index · 2^-schema) (Prometheus' rule)."""
    return float(2.0 ** (index / 2.0**schema))


def native_buckets(schema: int, spans: list[Span], counts: list[float], what: str) -> list[tuple[int, float]]:
    """(index, count) of the buckets the spans describe; ValueError when they do not fit."""
    covered = sum(s.length for s in spans)
    if covered != len(counts):
        raise ValueError(f"{what}: the spans cover {covered} buckets but {len(counts)} counts are given")
    why = domain_problem(counts, f"{what}Counts")
    if why is not None:
        raise ValueError(why)
    out: list[tuple[int, float]] = []
    index: int | None = None
    k = 0
    for i, span in enumerate(spans):
        if index is not None and span.offset < 0:
            raise ValueError(f"{what}Spans[{i}].offset is {span.offset}: only the first span may be negative")
        index = span.offset if index is None else index + span.offset
        for _ in range(span.length):
            if abs(index) / 2.0**schema > _LOG2_MAX:
                raise ValueError(
                    f"{what}Spans[{i}] reaches bucket index {index}, whose edge 2^({index}/2^{schema}) is "
                    f"beyond {MAX_VALUE:g}"
                )
            out.append((index, float(counts[k])))
            k += 1
            index += 1
    return out


def downscale(schema: int, buckets: list[tuple[int, float]], by: int) -> list[tuple[int, float]]:
    """The same buckets at `schema - by`: 2^by neighbours merge (exact: edges of the coarser schema are
    edges of the finer one). Index i at schema s lies in index ceil(i / 2^by) at schema s - by."""
    merged: dict[int, float] = {}
    for index, count in buckets:
        coarse = -((-index) >> by)  # ceil(index / 2^by) for negative indices too
        merged[coarse] = merged.get(coarse, 0.0) + count
    return sorted(merged.items())


class NativeHistogram(Histogram):
    """A Prometheus native (sparse, exponential) histogram, as its protobuf exposition and the HTTP API
    describe it: `schema` (bucket growth 2^(2^-schema)), a zero bucket [-zeroThreshold, zeroThreshold]
    holding `zeroCount`, and positive (negative) buckets as `positiveSpans` + absolute
    `positiveCounts` (`negativeSpans` + `negativeCounts`). Positive bucket i holds (2^((i-1)·2^-schema),
    2^(i·2^-schema)]. The judge reads it as a histogram with exactly those edges (`bounds` / `counts` are
    computed, never given). Above `MAX_BUCKETS` edges the schema is lowered until they fit (merging
    neighbours is exact); the verdict's notes say so.
    """

    kind: Literal["native-histogram"] = "native-histogram"  # type: ignore[assignment]
    histogram_schema: int = Field(default=0, alias="schema", ge=NATIVE_SCHEMAS[0], le=NATIVE_SCHEMAS[1])
    zero_threshold: float = Field(default=0.0, alias="zeroThreshold", ge=0)
    zero_count: float = Field(default=0.0, alias="zeroCount", ge=0)
    positive_spans: list[Span] = Field(
        default_factory=list, alias="positiveSpans", max_length=MAX_NATIVE_SPANS
    )
    positive_counts: list[float] = Field(
        default_factory=list, alias="positiveCounts", max_length=MAX_NATIVE_BUCKETS
    )
    negative_spans: list[Span] = Field(
        default_factory=list, alias="negativeSpans", max_length=MAX_NATIVE_SPANS
    )
    negative_counts: list[float] = Field(
        default_factory=list, alias="negativeCounts", max_length=MAX_NATIVE_BUCKETS
    )
    bounds: SkipJsonSchema[list[float]] = Field(default_factory=list, exclude=True)
    counts: SkipJsonSchema[list[float]] = Field(default_factory=list, exclude=True)
    resolution: SkipJsonSchema[int | None] = Field(default=None, exclude=True)
    """The schema the edges were built at (lower than `schema` when the buckets had to be merged)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _no_edges(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("bounds" in data or "counts" in data):
            raise ValueError(
                "a native histogram gives schema, zeroThreshold, zeroCount and positiveSpans/positiveCounts; "
                "its bounds and counts are computed from them (use kind: histogram to give le edges)"
            )
        return data

    @model_validator(mode="after")
    def _shape(self) -> NativeHistogram:
        if self.missing:
            return self
        why = domain_problem([self.zero_threshold, self.zero_count], "[zeroThreshold, zeroCount]")
        if why is not None:
            raise ValueError(why)
        schema = self.histogram_schema
        pos = native_buckets(schema, self.positive_spans, self.positive_counts, "positive")
        neg = native_buckets(schema, self.negative_spans, self.negative_counts, "negative")
        reduced = 0
        while True:
            p2, n2 = (
                (downscale(schema, pos, reduced), downscale(schema, neg, reduced)) if reduced else (pos, neg)
            )
            if _edge_count(p2) + _edge_count(n2) + 3 <= MAX_BUCKETS:
                break
            if schema - reduced <= NATIVE_SCHEMAS[0]:
                raise ValueError(
                    f"the buckets need more than {MAX_BUCKETS} edges even at schema {schema - reduced}"
                )
            reduced += 1
        bounds, counts = native_edges(schema - reduced, p2, n2, self.zero_threshold, self.zero_count)
        self.bounds, self.counts, self.resolution = bounds, counts, schema - reduced
        if reduced:
            self.note = (self.note + "; " if self.note else "") + (
                f"schema {schema} buckets merged to schema {schema - reduced} (at most {MAX_BUCKETS} edges)"
            )[:MAX_NOTE]
        self._check_edges()
        return self


def _edge_count(buckets: list[tuple[int, float]]) -> int:
    """Edges one side needs: its populated range, contiguous, plus the lower edge."""
    live = [i for i, c in buckets if c > 0]
    return max(live) - min(live) + 2 if live else 0


def native_edges(
    schema: int,
    pos: list[tuple[int, float]],
    neg: list[tuple[int, float]],
    zero_threshold: float,
    zero_count: float,
) -> tuple[list[float], list[float]]:
    """Upper edges (+Inf last) and cumulative counts of a native histogram, contiguous from the lowest
    populated bucket's lower edge to the highest one's upper edge (empty buckets in between kept, so
    two tracks at one schema share every edge)."""
    edges: list[tuple[float, float]] = []  # (upper edge, count in the bucket ending there)
    live_neg = [(i, c) for i, c in neg if c > 0]
    if live_neg:
        lo, hi = min(i for i, _ in live_neg), max(i for i, _ in live_neg)
        counts = dict(live_neg)
        # Negative bucket i holds [-2^(i·2^-s), -2^((i-1)·2^-s)): from the most negative upward.
        edges.append((-native_upper_edge(schema, hi), 0.0))
        for i in range(hi, lo - 1, -1):
            edges.append((-native_upper_edge(schema, i - 1), counts.get(i, 0.0)))
    if zero_count > 0 or zero_threshold > 0 or not edges:
        if zero_threshold > 0 and (not edges or edges[-1][0] < -zero_threshold):
            edges.append((-zero_threshold, 0.0))
        edges.append((zero_threshold, zero_count))
    live_pos = [(i, c) for i, c in pos if c > 0]
    if live_pos:
        lo, hi = min(i for i, _ in live_pos), max(i for i, _ in live_pos)
        counts = dict(live_pos)
        first = native_upper_edge(schema, lo - 1)
        if first > edges[-1][0]:
            edges.append((first, 0.0))
        for i in range(lo, hi + 1):
            edge = native_upper_edge(schema, i)
            if edge <= edges[-1][0]:
                # A bucket inside the zero bucket (Prometheus keeps none): fold it into the zero bucket.
                edges[-1] = (edges[-1][0], edges[-1][1] + counts.get(i, 0.0))
                continue
            edges.append((edge, counts.get(i, 0.0)))
    bounds = [e for e, _ in edges] + [math.inf]
    running = 0.0
    cumulative = []
    for _, count in edges:
        running += count
        cumulative.append(running)
    cumulative.append(running)
    return bounds, cumulative


class Counts(_Item):
    """Errors out of requests (or any hits out of trials)."""

    kind: Literal["counts"] = "counts"
    errors: float = Field(default=0, ge=0)
    total: float = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _within(self) -> Counts:
        why = domain_problem([self.errors, self.total], "[errors, total]")
        if why is not None:
            raise ValueError(why)
        if not self.missing and self.errors > self.total:
            raise ValueError(f"errors ({self.errors:g}) exceed total ({self.total:g})")
        return self


class GaugeSeries(_Item):
    """A gauge over time: (unix seconds, value) points, e.g. goroutines or resident memory, or any SLI
    per step (e.g. p99 per scrape step) for a `recoverWithin` objective."""

    kind: Literal["gauge"] = "gauge"
    points: list[tuple[float, float]] = Field(default_factory=list, max_length=MAX_POINTS)

    @model_validator(mode="after")
    def _domain(self) -> GaugeSeries:
        for i, (t, v) in enumerate(self.points):
            if not (math.isfinite(t) and math.isfinite(v) and abs(t) <= MAX_VALUE and abs(v) <= MAX_VALUE):
                raise ValueError(f"points[{i}] is [{t!r}, {v!r}]: time and value must be finite numbers")
        return self


Item = Annotated[Samples | NativeHistogram | Histogram | Counts | GaugeSeries, Field(discriminator="kind")]
PerTrack = dict[Track, Item]
PerSource = dict[Source, PerTrack]


def _richness(item: Item) -> tuple[int, float, float]:
    """Orders two entries for the same key: usable beats flagged, then the later window, then more data."""
    usable = 0 if (item.missing or item.stale) else 1
    end = item.window.end if item.window else -math.inf
    if isinstance(item, Samples):
        size = float(len(item.values))
    elif isinstance(item, Histogram):
        size = item.counts[-1] if item.counts else 0.0
    elif isinstance(item, Counts):
        size = item.total
    else:
        size = float(len(item.points))
    return usable, end, size


class Evidence(BaseModel):
    """All evidence for one judgement: `slis[sli][source][track]`."""

    model_config = ConfigDict(extra="forbid")

    slis: dict[SliName, PerSource] = Field(default_factory=dict, max_length=MAX_SLIS)
    chaos: dict[SliName, FaultWindow] = Field(default_factory=dict, max_length=MAX_SLIS)
    """Per chaos experiment (the objectives' `during`): when its fault was in place, for `recoverWithin`."""

    def get(self, sli: str, source: Source, track: Track) -> Item | None:
        """The entry for one SLI × source × track, or None."""
        return self.slis.get(sli, {}).get(source, {}).get(track)

    def merge(self, other: Evidence) -> Evidence:
        """Combine two bodies of evidence; per (sli, source, track) the later, richer, usable entry wins."""
        merged: dict[str, dict[Source, dict[Track, Item]]] = {
            sli: {src: dict(tracks) for src, tracks in per_source.items()}
            for sli, per_source in self.slis.items()
        }
        for sli, per_source in other.slis.items():
            for src, tracks in per_source.items():
                slot = merged.setdefault(sli, {}).setdefault(src, {})
                for track, item in tracks.items():
                    mine = slot.get(track)
                    if mine is None or _richness(item) >= _richness(mine):
                        slot[track] = item
        chaos = {**self.chaos, **other.chaos}
        return Evidence.model_construct(slis=merged, chaos=chaos)  # both sides were validated already


MAX_OBJECTIVES = 64


class EvidenceDocument(Evidence):
    """The `gate judge` file: objectives in the contract's syntax, an optional policy, and the evidence.

    ```yaml
    objectives:
      - {sli: http-latency, quantile: 0.95, max: 220ms, maxIncrease: 10%, critical: true}
    policy: {confidence: 99%}
    slis:
      http-latency:
        synthetic:
          stable: {kind: samples, values: [0.101, 0.097, ...]}
          canary: {kind: histogram, bounds: [0.1, 0.25, .inf], counts: [420, 960, 1000]}
    ```
    """

    objectives: list[Objective] = Field(default_factory=list, max_length=MAX_OBJECTIVES)
    policy: Policy | None = None
    units: dict[SliName, Annotated[str, Field(max_length=32)]] = Field(
        default_factory=dict, max_length=MAX_SLIS
    )
    """Optional unit per SLI ("seconds", "ratio", ...) for the reasons in words; known SLIs need none."""


def evidence_json_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of the evidence file `gate judge` reads."""
    schema = EvidenceDocument.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://perfgate.dev/schemas/v1alpha1/evidence.json",
        **schema,
        "title": "Evidence",
    }


MAX_JSON_BYTES = 16 * 1024 * 1024
"""JSON evidence files are refused above this size, before they are parsed. 16 MiB holds about 800,000
raw samples (four full entries of `MAX_SAMPLES`); beyond that, send histograms — the judge compresses
large samples anyway, and parsing a bigger file would cost far more memory than the judgement."""
MAX_YAML_BYTES = 1024 * 1024


def parse_evidence(text: str, filename: str = "<evidence>") -> EvidenceDocument:
    """Validate an evidence file's text (JSON or YAML); `ContractError` lists every problem with its place.

    JSON (up to 16 MiB) suits raw samples: it is read strictly (a repeated key, a huge integer or deep
    nesting is refused with its line and column). YAML (up to 1 MiB) is read with the contract's guarded
    parser, so problems carry line and column too.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        if size > MAX_JSON_BYTES:
            raise ContractError(
                [Problem(filename, None, None, "", "evidence is larger than 16 MiB; send histograms")]
            )
        source = YamlSource(filename=filename, data=parse_json(text, filename), tree=None)
    else:
        if size > MAX_YAML_BYTES:
            msg = (
                "YAML evidence is limited to 1 MiB; write large samples as JSON (up to 16 MiB) or histograms"
            )
            raise ContractError([Problem(filename, None, None, "", msg)])
        source = parse_yaml(text, filename)
    if not isinstance(source.data, dict):
        raise ContractError([source.problem([], "evidence is a mapping with objectives, policy and slis")])
    try:
        document = EvidenceDocument.model_validate(source.data)
    except ValidationError as exc:
        raise ContractError(problems_from_validation(source, exc)) from None
    seen: dict[str, int] = {}
    problems = []
    for i, objective in enumerate(document.objectives):
        if objective.key in seen:
            msg = (
                f"objective key {objective.key!r} repeats objectives[{seen[objective.key]}]; give one a `key`"
            )
            problems.append(source.problem(["objectives", i], msg))
        seen.setdefault(objective.key, i)
    if problems:
        raise ContractError(problems)
    return document
