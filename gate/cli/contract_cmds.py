"""`gate validate`, `gate schema` and `gate explain`: the contract as a user sees it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from gate import boundedio, redact
from gate.contract import (
    ChaosExperiment,
    Contract,
    ContractError,
    FaultExperiment,
    FileExperiment,
    SliLibrary,
    load_contract,
)
from gate.contract.checks import warnings as step_warnings
from gate.contract.schema import schema_for, schema_kinds
from gate.contract.sli import FORMS, Form
from gate.contract.steps import Analyze, ChaosStep, LoadStep, Mirror, Pause, SetWeight
from gate.contract.units import format_duration
from gate.judge.planning import ContractPlan, contract_plan, parse_buckets
from gate.judge.spec import from_contract, judge_policy

EXIT_INVALID = 2
_MARKERS = (b"PerformanceContract", b"perfgate.dev/")


def register(app: typer.Typer) -> None:
    """Add the contract commands to the `gate` application."""
    app.command("validate")(validate)
    app.command("schema")(schema)
    app.command("explain")(explain)


def _contract_files(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Files to validate, and files skipped in folders because they are not contracts."""
    files: list[Path] = []
    skipped: list[Path] = []
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        for candidate in sorted([*path.rglob("*.yaml"), *path.rglob("*.yml")]):
            try:
                # A bounded prefix of a regular file only: a symlink to /dev/zero or a FIFO named
                # x.yaml is refused here (and reported by the loader), never read.
                head = boundedio.read_prefix(candidate, 64 * 1024)
            except boundedio.FileRefused:
                files.append(candidate)
                continue
            # In a folder only contracts are validated; chaos experiments and OpenAPI files sit beside them.
            (files if any(m in head for m in _MARKERS) else skipped).append(candidate)
    return files, skipped


RpsOption = Annotated[
    float | None,
    typer.Option("--rps", help="Expected production requests/s at full traffic: times each step's evidence."),
]
BucketsOption = Annotated[
    str | None,
    typer.Option(
        "--buckets",
        help="The latency histogram's le edges in seconds (comma-separated), "
        "or `default` (prometheus_client's).",
    ),
]


def _plan(contract: Contract, library: SliLibrary, rps: float | None, buckets: str | None) -> ContractPlan:
    """The judge's plan for this contract (gate/judge/planning.py); bad option values exit 2."""
    templates = library.with_extra(contract.spec.slis)
    units = {o.sli: str(templates.get(o.sli).unit) for o in contract.spec.objectives if o.sli in templates}
    specs = []
    for objective in contract.spec.objectives:
        try:
            specs.extend(from_contract([objective], units))
        except ValueError:
            continue  # validation reports such an objective elsewhere
    try:
        edges = parse_buckets(buckets) if buckets is not None else None
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_INVALID) from None
    if rps is not None and not (rps > 0 and rps < 1e9):
        typer.echo("--rps: give the expected requests per second, a positive number", err=True)
        raise typer.Exit(EXIT_INVALID)
    return contract_plan(
        specs, judge_policy(contract.spec.policy), contract.spec.steps, rps=rps, buckets=edges
    )


def validate(
    paths: Annotated[
        list[Path], typer.Argument(help="Contract files or folders of them.", show_default=False)
    ],
    rps: RpsOption = None,
    buckets: BucketsOption = None,
) -> None:
    """Validate contracts; exit 0 when all are valid, 2 when any is not, printing every problem."""
    files, skipped = _contract_files(paths)
    invalid = 0
    library: SliLibrary | None = None
    try:
        library = SliLibrary.default()
    except ContractError as exc:
        for problem in exc.problems:
            typer.echo(str(problem))
        raise typer.Exit(EXIT_INVALID) from None
    for file in files:
        try:
            contract = load_contract(file, library=library)
        except ContractError as exc:
            invalid += 1
            for problem in exc.problems:
                typer.echo(str(problem))
            continue
        typer.echo(
            f"{file}: ok ({contract.metadata.name}: {len(contract.spec.objectives)} objectives, "
            f"{len(contract.spec.steps)} steps)"
        )
        for where, message in step_warnings(list(contract.spec.steps)):
            typer.echo(f"{file}: warning: {where}: {message}")
        for warning in _plan(contract, library, rps, buckets).warnings:
            typer.echo(f"{file}: warning: {warning}")
    for file in skipped:
        typer.echo(f"{file}: skipped (not a PerformanceContract)")
    if not files:
        typer.echo("no contracts found", err=True)
        raise typer.Exit(EXIT_INVALID)
    typer.echo(f"{len(files) - invalid} valid, {invalid} invalid")
    if invalid:
        raise typer.Exit(EXIT_INVALID)


def schema(
    kind: Annotated[
        str, typer.Argument(help="Which schema: contract (default), or another registered kind.")
    ] = "contract",
) -> None:
    """Print the JSON Schema of a contract (or another registered document kind) on stdout."""
    try:
        document = schema_for(kind)
    except KeyError:
        typer.echo(f"no schema {kind!r}; known: {', '.join(schema_kinds())}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    typer.echo(json.dumps(document, indent=2, sort_keys=False))


def explain(
    contract_path: Annotated[Path, typer.Argument(metavar="CONTRACT", help="A contract file.")],
    window: Annotated[str, typer.Option(help="Window for the rendered queries.")] = "1m",
    rps: RpsOption = None,
    buckets: BucketsOption = None,
) -> None:
    """The plan in plain words: steps, objectives, and the PromQL gate runs for each SLI."""
    try:
        library = SliLibrary.default()
        contract = load_contract(contract_path, library=library)
    except ContractError as exc:
        for problem in exc.problems:
            typer.echo(str(problem))
        raise typer.Exit(EXIT_INVALID) from None
    console = Console(highlight=False)
    _explain(console, contract, library, window)
    plan = _plan(contract, library, rps, buckets)
    console.print(
        "\n[bold]Planning[/bold] (evidence to decide; --rps times the steps, --buckets checks edges)"
    )
    for line in plan.lines:
        console.print(f"  {line}", markup=False)
    for warning in plan.warnings:
        console.print(f"  warning: {warning}", markup=False)


def describe_step(step: object, contract: Contract) -> str:
    """One step in words."""
    if isinstance(step, SetWeight):
        return f"send {step.weight}% of production traffic to the canary"
    if isinstance(step, Mirror):
        return (
            f"mirror {step.percent}% of production requests to the canary (shadow)"
            if step.percent
            else "stop mirroring"
        )
    if isinstance(step, Pause):
        return (
            f"hold for {format_duration(step.duration)}"
            if step.duration is not None
            else "hold until a reviewer approves"
        )
    if isinstance(step, Analyze):
        if step.duration is None:
            return "judge the objectives until each has its minimum evidence"
        return f"judge the objectives for {format_duration(step.duration)}"
    if isinstance(step, LoadStep):
        duration = step.duration or (contract.spec.load.duration if contract.spec.load else None)
        return f"run the synthetic load on both tracks for {format_duration(duration or 0)}"
    if isinstance(step, ChaosStep):
        length = f" for {format_duration(step.duration)}" if step.duration is not None else ""
        return (
            f"inject chaos experiment {step.experiment}{length} and judge the objectives that hold during it"
        )
    return str(step)


def _describe_experiment(experiment: ChaosExperiment) -> str:
    if isinstance(experiment, FaultExperiment):
        fault = experiment.fault
        parts = []
        if fault.delay is not None:
            parts.append(f"+{format_duration(fault.delay)} on {fault.delay_percent * 100:g}% of requests")
        if fault.abort is not None:
            parts.append(f"{fault.abort * 100:g}% aborted with {fault.abort_status}")
        return f"HTTP fault on {fault.target}: " + ", ".join(parts)
    if isinstance(experiment, FileExperiment):
        return f"Chaos Toolkit experiment {experiment.experiment}"
    return f"inline Chaos Toolkit experiment {str(experiment.inline.get('title', ''))[:80]!r}"


def _bound_words(contract: Contract, library: SliLibrary, key: str) -> str:
    objective = contract.objective(key)
    template = library.with_extra(contract.spec.slis).get(objective.sli)
    unit = template.unit

    def value(number: float) -> str:
        return _in_unit(number, unit)

    parts = []
    if objective.max is not None:
        parts.append(f"≤ {value(objective.max)}")
    if objective.min is not None:
        parts.append(f"≥ {value(objective.min)}")
    if objective.max_increase is not None:
        parts.append(f"at most +{objective.max_increase * 100:g}% over stable")
    if objective.max_decrease is not None:
        parts.append(f"at most -{objective.max_decrease * 100:g}% under stable")
    if objective.max_growth is not None:
        growth = objective.max_growth * 60
        parts.append("no growth" if growth == 0 else f"growth ≤ {value(growth)} per minute")
    return ", ".join(parts)


def _in_unit(number: float, unit: str) -> str:
    """A number in an SLI's unit, written as a person would (`220ms`, `0.1%`, `512Mi`, `150/s`)."""
    if unit == "seconds":
        return format_duration(number)
    if unit == "ratio":
        return f"{number * 100:g}%"
    if unit in ("bytes", "bytes-per-second"):
        size = f"{number:g} bytes"
        for suffix, scale in (("Gi", 1024.0**3), ("Mi", 1024.0**2), ("Ki", 1024.0)):
            if abs(number) >= scale:
                size = f"{number / scale:.3g}{suffix}"
                break
        return size + ("/s" if unit == "bytes-per-second" else "")
    if unit == "per-second":
        return f"{number:g}/s"
    if unit == "cores":
        return f"{number:g} cores"
    return f"{number:g}"


def _policy_words(contract: Contract) -> list[str]:
    """The policy in sentences: when gate looks, when it rolls back, what an unclear answer does."""
    policy = contract.spec.policy
    failures = (
        "as soon as a verdict fails"
        if policy.failure_limit == 0
        else f"when more than {policy.failure_limit} verdicts fail"
    )
    inconclusive = "holds the canary where it is" if policy.on_inconclusive == "hold" else "rolls back"
    return [
        f"then promote. Gate judges every {format_duration(policy.interval)}; the whole rollout must end "
        f"within {format_duration(policy.deadline)}.",
        f"It rolls back {failures} (a verdict is one objective on one source), or when more than "
        f"{policy.error_limit} cannot be measured.",
        f"A step that ends with more than {policy.inconclusive_limit} verdicts still inconclusive, or with "
        f"any short of evidence, {inconclusive} (onInconclusive: {policy.on_inconclusive}).",
        f"Verdicts are judged at {policy.confidence * 100:g}% confidence; differences under "
        f"{policy.tolerance * 100:g}% count as none.",
    ]


def _explain(console: Console, contract: Contract, library: SliLibrary, window: str) -> None:
    spec = contract.spec
    console.print(f"[bold]{escape(contract.metadata.name)}[/bold]: service {escape(spec.service)}")
    for track in ("stable", "canary"):
        endpoint = getattr(spec.target, track)
        where = ", ".join(
            f"{k} {v}"
            for k, v in (
                ("url", endpoint.url),
                ("deployment", endpoint.deployment),
                ("service", endpoint.service),
            )
            if v
        )
        console.print(f"  {track}: {escape(where)}")
    router = spec.router.type if spec.router else "none (gate check compares the two URLs)"
    prometheus = redact.redact_url(spec.prometheus.url or "none")
    console.print(f"  router: {escape(router)}; Prometheus: {escape(prometheus)}")

    if spec.load is not None:
        load = spec.load
        scenario = (
            ", ".join(f"{t.name} ×{t.weight} ({t.method} {t.path})" for t in load.tasks)
            if load.tasks
            else f"locustfile {load.locustfile}"
        )
        console.print(
            f"  load: {load.users} users per track for {format_duration(load.duration)}: {scenario}",
            markup=False,
        )
    for name, experiment in spec.chaos.items():
        console.print(f"  chaos {name}: {_describe_experiment(experiment)}", markup=False)

    console.print("\n[bold]Steps[/bold]")
    if not spec.steps:
        console.print("  none: `gate check` runs the load and chaos once and judges")
    for number, step in enumerate(spec.steps, 1):
        console.print(f"  {number}. {escape(describe_step(step, contract))}")
    for sentence in _policy_words(contract):
        console.print(f"  {sentence}", markup=False)

    console.print("\n[bold]Objectives[/bold]")
    templates = library.with_extra(spec.slis)
    for objective in spec.objectives:
        what = objective.sli + (f" p{objective.quantile * 100:g}" if objective.quantile is not None else "")
        flags = [word for word, on in (("critical: a failure rolls back at once", objective.critical),) if on]
        if objective.during:
            flags.append(f"while {objective.during} runs")
        if objective.route:
            flags.append(f"route {objective.route.method or 'any method'} {objective.route.path}")
        if templates.get(objective.sli).scope == "process":
            where = "per track (whole process)"
        else:
            evidence = objective.min_evidence
            where = (
                f"on {', '.join(objective.sources)}; needs {evidence.requests} requests and "
                f"{format_duration(evidence.duration)} per track and source"
            )
        console.print(
            f"  {objective.key}: {what} {_bound_words(contract, library, objective.key)}"
            f" — {where}" + (f" ({'; '.join(flags)})" if flags else ""),
            markup=False,
        )

    console.print("\n[bold]Queries[/bold] (one per SLI and form, covering every track × source)")
    for objective in spec.objectives:
        template = library.with_extra(spec.slis).get(objective.sli)
        console.print(f"\n[bold]{escape(objective.key)}[/bold] — {escape(template.description)}")
        forms: tuple[Form, ...] = FORMS[template.kind]
        for form in forms:
            rendered = library.render(objective, contract, window=window, form=form)
            console.print(f"  [cyan]{form}[/cyan]: ", end="")
            console.print(rendered.promql, markup=False, soft_wrap=True)
        rendered = library.render(objective, contract, window=window)
        if rendered.per_source:
            cells = [
                f"{track}×{source}: "
                + ", ".join(
                    f"{k}={v!r}" for k, v in {**rendered.tracks[track], **rendered.sources[source]}.items()
                )
                for track in rendered.tracks
                for source in rendered.sources
            ]
        else:
            cells = [
                f"{track} (whole process): "
                + ", ".join(f"{k}={v!r}" for k, v in rendered.tracks[track].items())
                for track in rendered.tracks
            ]
        console.print(f"  series by ({', '.join(rendered.by)}):", markup=False)
        for cell in cells:
            console.print(f"    {cell}", markup=False)
