"""SLI templates and their rendering into PromQL: one query per SLI for every track × source.

A template names Prometheus series with a `$selector` placeholder; gate writes the selector itself
from the contract's track and source label matchers (escaped), groups by their label keys, and
`RenderedQuery.classify` maps each result series back to its (track, source).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import promql_parser
from pydantic import Field, ValidationError, field_validator, model_validator

from gate.contract import promql
from gate.contract.base import SOURCES, Float, Model, Source, Track
from gate.contract.errors import ContractError, Problem
from gate.contract.units import format_promql_duration, parse_duration

if TYPE_CHECKING:
    from gate.contract.models import Contract, Objective

SliKind = Literal["latency-histogram", "counter-ratio", "gauge-level", "gauge-trend", "rate"]
Form = Literal["value", "buckets", "counts", "series"]
Unit = Literal[
    "seconds",
    "ratio",
    "per-second",
    "bytes",
    "bytes-per-second",
    "cores",
    "count",
]

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PART_LABEL = "gate_part"
"""Label that tells the parts of a `counts` answer apart: `errors` and `total`."""

PARTS: dict[str, tuple[str, ...]] = {
    "latency-histogram": ("buckets",),
    "counter-ratio": ("errors", "total"),
    "rate": ("counter",),
    "gauge-level": ("gauge",),
    "gauge-trend": ("gauge",),
}
FORMS: dict[str, tuple[Form, ...]] = {
    "latency-histogram": ("value", "buckets"),
    "counter-ratio": ("value", "counts", "series"),
    "rate": ("value", "counts", "series"),
    "gauge-level": ("value", "series"),
    "gauge-trend": ("value", "series"),
}
_PLACEHOLDER = "$selector"
_PROBE = 'gate_selector_probe="x"'


class SliQueries(Model):
    """The Prometheus series of a template, each a vector selector containing `{$selector}`."""

    buckets: str | None = Field(
        default=None, description="latency-histogram: the cumulative `_bucket` series (with `le`)."
    )
    native: str | None = Field(
        default=None,
        description="latency-histogram, instead of `buckets`: a Prometheus native histogram series "
        "(no `_bucket` suffix, no `le`); needs Prometheus with native histograms enabled.",
    )
    errors: str | None = Field(default=None, description="counter-ratio: the counter of failed events.")
    total: str | None = Field(default=None, description="counter-ratio: the counter of all events.")
    counter: str | None = Field(
        default=None, description="rate: the counter whose per-second rate is the SLI."
    )
    gauge: str | None = Field(default=None, description="gauge-level and gauge-trend: the gauge series.")

    @field_validator("buckets", "native", "errors", "total", "counter", "gauge")
    @classmethod
    def _selector_shape(cls, value: str | None) -> str | None:
        if value is not None:
            check_part(value)
        return value


def check_part(text: str) -> None:
    """A template part must be one vector selector with `$selector` inside its braces."""
    if text.count(_PLACEHOLDER) != 1:
        raise ValueError(
            "write the series as a selector with `$selector` once inside its braces, e.g. foo{$selector}"
        )
    if "$" in text.replace(_PLACEHOLDER, ""):
        raise ValueError(
            "only `$selector` may be substituted into a template's PromQL; gate adds the window, rate() "
            "and sums itself, so write the series alone, e.g. queue_depth{$selector}"
        )
    expr = promql.parse(text.replace(_PLACEHOLDER, _PROBE))
    if not isinstance(expr, promql_parser.VectorSelector):
        raise ValueError(
            'a template part is one series selector like http_requests_total{$selector, code=~"5.."}; '
            "gate adds rate(), sums and windows itself"
        )
    if expr.offset is not None or expr.at is not None:
        raise ValueError("offset and @ modifiers are not allowed in a template part")
    names = [m.name for m in expr.matchers.matchers]
    if "gate_selector_probe" not in names:
        raise ValueError("`$selector` must stand inside the selector's braces: foo{$selector}")


class SliTemplate(Model):
    """A named, parameterised PromQL SLI: its kind, unit, and the series it reads."""

    name: str = Field(default="", description="The template's name (the key it is defined under).")
    kind: SliKind = Field(
        description="latency-histogram, counter-ratio, gauge-level, gauge-trend or rate; decides how "
        "gate aggregates the series and what evidence it yields."
    )
    unit: Unit = Field(description="Unit of the SLI's value after `scale`: seconds, ratio, bytes, ...")
    description: str = Field(default="", description="What the SLI measures, in a sentence.")
    promql: SliQueries = Field(description="The series the SLI reads (which parts depends on `kind`).")
    scale: Float = Field(
        default=1.0,
        gt=0,
        description="Multiply raw values (and histogram `le` bounds) by this to get `unit` "
        "(0.001 for millisecond histograms).",
    )
    aggregate: Literal["sum", "avg", "max", "min"] = Field(
        default="sum", description="How gauge series of several pods combine into one per track and source."
    )
    scope: Literal["traffic", "process"] = Field(
        default="traffic",
        description="`traffic`: series carry the source labels (per track × source); "
        "`process`: runtime series of the whole process (per track only).",
    )
    service_label: str | None = Field(
        default=None,
        description="Label naming the service (e.g. destination_service_name); "
        "gate matches it to spec.service.",
    )
    better: Literal["lower", "higher"] = Field(
        default="lower", description="Which direction is an improvement (for regressions against stable)."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value and not NAME_RE.match(value):
            raise ValueError("an SLI name is lowercase letters, digits and dashes, like http-latency")
        return value

    @field_validator("service_label")
    @classmethod
    def _service_label(cls, value: str | None) -> str | None:
        return None if value is None else promql.check_label_name(value)

    @model_validator(mode="after")
    def _parts_match_kind(self) -> SliTemplate:
        wanted = PARTS[self.kind]
        given = {
            k for k in ("buckets", "native", "errors", "total", "counter", "gauge") if getattr(self.promql, k)
        }
        if self.kind == "latency-histogram" and "native" in given and "buckets" not in given:
            wanted = ("native",)  # a native histogram instead of the classic `_bucket` series
        missing = [p for p in wanted if p not in given]
        extra = sorted(given - set(wanted))
        if missing or extra:
            raise ValueError(
                f"a {self.kind} template needs promql: {', '.join(wanted)}"
                + (f" (missing {', '.join(missing)})" if missing else "")
                + (f" (not used: {', '.join(extra)})" if extra else "")
            )
        return self

    def part(self, name: str) -> str:
        """The PromQL text of one part (`buckets`, `errors`, `total`, `counter`, `gauge`)."""
        value = getattr(self.promql, name)
        if not isinstance(value, str):
            raise KeyError(f"SLI {self.name} has no part {name}")
        return value


@dataclass(frozen=True)
class RenderedQuery:
    """One PromQL query covering every track × source of an SLI, and how to read its answer."""

    sli: str
    kind: SliKind
    unit: Unit
    form: Form
    promql: str
    by: list[str]
    tracks: dict[Track, dict[str, str]]
    sources: dict[Source, dict[str, str]] = field(default_factory=dict)
    le_scale: float = 1.0
    """Multiply `le` bounds of a `buckets` answer by this to get `unit` (values are already scaled)."""
    range_query: bool = False
    """True for `series`: evaluate with query_range over the window, not as an instant query."""
    part_label: str | None = None
    """For `counts`: the label whose value says `errors` or `total`."""
    per_source: bool = True
    """False for process-scoped SLIs: one series per track, applying to every source."""

    def classify(self, labels: Mapping[str, str]) -> tuple[Track, Source | None] | None:
        """The (track, source) a result series belongs to; None when it matches none or several.

        A missing label counts as the empty string, as in Prometheus. For a process-scoped SLI the
        source is None: the series belongs to the whole process of that track.
        """
        tracks = [t for t, m in self.tracks.items() if _matches(m, labels)]
        if len(tracks) != 1:
            return None
        if not self.per_source:
            return tracks[0], None
        sources = [s for s, m in self.sources.items() if _matches(m, labels)]
        if len(sources) != 1:
            return None
        return tracks[0], sources[0]


def _matches(matchers: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k, "") == v for k, v in matchers.items())


def _dimension(matchers: Mapping[Any, Mapping[str, str]]) -> list[str]:
    """Matchers selecting the union of several label sets (keys every set constrains)."""
    sets = list(matchers.values())
    if not sets:
        return []
    keys = sorted(set.intersection(*(set(m) for m in sets)))
    out = []
    for key in keys:
        promql.check_label_name(key)
        values = sorted({m[key] for m in sets})
        if len(values) == 1:
            out.append(f"{key}={promql.string_literal(values[0])}")
        else:
            out.append(f"{key}=~{promql.regex_literal(values)}")
    return out


def _by_keys(*dimensions: Mapping[Any, Mapping[str, str]]) -> list[str]:
    keys: set[str] = set()
    for dimension in dimensions:
        for matchers in dimension.values():
            keys.update(matchers)
    return sorted(promql.check_label_name(k) for k in keys)


_DEFAULT_CACHE: dict[str, tuple[tuple[tuple[str, int, int], ...], SliLibrary]] = {}


class SliLibrary:
    """Named SLI templates: the shared `analyses/` folder plus a contract's own `spec.slis`."""

    def __init__(self, templates: Mapping[str, SliTemplate]) -> None:
        self._templates = dict(templates)

    @classmethod
    def default_path(cls) -> Path:
        """The `analyses/` folder: shipped inside the package, or at the root of a checkout."""
        here = Path(__file__).resolve().parent
        for candidate in (here / "analyses", here.parent.parent / "analyses"):
            if candidate.is_dir():
                return candidate
        raise FileNotFoundError("the SLI library (analyses/) is neither in the package nor in the checkout")

    @classmethod
    def default(cls, extra: Mapping[str, SliTemplate] | None = None) -> SliLibrary:
        """The library of `default_path()`, plus `extra` templates (which win on a name clash).

        Read once per process and again only when a file of the folder changes.
        """
        path = cls.default_path()
        stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in sorted(path.glob("*.yaml")))
        cached = _DEFAULT_CACHE.get(str(path))
        if cached is None or cached[0] != stamp:
            cached = (stamp, cls.load(path))
            _DEFAULT_CACHE[str(path)] = cached
        return cached[1].with_extra(extra or {})

    @classmethod
    def load(cls, paths: Path | Sequence[Path], extra: Mapping[str, SliTemplate] | None = None) -> SliLibrary:
        """Load every `*.yaml` of the given folders/files; all problems raised together."""
        from gate.contract.yamlsrc import parse_yaml, read_file

        templates: dict[str, SliTemplate] = {}
        problems: list[Problem] = []
        files: list[Path] = []
        for path in [paths] if isinstance(paths, Path) else list(paths):
            files.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
        for file in files:
            try:
                source = parse_yaml(read_file(file, what="SLI library"), str(file))
            except ContractError as exc:
                problems.extend(exc.problems)
                continue
            if not isinstance(source.data, dict):
                problems.append(source.problem([], "an SLI library file maps template names to templates"))
                continue
            for name, raw in source.data.items():
                try:
                    template = parse_template(name, raw)
                except ValueError as exc:
                    problems.extend(_template_problems(source, [name], exc))
                    continue
                if name in templates:
                    problems.append(source.problem([name], f"SLI template {name} is defined twice"))
                templates[name] = template
        if problems:
            raise ContractError(problems)
        templates.update(extra or {})
        return cls(templates)

    def names(self) -> list[str]:
        """Template names, sorted."""
        return sorted(self._templates)

    def __contains__(self, name: object) -> bool:
        return name in self._templates

    def __iter__(self) -> Iterator[SliTemplate]:
        return iter(self._templates[n] for n in self.names())

    def get(self, name: str) -> SliTemplate:
        """The template called `name`; `KeyError` naming the known ones otherwise."""
        try:
            return self._templates[name]
        except KeyError:
            raise KeyError(f"unknown SLI {name!r}; known: {', '.join(self.names())}") from None

    def with_extra(self, extra: Mapping[str, SliTemplate]) -> SliLibrary:
        """This library plus a contract's own templates."""
        return SliLibrary({**self._templates, **extra}) if extra else self

    def render(
        self,
        objective_or_sli: Objective | str,
        contract: Contract,
        *,
        window: str | float = "1m",
        form: Form = "value",
        quantile: float | None = None,
        sources: Sequence[Source] | None = None,
    ) -> RenderedQuery:
        """ONE PromQL query for an SLI covering every track × source, grouped by their label keys.

        Given an objective, its SLI, quantile, sources and route are used; explicit arguments win.
        """
        from gate.contract.models import Objective

        route: dict[str, str] = {}
        if isinstance(objective_or_sli, Objective):
            objective = objective_or_sli
            name = objective.sli
            quantile = objective.quantile if quantile is None else quantile
            sources = list(objective.sources) if sources is None else sources
            route = objective.route_matchers(contract)
        else:
            name = objective_or_sli
        template = self.with_extra(contract.spec.slis).get(name)
        if form not in FORMS[template.kind]:
            raise ValueError(
                f"SLI {name} ({template.kind}) has no {form!r} form; it has {', '.join(FORMS[template.kind])}"
            )
        window_text = format_promql_duration(parse_duration(window))
        traffic = contract.spec.traffic
        tracks = traffic.tracks_for(template.scope)
        per_source = template.scope == "traffic"
        chosen = list(sources) if sources else list(SOURCES)
        source_matchers = (
            {s: dict(traffic.sources[s]) for s in SOURCES if s in chosen and s not in traffic.unobserved}
            if per_source
            else {}
        )

        fixed = traffic.selector_for(template.scope)
        if template.service_label:
            fixed[template.service_label] = contract.spec.service
        if per_source:
            fixed.update(route)
        matchers = [
            f"{promql.check_label_name(k)}={promql.string_literal(v)}" for k, v in sorted(fixed.items())
        ]
        matchers += _dimension(tracks) + _dimension(source_matchers)
        # An empty selector body would leave `foo{, code="5.."}`; this matcher selects everything.
        selector = ", ".join(matchers) if matchers else '__name__=~".+"'
        by = _by_keys(tracks, source_matchers)
        query = _compose(template, form, selector=selector, by=by, window=window_text, quantile=quantile)
        promql.parse(query)  # fail loudly rather than send Prometheus something malformed
        return RenderedQuery(
            sli=name,
            kind=template.kind,
            unit=template.unit,
            form=form,
            promql=query,
            by=by,
            tracks=tracks,
            sources=source_matchers,
            le_scale=template.scale if form == "buckets" else 1.0,
            range_query=form == "series",
            part_label=PART_LABEL if form == "counts" and template.kind == "counter-ratio" else None,
            per_source=per_source,
        )


def _compose(
    template: SliTemplate, form: Form, *, selector: str, by: list[str], window: str, quantile: float | None
) -> str:
    def series(part: str) -> str:
        return template.part(part).replace(_PLACEHOLDER, selector)

    def scaled(expr: str) -> str:
        return expr if template.scale == 1.0 else f"({expr}) * {template.scale!r}"

    group = ", ".join(by)
    kind = template.kind
    if kind == "latency-histogram":
        le_group = ", ".join(["le", *by])
        if template.promql.native is not None:  # a native histogram: no `le`, one series per group
            if form == "buckets":
                return f"sum by ({group}) (increase({series('native')}[{window}]))"
            if quantile is None or not 0 < quantile < 1:
                raise ValueError(f"SLI {template.name} needs a quantile between 0 and 1 (e.g. 0.95)")
            rate = f"sum by ({group}) (rate({series('native')}[{window}]))"
            return scaled(f"histogram_quantile({float(quantile)!r}, {rate})")
        if form == "buckets":
            return f"sum by ({le_group}) (increase({series('buckets')}[{window}]))"
        if quantile is None or not 0 < quantile < 1:
            raise ValueError(f"SLI {template.name} needs a quantile between 0 and 1 (e.g. 0.95)")
        return scaled(
            f"histogram_quantile({float(quantile)!r}, "
            f"sum by ({le_group}) (rate({series('buckets')}[{window}])))"
        )
    if kind == "counter-ratio":
        fn = "increase" if form == "counts" else "rate"
        errors = f"sum by ({group}) ({fn}({series('errors')}[{window}]))"
        total = f"sum by ({group}) ({fn}({series('total')}[{window}]))"
        # Where nothing failed the errors counter may not exist at all: count that as zero, not as missing.
        errors_or_zero = f"({errors} or 0 * {total})"
        if form == "counts":
            return (
                f'label_replace({errors_or_zero}, "{PART_LABEL}", "errors", "", "")'
                f' or label_replace({total}, "{PART_LABEL}", "total", "", "")'
            )
        return scaled(f"{errors_or_zero} / {total}")
    if kind == "rate":
        fn = "increase" if form == "counts" else "rate"
        return scaled(f"sum by ({group}) ({fn}({series('counter')}[{window}]))")
    agg = template.aggregate
    gauge = series("gauge")
    if form == "series":
        return scaled(f"{agg} by ({group}) ({gauge})")
    if kind == "gauge-trend":
        return scaled(f"{agg} by ({group}) (deriv({gauge}[{window}]))")
    over_time = {"sum": "avg", "avg": "avg", "max": "max", "min": "min"}[agg]
    return scaled(f"{agg} by ({group}) ({over_time}_over_time({gauge}[{window}]))")


def parse_template(name: object, raw: Any) -> SliTemplate:
    """Validate one template definition; `ValueError` (a pydantic `ValidationError`) when it is wrong."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError("an SLI name is lowercase letters, digits and dashes, like http-latency")
    data = dict(raw) if isinstance(raw, dict) else raw
    if isinstance(data, dict):
        data.setdefault("name", name)
    return SliTemplate.model_validate(data)


def _template_problems(source: Any, prefix: list[Any], exc: ValueError) -> list[Problem]:
    from gate.contract.pydantic_errors import problems_from_validation

    if isinstance(exc, ValidationError):
        return problems_from_validation(source, exc, prefix=prefix)
    return [source.problem(prefix, str(exc))]
