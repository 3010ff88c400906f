"""Measure a contract's SLIs in Prometheus and hand the judge evidence it can trust.

One query per SLI and form covers every track × source (the SLI library groups by their label keys);
objectives that render the same query share it. On top of those, one freshness query and one `up`
query per call, whatever the number of SLIs. Evidence forms follow the SLI kind: histogram bucket
counts over the window for latency, error/total counts for ratios, range series for gauges and rates.

Freshness is part of measuring, not of judging: a missing series, data older than twice the scrape
interval, or a scrape target that is down (`up == 0`) yields an item marked missing or stale with a
note saying why, which the judge turns into Inconclusive. Nothing here decides anything.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import promql_parser
from pydantic import ValidationError

from gate.contract import promql
from gate.contract.sli import Form, RenderedQuery, SliLibrary, SliTemplate
from gate.contract.units import format_promql_duration
from gate.drivers.prometheus.client import PrometheusClient, Sample, Series
from gate.judge.evidence import (
    MAX_BUCKETS,
    MAX_POINTS,
    SOURCES,
    TRACKS,
    Counts,
    Evidence,
    GaugeSeries,
    Histogram,
    Item,
    NativeHistogram,
    Source,
    Track,
    Window,
)

if TYPE_CHECKING:
    from gate.contract.models import Contract, Objective

FORM_OF_KIND: dict[str, Form] = {
    "latency-histogram": "buckets",
    "counter-ratio": "counts",
    "rate": "series",
    "gauge-level": "series",
    "gauge-trend": "series",
}
"""The evidence form read for each SLI kind: what the judge's statistics need, not a point estimate."""

MAX_RANGE_POINTS = 1000
"""Range queries use the scrape interval as step, coarsened so a series never exceeds this many points."""
STALE_FACTOR = 2.0
"""Data older than this many scrape intervals is not evidence of the present."""
_PROBE_LABEL = "gate_probe"
_TARGET_LABELS = ("job", "instance")
_NOTE_MAX = 900


@dataclass
class PlannedQuery:
    """One rendered query and the evidence slots it fills."""

    key: str  # the SLI name under which its evidence is filed
    rendered: RenderedQuery
    sources: set[Source]
    selectors: list[int] = field(default_factory=list)  # indices into the freshness probes
    over_time: bool = False
    """The SLI's value per step over the window (a range query), for `recoverWithin` objectives."""


@dataclass
class _Probe:
    """A vector selector of some query, probed for the newest sample time per track × source × target."""

    selector: str
    rendered: RenderedQuery


def plan_queries(
    contract: Contract,
    library: SliLibrary,
    objectives: Sequence[Objective],
    window: float,
    scrape_interval: float,
) -> list[PlannedQuery]:
    """The distinct queries the objectives need; objectives rendering the same PromQL share one."""
    by_text: dict[str, PlannedQuery] = {}
    keys: dict[str, str] = {}
    for objective in objectives:
        template: SliTemplate = library.with_extra(contract.spec.slis).get(objective.sli)
        if objective.recover_within is not None:
            # Judged on its SLI over time only: the window's buckets or counts would mix the fault's
            # first seconds with the recovery.
            _plan_over_time(
                contract,
                library,
                objective,
                template,
                scrape_interval=scrape_interval,
                by_text=by_text,
                keys=keys,
            )
            continue
        form = FORM_OF_KIND[template.kind]
        # A rate's series needs a short rate window (a few scrapes), not the whole evaluation window.
        span = max(4 * scrape_interval, 1.0) if form == "series" else window
        # Every source in the one query: objectives that differ only in their sources then share it.
        rendered = library.render(objective, contract=contract, window=span, form=form, sources=list(SOURCES))
        key = evidence_key(objective)
        owner = keys.setdefault(key, rendered.promql)
        if owner != rendered.promql:  # cannot happen for one contract; refuse rather than mix series
            raise ValueError(f"objectives filed under {key} read different series")
        query = by_text.get(rendered.promql)
        if query is None:
            query = by_text[rendered.promql] = PlannedQuery(key, rendered, set())
        query.sources.update(objective.sources)
    return list(by_text.values())


def _plan_over_time(
    contract: Contract,
    library: SliLibrary,
    objective: Objective,
    template: SliTemplate,
    *,
    scrape_interval: float,
    by_text: dict[str, PlannedQuery],
    keys: dict[str, str],
) -> None:
    """The SLI's value form (e.g. p99 via histogram_quantile) as a range query, for recovery.

    Its rate window is a few scrapes, so each step sees the recent requests only: the measured recovery
    lags the real one by at most that window (late, never early)."""
    quantile = objective.quantile
    if template.kind == "latency-histogram" and quantile is None:
        quantile = 0.5  # the judge's bounds talk about the median when no quantile is named
    rendered = library.render(
        objective,
        contract=contract,
        window=max(4 * scrape_interval, 1.0),
        form="value",
        quantile=quantile,
        sources=list(SOURCES),
    )
    key = recovery_key(objective)
    owner = keys.setdefault(key, rendered.promql)
    if owner != rendered.promql:
        raise ValueError(f"objectives filed under {key} read different series")
    query = by_text.get(rendered.promql)
    if query is None:
        query = by_text[rendered.promql] = PlannedQuery(key, rendered, set(), over_time=True)
    query.sources.update(objective.sources)


def recovery_key(objective: Objective) -> str:
    """Where an objective's SLI over time is filed (for `recoverWithin`): `http-latency:p99-over-time`."""
    what = f"p{objective.quantile * 100:g}" if objective.quantile is not None else "value"
    return f"{evidence_key(objective)}:{what}-over-time"


def evidence_key(objective: Objective) -> str:
    """Where an objective's evidence is filed: its SLI name, or `sli:METHOD-route-HASH` for a
    route-restricted one, so two routes of one SLI never share a slot (the hash of the exact method
    and route keeps `/orders/{id}` and `/orders/id` apart, the slug keeps it readable)."""
    if objective.route is None:
        return objective.sli
    exact = f"{objective.route.method or ''} {objective.route.path}"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", exact).strip("-")[:80]
    digest = hashlib.sha256(exact.encode("utf-8")).hexdigest()[:8]
    return f"{objective.sli}:{slug}-{digest}"


def measure(
    contract: Contract,
    library: SliLibrary,
    client: PrometheusClient,
    start: float,
    end: float,
    *,
    objectives: Sequence[Objective] | None = None,
) -> Evidence:
    """Evidence for every objective's SLI × track × source over [start, end] (unix seconds).

    Queries run at `end` (the `time` parameter), so the same call on the same data gives the same
    evidence. Prometheus errors propagate (`PermanentError` / `TemporaryError`); absent or stale
    data does not raise: it is evidence marked missing or stale."""
    if not (math.isfinite(start) and math.isfinite(end)) or end <= start:
        raise ValueError(f"measure needs start < end, got start={start} end={end}")
    chosen = list(contract.spec.objectives if objectives is None else objectives)
    interval = float(contract.spec.prometheus.scrape_interval)
    window = end - start
    queries = plan_queries(contract, library, chosen, window, interval)
    probes = _probes(queries)

    answers: dict[int, list[Sample] | list[Series]] = {}
    for i, query in enumerate(queries):
        rq = query.rendered
        if rq.range_query or query.over_time:
            step = max(interval, window / MAX_RANGE_POINTS)
            answers[i] = client.query_range(rq.promql, start, end, step)
        else:
            answers[i] = client.query(rq.promql, at=end)

    freshness = _freshness(client, probes, window, interval, end)
    down = _down_targets(client, freshness, end)

    evidence: dict[str, dict[Source, dict[Track, Item]]] = {}
    span = Window(start=start, end=end)
    for i, query in enumerate(queries):
        items = (
            _gauges(query.rendered, [a for a in answers[i] if isinstance(a, Series)], span)
            if query.over_time
            else _items(query.rendered, answers[i], span)
        )
        per_source = evidence.setdefault(query.key, {})
        for source in _sources_of(query):
            slot = per_source.setdefault(source, {})
            for track in TRACKS:
                found = items.get((track, source if query.rendered.per_source else None))
                item = (
                    found
                    if found is not None
                    else _missing(query.rendered, track, source, span, interval, over_time=query.over_time)
                )
                slot[track] = _judge_freshness(
                    item, query, track, source, fresh=freshness, down=down, end=end, interval=interval
                )
    return Evidence.model_validate({"slis": evidence})


# ---- the freshness probes -------------------------------------------------------------------------


def _probes(queries: list[PlannedQuery]) -> list[_Probe]:
    """Every distinct vector selector the queries read, remembered per query."""
    index: dict[str, int] = {}
    probes: list[_Probe] = []
    for query in queries:
        histogram = query.rendered.kind == "latency-histogram"
        for selector in selectors_of(query.rendered.promql, inf_bucket_only=histogram):
            if selector not in index:
                index[selector] = len(probes)
                probes.append(_Probe(selector, query.rendered))
            query.selectors.append(index[selector])
    return probes


def selectors_of(query: str, *, inf_bucket_only: bool = False) -> list[str]:
    """The vector selectors of a PromQL query, rendered back with escaped label values.

    `inf_bucket_only` narrows `_bucket` selectors to `le="+Inf"`: every histogram has that bucket, so
    it tells a series' age as well as all of them, at a fraction of the cost."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            text = _render_selector(node, inf_bucket_only=inf_bucket_only)
            if text not in found:
                found.append(text)
            return
        if isinstance(node, promql_parser.MatrixSelector):
            walk(node.vector_selector)
            return
        for attr in ("expr", "lhs", "rhs", "param"):
            child = getattr(node, attr, None)
            if child is not None:
                walk(child)
        for arg in getattr(node, "args", None) or ():
            walk(arg)

    walk(promql.parse(query))
    return found


_OPS = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}


def _render_selector(node: promql_parser.VectorSelector, *, inf_bucket_only: bool = False) -> str:
    parts = []
    names = set()
    for matcher in node.matchers.matchers:
        op = _OPS[str(matcher.op).rsplit(".", 1)[-1]]
        names.add(matcher.name)
        parts.append(f"{promql.check_label_name(matcher.name)}{op}{promql.string_literal(matcher.value)}")
    name = node.name or ""
    if inf_bucket_only and name.endswith("_bucket") and "le" not in names:
        parts.append('le="+Inf"')
    return f"{name}{{{', '.join(parts)}}}"


@dataclass
class _Fresh:
    """Per probe × track × source: the newest sample time and the targets behind it."""

    newest: dict[tuple[int, Track, Source | None], float] = field(default_factory=dict)
    targets: dict[tuple[int, Track, Source | None], set[tuple[str, str]]] = field(
        default_factory=lambda: defaultdict(set)
    )
    jobs: set[str] = field(default_factory=set)


def _freshness(
    client: PrometheusClient, probes: list[_Probe], window: float, interval: float, end: float
) -> _Fresh:
    """ONE query: the newest sample time of every probed selector per track × source × target.

    `timestamp(sel)` is exact for series alive at `end`; the coarse subquery still finds series that
    died inside the window (a target that went down leaves staleness markers, not old samples)."""
    fresh = _Fresh()
    if not probes:
        return fresh
    # Coarse on purpose: the subquery only finds series that vanished; live ones are timed exactly.
    resolution = format_promql_duration(max(interval, window / 20))
    span = format_promql_duration(window)
    parts = []
    for i, probe in enumerate(probes):
        group = ", ".join([*probe.rendered.by, *_TARGET_LABELS])
        sel = probe.selector
        inner = f"timestamp({sel}) or max_over_time(timestamp({sel})[{span}:{resolution}])"
        parts.append(f'label_replace(max by ({group}) ({inner}), "{_PROBE_LABEL}", "{i}", "", "")')
    for sample in client.query(" or ".join(parts), at=end):
        try:
            i = int(sample.labels.get(_PROBE_LABEL, ""))
            probe = probes[i]
        except (ValueError, IndexError):
            continue
        where = probe.rendered.classify(sample.labels)
        if where is None or not math.isfinite(sample.value):
            continue
        key = (i, where[0], where[1])
        fresh.newest[key] = max(fresh.newest.get(key, -math.inf), sample.value)
        job, instance = sample.labels.get("job", ""), sample.labels.get("instance", "")
        if job:
            fresh.targets[key].add((job, instance))
            fresh.jobs.add(job)
    return fresh


def _down_targets(client: PrometheusClient, fresh: _Fresh, end: float) -> set[tuple[str, str]]:
    """Targets behind the SLIs whose `up` is 0 at `end` (one query for all jobs)."""
    if not fresh.jobs:
        return set()
    return {
        (s.labels.get("job", ""), s.labels.get("instance", ""))
        for s in client.up(fresh.jobs, at=end)
        if s.value == 0
    }


def _judge_freshness(
    item: Item,
    query: PlannedQuery,
    track: Track,
    source: Source,
    *,
    fresh: _Fresh,
    down: set[tuple[str, str]],
    end: float,
    interval: float,
) -> Item:
    where: Source | None = source if query.rendered.per_source else None
    newest = max((fresh.newest.get((i, track, where), -math.inf) for i in query.selectors), default=-math.inf)
    targets: set[tuple[str, str]] = set()
    for i in query.selectors:
        targets |= fresh.targets.get((i, track, where), set())
    notes = [item.note] if item.note else []
    stale = item.stale
    dead = sorted(t for t in targets if t in down)
    if dead:
        stale = True
        names = ", ".join(f"{job}/{instance}" for job, instance in dead[:5])
        notes.append(f"scrape target {names} is down (up == 0): its data is not evidence")
    if not item.missing and math.isfinite(newest):
        age = end - newest
        if age > STALE_FACTOR * interval:
            stale = True
            notes.append(
                f"newest sample is {age:.0f}s old, more than {STALE_FACTOR:g} × the {interval:g}s "
                "scrape interval"
            )
    elif item.missing and math.isfinite(newest):
        notes.append(f"the series was last seen {end - newest:.0f}s before the end of the window")
    elif not item.missing:
        # Data whose age cannot be established is not known to be fresh: fail safe.
        stale = True
        notes.append("the age of the data could not be established (no sample time found)")
    if stale == item.stale and len(notes) == (1 if item.note else 0):
        return item
    note = "; ".join(notes)
    return item.model_copy(update={"stale": stale, "note": note[:_NOTE_MAX]})


# ---- answers to evidence --------------------------------------------------------------------------


def _sources_of(query: PlannedQuery) -> list[Source]:
    return [s for s in SOURCES if s in query.sources]


def _missing(
    rq: RenderedQuery, track: Track, source: Source, span: Window, interval: float, *, over_time: bool = False
) -> Item:
    where = f"track {track}" + (f", source {source}" if rq.per_source else "")
    note = f"no data for {rq.sli} ({where}) in the window: the series does not exist or has no samples"
    if over_time:
        return GaugeSeries(missing=True, note=note, window=span)
    if not rq.range_query and span.duration < 2 * interval:
        note += (
            f"; the window ({span.duration:g}s) is shorter than two scrape intervals ({2 * interval:g}s), "
            "and increase() needs two samples in it"
        )
    kinds: dict[str, type[Histogram] | type[Counts] | type[GaugeSeries]] = {
        "buckets": Histogram,
        "counts": Counts,
        "series": GaugeSeries,
    }
    return kinds.get(rq.form, GaugeSeries)(missing=True, note=note, window=span)


Where = tuple[Track, Source | None]


def _items(rq: RenderedQuery, answer: Sequence[Sample] | Sequence[Series], span: Window) -> dict[Where, Item]:
    if rq.form == "buckets":
        return _histograms(rq, [a for a in answer if isinstance(a, Sample)], span)
    if rq.form == "counts":
        return _counts(rq, [a for a in answer if isinstance(a, Sample)], span)
    return _gauges(rq, [a for a in answer if isinstance(a, Series)], span)


def _histograms(rq: RenderedQuery, samples: Iterable[Sample], span: Window) -> dict[Where, Item]:
    buckets: dict[Where, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    out: dict[Where, Item] = {}
    for sample in samples:
        where = rq.classify(sample.labels)
        if where is None:
            continue
        if sample.buckets is not None:
            out[where] = _native_item(rq, sample.buckets, span)
            continue
        try:
            le = float(sample.labels.get("le", ""))
        except ValueError:
            continue
        if math.isnan(le) or le == -math.inf:
            continue  # not a bucket edge; an answer cannot make the histogram unordered
        value = sample.value if math.isfinite(sample.value) and sample.value > 0 else 0.0
        buckets[where][le if math.isinf(le) else le * rq.le_scale] += value
    for where, per_le in buckets.items():
        bounds = sorted(per_le)
        if not bounds or not math.isinf(bounds[-1]):
            out[where] = Histogram(
                missing=True, note=f'{rq.sli}: the histogram has no le="+Inf" bucket', window=span
            )
            continue
        if len(bounds) > MAX_BUCKETS:
            out[where] = Histogram(
                missing=True, note=f"{rq.sli}: {len(bounds)} buckets, more than {MAX_BUCKETS}", window=span
            )
            continue
        # increase() extrapolates each bucket on its own: restore the cumulative order it may break.
        counts: list[float] = []
        running = 0.0
        for bound in bounds:
            running = max(running, per_le[bound])
            counts.append(running)
        note = "" if counts[-1] > 0 else f"{rq.sli}: no requests in the window"
        out[where] = Histogram(bounds=bounds, counts=counts, note=note, window=span)
    return out


def _native_item(rq: RenderedQuery, buckets: Sequence[tuple[int, float, float, float]], span: Window) -> Item:
    """A native histogram answer ([rule, left, right, count] per bucket) as the judge's native kind.

    The API writes each bucket's edges; the schema and indices are read back from them (positive
    bucket i is (2^((i-1)·2^-s), 2^(i·2^-s)]), so the judge gets exact exponential edges. An answer
    that does not fit one schema, or is too large, is unusable evidence (missing, with why), never judged."""
    try:
        return _native_histogram(rq, buckets, span)
    except (ValueError, ValidationError) as exc:
        words = str(exc).splitlines()[-2 if isinstance(exc, ValidationError) else -1].strip()
        return Histogram(
            missing=True, note=f"{rq.sli}: unusable native histogram: {words}"[:_NOTE_MAX], window=span
        )


def _native_histogram(
    rq: RenderedQuery, buckets: Sequence[tuple[int, float, float, float]], span: Window
) -> NativeHistogram:
    if rq.le_scale != 1.0:
        raise ValueError("a native histogram is in seconds; drop the template's `scale`")
    schema: int | None = None
    zero_threshold, zero_count = 0.0, 0.0
    pos: dict[int, float] = {}
    neg: dict[int, float] = {}
    for _, left, right, raw in buckets:
        if not (math.isfinite(left) and math.isfinite(right) and right >= left):
            raise ValueError(f"bucket ({left!r}, {right!r}] is not an interval")
        count = raw if math.isfinite(raw) and raw > 0 else 0.0
        if left <= 0 <= right:
            zero_threshold, zero_count = max(zero_threshold, right, -left), zero_count + count
            continue
        lo, hi = (left, right) if left > 0 else (-right, -left)
        growth = math.log2(hi / lo)
        found = round(-math.log2(growth))
        if schema is None:
            schema = found
        if found != schema or abs(-math.log2(growth) - found) > 1e-6:
            raise ValueError(f"bucket ({left!r}, {right!r}] does not fit schema {schema}")
        index = round(math.log2(hi) * 2.0**schema)
        (pos if left > 0 else neg)[index] = count
    schema = 0 if schema is None else schema
    if not -4 <= schema <= 8:
        raise ValueError(f"schema {schema} is outside Prometheus' -4..8")

    def spans(side: dict[int, float]) -> tuple[list[dict[str, int]], list[float]]:
        runs: list[dict[str, int]] = []
        last: int | None = None
        for index in sorted(side):
            if last is not None and index == last + 1:
                runs[-1]["length"] += 1
            else:
                runs.append({"offset": index if last is None else index - last - 1, "length": 1})
            last = index
        return runs, [side[i] for i in sorted(side)]

    ps, pc = spans(pos)
    ns, nc = spans(neg)
    total = zero_count + sum(pc) + sum(nc)
    return NativeHistogram.model_validate(
        {
            "schema": schema,
            "zeroThreshold": zero_threshold,
            "zeroCount": zero_count,
            "positiveSpans": ps,
            "positiveCounts": pc,
            "negativeSpans": ns,
            "negativeCounts": nc,
            "note": "" if total > 0 else f"{rq.sli}: no requests in the window",
            "window": span,
        }
    )


def _counts(rq: RenderedQuery, samples: Iterable[Sample], span: Window) -> dict[Where, Item]:
    parts: dict[Where, dict[str, float]] = defaultdict(dict)
    label = rq.part_label or ""
    for sample in samples:
        where = rq.classify(sample.labels)
        if where is None:
            continue
        part = sample.labels.get(label, "total") if label else "total"
        value = sample.value if math.isfinite(sample.value) and sample.value > 0 else 0.0
        parts[where][part] = parts[where].get(part, 0.0) + value
    out: dict[Where, Item] = {}
    for where, values in parts.items():
        if "total" not in values:
            continue
        total = values["total"]
        # Extrapolation can put errors a hair above the total; the ratio cannot exceed 1.
        errors = min(values.get("errors", 0.0), total)
        note = "" if total > 0 else f"{rq.sli}: no events in the window"
        out[where] = Counts(errors=errors, total=total, note=note, window=span)
    return out


def _gauges(rq: RenderedQuery, series: Iterable[Series], span: Window) -> dict[Where, Item]:
    points: dict[Where, list[tuple[float, float]]] = defaultdict(list)
    for one in series:
        where = rq.classify(one.labels)
        if where is None:
            continue
        points[where].extend((t, v) for t, v in one.points if math.isfinite(v))
    out: dict[Where, Item] = {}
    for where, found in points.items():
        if not found:
            continue
        found.sort()
        out[where] = GaugeSeries(points=found[-MAX_POINTS:], window=span)
    return out
