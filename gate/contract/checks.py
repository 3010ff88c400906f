"""Contradictions a schema cannot see: settings that are each valid but cannot work together.

Each check reads the pieces of the document that validated on their own, so a file with schema
errors still gets its contradictions reported in the same pass.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from gate import boundedio
from gate.contract.base import Source
from gate.contract.errors import PathPart, Problem, short
from gate.contract.models import Load, Objective, Policy, Prometheus, Router, Traffic
from gate.contract.sli import SliLibrary, SliTemplate, parse_template
from gate.contract.steps import Analyze, ChaosStep, LoadStep, Mirror, Pause, SetWeight, Step
from gate.contract.units import (
    Dimension,
    format_duration,
    parse_quantity_with_dimension,
    parse_rate_with_dimension,
)
from gate.contract.yamlsrc import Source as YamlSource

T = TypeVar("T")

_STEP = TypeAdapter(Step)
_OBJECTIVE = TypeAdapter(Objective)
_ROUTER: TypeAdapter[Any] = TypeAdapter(Router)

# Which spellings of a bound fit which SLI unit (a plain number always fits).
_UNIT_DIMENSIONS: dict[str, tuple[Dimension, ...]] = {
    "seconds": ("duration", "number"),
    "ratio": ("fraction", "number"),
    "bytes": ("bytes", "number"),
    "bytes-per-second": ("bytes", "number"),
    "per-second": ("number",),
    "cores": ("number",),
    "count": ("number",),
}
_UNIT_EXAMPLE = {
    "seconds": "220ms",
    "ratio": "0.1%",
    "bytes": "512Mi",
    "bytes-per-second": "10Mi",
    "per-second": "100",
    "cores": "1.5",
    "count": "1000",
}
_MIRRORLESS_ROUTERS = ("deployment",)


@dataclass
class Pieces:
    """The parts of a contract document that validated on their own."""

    spec: dict[str, Any]
    steps: list[tuple[int, Any]] = field(default_factory=list)
    objectives: list[tuple[int, Objective]] = field(default_factory=list)
    chaos_names: set[str] = field(default_factory=set)
    sli_names: set[str] = field(default_factory=set)
    templates: dict[str, SliTemplate] = field(default_factory=dict)
    load: Load | None = None
    has_load: bool = False
    policy: Policy | None = None
    traffic: Traffic | None = None
    prometheus: Prometheus | None = None
    router: Any = None


def _valid(adapter: Callable[[Any], T], raw: Any) -> T | None:
    try:
        return adapter(raw)
    except (ValidationError, ValueError):
        return None


def _template_or_none(name: object, raw: Any) -> SliTemplate | None:
    try:
        return parse_template(name, raw)
    except ValueError:
        return None


def gather(data: Any) -> Pieces | None:
    """Validate each piece of `spec` on its own; None when there is no spec mapping at all."""
    spec = data.get("spec") if isinstance(data, dict) else None
    if not isinstance(spec, dict):
        return None
    pieces = Pieces(spec=spec)
    raw_steps = spec.get("steps")
    if isinstance(raw_steps, list):
        for index, raw in enumerate(raw_steps):
            step = _valid(_STEP.validate_python, raw)
            if step is not None:
                pieces.steps.append((index, step))
    raw_objectives = spec.get("objectives")
    if isinstance(raw_objectives, list):
        for index, raw in enumerate(raw_objectives):
            objective = _valid(_OBJECTIVE.validate_python, raw)
            if objective is not None:
                pieces.objectives.append((index, objective))
    chaos = spec.get("chaos")
    if isinstance(chaos, dict):
        pieces.chaos_names = {str(k) for k in chaos}
    slis = spec.get("slis")
    if isinstance(slis, dict):
        pieces.sli_names = {str(k) for k in slis}
        for name, raw in slis.items():
            template = _template_or_none(name, raw)
            if template is not None:
                pieces.templates[str(name)] = template
    pieces.has_load = spec.get("load") is not None
    if pieces.has_load:
        pieces.load = _valid(Load.model_validate, spec.get("load"))
    pieces.policy = _valid(Policy.model_validate, spec.get("policy") or {})
    pieces.traffic = _valid(Traffic.model_validate, spec.get("traffic") or {})
    pieces.prometheus = _valid(Prometheus.model_validate, spec.get("prometheus") or {})
    if spec.get("router") is not None:
        pieces.router = _valid(_ROUTER.validate_python, spec.get("router"))
    return pieces


def produced_sources(steps: list[Any], has_load: bool) -> list[Source]:
    """The sources of traffic a rollout produces: synthetic (load), shadow (mirror), production (weight)."""
    out: list[Source] = []
    if has_load:
        out.append("synthetic")
    if any(isinstance(s, Mirror) and s.percent > 0 for s in steps):
        out.append("shadow")
    if any(isinstance(s, SetWeight) and s.weight > 0 for s in steps):
        out.append("production")
    return out


class _Report:
    def __init__(self, source: YamlSource) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def add(self, path: list[PathPart], message: str) -> None:
        self.problems.append(self.source.problem(path, message))


def check(source: YamlSource, library: SliLibrary, base_dir: Path | None) -> list[Problem]:
    """Every contradiction in the document, each positioned at the field to change."""
    pieces = gather(source.data)
    if pieces is None:
        return []
    report = _Report(source)
    library = library.with_extra(pieces.templates)
    _check_steps(pieces, report)
    _check_objectives(pieces, library, report)
    _check_files(pieces, base_dir, report)
    return report.problems


def _step_path(index: int, raw: Any, field_name: str | None = None) -> list[PathPart]:
    path: list[PathPart] = ["spec", "steps", index]
    if field_name and isinstance(raw, dict):
        for key in (field_name, "kind"):
            if key in raw:
                return [*path, key]
    return path


def _check_steps(pieces: Pieces, report: _Report) -> None:
    raw_steps = pieces.spec.get("steps") or []
    policy = pieces.policy
    last_weight: tuple[int, int] | None = None
    elapsed = 0.0
    said: set[str] = set()  # contradictions about the whole contract are reported once, at the first step
    over_deadline_reported = False
    for index, step in pieces.steps:
        raw = raw_steps[index]
        if isinstance(step, SetWeight):
            if last_weight is not None and step.weight < last_weight[1]:
                report.add(
                    _step_path(index, raw, "setWeight"),
                    f"weight {step.weight}% is lower than {last_weight[1]}% "
                    f"set earlier by spec.steps[{last_weight[0]}]; "
                    "a ladder only goes up (gate rolls back by itself when it must)",
                )
            if last_weight is None or step.weight >= last_weight[1]:
                last_weight = (index, step.weight)
            if pieces.spec.get("router") is None and "router" not in said:
                said.add("router")
                report.add(_step_path(index, raw), "setWeight needs spec.router (what moves the traffic)")
        elif isinstance(step, Mirror):
            if pieces.spec.get("router") is None:
                if "router" not in said:
                    said.add("router")
                    report.add(_step_path(index, raw), "mirror needs spec.router (what mirrors the traffic)")
            elif getattr(pieces.router, "type", None) in _MIRRORLESS_ROUTERS:
                report.add(
                    _step_path(index, raw),
                    f"the {pieces.router.type} router cannot mirror traffic; use nginx, istio, gateway-api "
                    "or ingress-nginx, or drop this step",
                )
        elif isinstance(step, ChaosStep):
            if step.experiment not in pieces.chaos_names:
                report.add(
                    _step_path(index, raw, "chaos")
                    if not isinstance(raw, dict) or "kind" not in raw
                    else ["spec", "steps", index, "experiment"],
                    f"chaos step runs {short(step.experiment)}, which spec.chaos does not define "
                    f"{_known_experiments(pieces)}",
                )
        elif isinstance(step, LoadStep) and not pieces.has_load:
            report.add(_step_path(index, raw), "load step, but spec.load is missing; describe the load there")
        elif isinstance(step, Analyze) and not pieces.spec.get("objectives") and "objectives" not in said:
            said.add("objectives")
            report.add(_step_path(index, raw), "analyze step, but the contract has no objectives to judge")
        duration = getattr(step, "duration", None)
        if isinstance(step, LoadStep) and duration is None and pieces.load is not None:
            duration = pieces.load.duration
        if policy is not None and isinstance(duration, float):
            if duration > policy.deadline:
                word = "pause" if isinstance(step, Pause) else f"{step.kind} step"
                report.add(
                    _step_path(index, raw, step.kind),
                    f"{word} of {format_duration(duration)} is longer than policy.deadline "
                    f"({format_duration(policy.deadline)}); shorten it or raise the deadline",
                )
                over_deadline_reported = True
            elapsed += duration
            if elapsed > policy.deadline and not over_deadline_reported:
                report.add(
                    _step_path(index, raw),
                    f"the steps up to here take {format_duration(elapsed)}, more than policy.deadline "
                    f"({format_duration(policy.deadline)}); shorten them or raise the deadline",
                )
                over_deadline_reported = True
    load = pieces.load
    if load is not None and load.users / load.spawn_rate > load.duration:
        report.add(
            ["spec", "load", "spawnRate"],
            f"starting {load.users} users at {load.spawn_rate:g}/s takes "
            f"{format_duration(round(load.users / load.spawn_rate, 1))}, longer than load.duration "
            f"({format_duration(load.duration)}): the load would never reach full strength",
        )
    if policy is not None and policy.interval > policy.deadline:
        report.add(["spec", "policy", "interval"], "policy.interval is longer than policy.deadline")


def _check_objectives(pieces: Pieces, library: SliLibrary, report: _Report) -> None:
    raw_objectives = pieces.spec.get("objectives") or []
    steps = [s for _, s in pieces.steps]
    produced = produced_sources(steps, pieces.has_load)
    chaos_in_steps = {s.experiment for s in steps if isinstance(s, ChaosStep)}
    for index, raw in enumerate(raw_objectives if isinstance(raw_objectives, list) else []):
        # Checked on the raw item so that a misspelt SLI is reported even when other fields are wrong.
        name = raw.get("sli") if isinstance(raw, dict) else None
        if isinstance(name, str) and name not in library and name not in pieces.sli_names:
            hint = difflib.get_close_matches(name, library.names(), n=1)
            suggestion = f"did you mean {hint[0]}? " if hint else ""
            report.add(
                ["spec", "objectives", index, "sli"],
                f"unknown SLI {short(name)}; {suggestion}"
                "see analyses/ (or `gate explain`) for the names, or define it under spec.slis",
            )
    keys: dict[str, int] = {}
    needs_prometheus: list[str] = []
    for index, objective in pieces.objectives:
        raw = raw_objectives[index]
        base: list[PathPart] = ["spec", "objectives", index]
        if objective.key in keys:
            where = [*base, "key"] if "key" in raw else base
            report.add(
                where,
                f"objective key {short(objective.key)} is already used by objectives[{keys[objective.key]}]; "
                "give one of them a distinct `key:`",
            )
        else:
            keys[objective.key] = index
        template = library.get(objective.sli) if objective.sli in library else None
        if template is not None:
            _check_objective_template(objective, template, raw, base, report)
            if template.scope == "process" or template.kind not in ("latency-histogram", "counter-ratio"):
                needs_prometheus.append(objective.key)
        if template is None or template.scope == "traffic":
            if "sources" in raw:
                for position, src in enumerate(objective.sources):
                    if src not in produced:
                        report.add([*base, "sources", position], _not_produced(src))
                    elif (
                        src != "synthetic" and pieces.traffic is not None and src in pieces.traffic.unobserved
                    ):
                        # Only gate's own load is measured outside Prometheus; the others cannot be seen.
                        report.add(
                            [*base, "sources", position],
                            f"{src} traffic is listed under spec.traffic.unobserved: Prometheus cannot "
                            "tell it apart, so nothing could judge it; drop it here or give it matchers",
                        )
            elif not produced and (pieces.steps or not pieces.has_load):
                report.add(
                    base, "no step produces traffic to judge: add spec.load, a mirror or a setWeight step"
                )
            if any(s != "synthetic" for s in (objective.sources if "sources" in raw else produced)):
                needs_prometheus.append(objective.key)
        if objective.during is not None:
            if objective.during not in pieces.chaos_names:
                report.add(
                    [*base, "during"],
                    f"objective holds during {short(objective.during)}, which spec.chaos does not define "
                    f"{_known_experiments(pieces)}",
                )
            elif pieces.steps and objective.during not in chaos_in_steps:
                # Without steps (`gate check`) every experiment runs once; in a rollout a step must run it.
                report.add(
                    [*base, "during"],
                    f"no step runs chaos experiment {objective.during}; add a step "
                    f"`{{chaos: {objective.during}, for: 1m}}` or drop `during`",
                )
            else:
                _check_chaos_long_enough(objective, steps, base, report)
    prometheus = pieces.prometheus
    if needs_prometheus and prometheus is not None and prometheus.url is None:
        report.add(
            ["spec", "prometheus"] if "prometheus" in pieces.spec else ["spec"],
            f"objective {needs_prometheus[0]} is read from Prometheus; set spec.prometheus.url",
        )


def _check_chaos_long_enough(
    objective: Objective, steps: list[Any], base: list[PathPart], report: _Report
) -> None:
    """An objective held during chaos needs a chaos step long enough to gather its minimum evidence."""
    lengths = [s.duration for s in steps if isinstance(s, ChaosStep) and s.experiment == objective.during]
    if not lengths or any(length is None for length in lengths):
        return  # runs as long as the experiment itself: nothing to compare
    longest = max(length for length in lengths if length is not None)
    needed = objective.min_evidence.duration
    if longest < needed:
        report.add(
            [*base, "during"],
            f"the chaos step runs {objective.during} for {format_duration(longest)}, but this objective "
            f"needs {format_duration(needed)} of evidence (minEvidence.duration); "
            "lengthen the step or lower minEvidence",
        )


def _not_produced(source: Source) -> str:
    return {
        "synthetic": "objective reads synthetic traffic, but spec.load is missing; "
        "add a load or drop synthetic",
        "shadow": "objective reads shadow traffic, but no step mirrors traffic; add a step `mirror 100%` "
        "or drop shadow",
        "production": "objective reads production traffic, but no step sends the canary any "
        "(setWeight above 0%); "
        "add a step like `5%` or drop production",
    }[source]


def _check_objective_template(
    objective: Objective, template: SliTemplate, raw: dict[str, Any], base: list[PathPart], report: _Report
) -> None:
    kind = template.kind
    if kind == "latency-histogram" and objective.quantile is None:
        report.add(base, f"SLI {template.name} is a latency histogram; say which quantile (quantile: 0.95)")
    if kind != "latency-histogram" and objective.quantile is not None:
        report.add(
            [*base, "quantile"], f"quantile only applies to latency histograms; {template.name} is a {kind}"
        )
    if objective.max_growth is not None and kind != "gauge-trend":
        report.add(
            [*base, "maxGrowth"], f"maxGrowth only applies to gauge trends; {template.name} is a {kind}"
        )
    if kind == "gauge-trend" and objective.max_growth is None:
        report.add(
            base, f"SLI {template.name} is a trend; bound it with maxGrowth (e.g. 0/min for no growth)"
        )
    allowed = _UNIT_DIMENSIONS[template.unit]
    for key in ("max", "min"):
        if key not in raw:
            continue
        try:
            value, dimension = parse_quantity_with_dimension(raw[key])
        except ValueError:
            continue
        if dimension not in allowed:
            report.add(
                [*base, key],
                f"{short(raw[key])} is a {dimension} but {template.name} is measured in {template.unit}; "
                f"write it like {_UNIT_EXAMPLE[template.unit]}",
            )
        elif template.unit == "seconds" and dimension == "number" and report.source.tree is not None:
            # `max: 220` would silently mean 220 seconds to someone who meant milliseconds. A written
            # contract says its unit; data (a custom resource, a stored contract) is already in seconds.
            report.add(
                [*base, key],
                f"{short(raw[key])} has no unit, and {template.name} is measured in seconds; "
                f"write {_number(value)}ms or {_number(value)}s",
            )
        elif template.unit == "ratio" and value > 1:
            report.add([*base, key], f"{template.name} is a ratio; a bound above 100% can never matter")
    if "maxGrowth" in raw and objective.max_growth is not None:
        try:
            _, dimension = parse_rate_with_dimension(raw["maxGrowth"])
        except ValueError:
            return
        if dimension not in allowed:
            report.add(
                [*base, "maxGrowth"],
                f"{short(raw['maxGrowth'])} grows in {dimension} but {template.name} "
                f"is measured in {template.unit}",
            )


def _known_experiments(pieces: Pieces) -> str:
    if not pieces.chaos_names:
        return (
            "(it defines none: add the experiment under spec.chaos, "
            "e.g. `db-slow: {fault: {target: db, delay: 500ms}}`)"
        )
    return f"(known: {', '.join(sorted(pieces.chaos_names))})"


def _number(value: float) -> str:
    return f"{value:g}"


REFERENCED_FILE_LIMIT = 1024 * 1024
"""Chaos experiment files and locustfiles a contract names are refused above 1 MiB."""


def _file_problem(written: str, base_dir: Path, what: str, noun: str) -> str | None:
    """Why a referenced file cannot be used (missing, special, too large), by `stat` alone; or None."""
    path = Path(written) if Path(written).is_absolute() else base_dir / written
    if not path.exists():
        return f"{what} {short(written)} not found (paths are relative to the contract)"
    try:
        boundedio.check_file(path, REFERENCED_FILE_LIMIT, what=noun)
    except boundedio.FileRefused as exc:
        return f"{what} {short(written)} {exc.reason}"
    return None


def _check_files(pieces: Pieces, base_dir: Path | None, report: _Report) -> None:
    if base_dir is None:
        return
    chaos = pieces.spec.get("chaos")
    if isinstance(chaos, dict):
        for name, raw in chaos.items():
            if isinstance(raw, dict) and isinstance(raw.get("experiment"), str):
                problem = _file_problem(raw["experiment"], base_dir, "experiment file", "chaos experiment")
                if problem is not None:
                    report.add(["spec", "chaos", name, "experiment"], problem)
    if pieces.load is not None and pieces.load.locustfile is not None:
        problem = _file_problem(pieces.load.locustfile, base_dir, "locustfile", "locust")
        if problem is not None:
            report.add(["spec", "load", "locustfile"], problem)


def warnings(steps: list[Any]) -> list[tuple[str, str]]:
    """Things that work but are probably not meant: (field path, message). Not errors: the
    contract still loads. Today: a ladder that reaches 100 % with a mirror still on, so every
    production request (POSTs included) would run twice on the canary until the run ends."""
    out: list[tuple[str, str]] = []
    mirror_at: int | None = None
    for index, step in enumerate(steps):
        if isinstance(step, Mirror):
            mirror_at = index if step.percent > 0 else None
        elif isinstance(step, SetWeight) and step.weight == 100 and mirror_at is not None:
            out.append(
                (
                    f"spec.steps[{index}]",
                    f"the ladder reaches 100% while the mirror of spec.steps[{mirror_at}] is still on: "
                    "every production request would also be copied to the canary, so it runs twice; "
                    "add `mirror: 0` before this step (gate turns the mirror off when the run ends)",
                )
            )
            mirror_at = None
    return out
