"""`gate check`: the contract's load (and chaos) against two running versions, judged, in CI.

No weights move: the stable and the canary are both reachable by URL. The synthetic load runs
against both at once (paired requests, marked with the synthetic header); its per-request samples
are the evidence, together with what Prometheus measured of the same window when a Prometheus is
given. Then each chaos experiment the contract binds objectives to runs under the same load, and
those objectives are judged on that window. The judge and the contract adapter are the rollout
engine's (``gate.compose.judging``): the same evidence gives the same verdict in CI and in a rollout.

Exit codes: 0 pass, 1 fail, 2 invalid input, 3 inconclusive, 4 infrastructure error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from gate import redact
from gate.compose.judging import ObjectiveNotJudgeable, applicable, fault_window, judge_look, overlay
from gate.contract import Contract, Objective, SliLibrary
from gate.contract import steps as contract_steps
from gate.drivers.chaos import ChaosDriver, ExperimentError, FaultLedger, specs_from_contract
from gate.drivers.chaos.experiment import BuiltinFault
from gate.drivers.load import LoadDriver, LoadPlan, LoadResult, PlanError
from gate.drivers.load.evidence import load_evidence
from gate.drivers.prometheus import PrometheusClient, PrometheusError, measure
from gate.drivers.prometheus.auth import client_for
from gate.engine.plan import DEFAULT_CHAOS_SECONDS
from gate.judge import Counts, Evidence, FaultWindow, Histogram, Judgement, Status
from gate.judge.pipeline import describe_evidence

EXIT_PASS, EXIT_FAIL, EXIT_INVALID, EXIT_INCONCLUSIVE, EXIT_INFRA = 0, 1, 2, 3, 4
CheckStatus = Literal["pass", "fail", "invalid", "inconclusive", "error"]
EXIT_OF: dict[CheckStatus, int] = {
    "pass": EXIT_PASS,
    "fail": EXIT_FAIL,
    "invalid": EXIT_INVALID,
    "inconclusive": EXIT_INCONCLUSIVE,
    "error": EXIT_INFRA,
}
SOURCES_CHECKED = ("synthetic",)  # gate check sends its own load; no weights, no mirror
ALL_SOURCES = ("synthetic", "shadow", "production")  # judged too when Prometheus saw them reach the canary
MAX_SETTLE = 30.0  # seconds waited at most for Prometheus's last scrape of a window


class CheckInputError(ValueError):
    """The check cannot run as asked (exit 2): the message says what to change."""


class InfrastructureError(RuntimeError):
    """Something the check needs did not work (exit 4): a service, Prometheus, Locust, chaos."""


@dataclass(frozen=True)
class Case:
    """One objective × source: what the check concluded (``skipped`` when it could not judge it)."""

    objective: str
    sli: str
    source: str
    phase: str
    status: Literal["pass", "fail", "inconclusive", "error", "skipped"]
    reason: str
    critical: bool = False
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass
class Phase:
    """One window of the check: the baseline (load only) or one chaos experiment under load."""

    name: str
    chaos: str | None
    started_at: float = 0.0
    ended_at: float = 0.0
    judgement: Judgement | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    load: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    sources: tuple[str, ...] = SOURCES_CHECKED
    """The sources judged in this window: synthetic, and those Prometheus saw reach the canary."""
    fault: FaultWindow | None = None
    """When the experiment's fault was in place (from its journal), for ``recoverWithin``."""


@dataclass
class CheckReport:
    """Everything ``gate check`` found; the reports are written from this."""

    contract: str
    service: str
    stable_url: str
    canary_url: str
    prometheus_url: str | None
    started_at: float
    ended_at: float = 0.0
    status: CheckStatus = "error"
    reason: str = ""
    phases: list[Phase] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The process exit code for this outcome."""
        return EXIT_OF[self.status]


@dataclass(frozen=True)
class CheckOptions:
    """How to run the check."""

    stable_url: str
    canary_url: str
    prometheus_url: str | None = None
    chaos: bool = True
    fault_context: dict[str, Any] | None = None  # e.g. {"fault_proxy": "http://127.0.0.1:9901"}
    workdir: Path | None = None
    settle: float | None = None  # seconds to wait for Prometheus's last scrape (default 2 scrapes)


Progress = Callable[[str], None]


def run_check(
    contract: Contract, library: SliLibrary, options: CheckOptions, *, progress: Progress | None = None
) -> CheckReport:
    """Run the check; never raises for what the exit codes describe (the report says what happened)."""
    say = progress or (lambda _msg: None)
    report = CheckReport(
        contract=contract.metadata.name,
        service=contract.spec.service or contract.metadata.name,
        stable_url=options.stable_url,
        canary_url=options.canary_url,
        prometheus_url=redact.redact_url(options.prometheus_url) if options.prometheus_url else None,
        started_at=time.time(),
    )
    client: PrometheusClient | None = None
    infra = False
    try:
        experiments = _validate(contract, library, options)
        _preflight(options, say)
        if options.prometheus_url:
            try:
                client = client_for(
                    contract.spec.prometheus,
                    url=options.prometheus_url,
                    base_dir=contract.base_dir,
                    timeout=10.0,
                    retries=2,
                )
            except PrometheusError as exc:  # a credential that cannot be read: the input is wrong
                raise CheckInputError(str(exc)) from None
        report.phases.append(_phase(contract, library, options, client=client, chaos=None, say=say))
        for name in experiments:
            report.phases.append(_phase(contract, library, options, client=client, chaos=name, say=say))
    except (CheckInputError, ObjectiveNotJudgeable) as exc:
        report.status, report.reason = "invalid", str(exc)
        report.problems.append(str(exc))
    except InfrastructureError as exc:
        infra = True
        report.status, report.reason = "error", str(exc)
        report.problems.append(str(exc))
    finally:
        if client is not None:
            client.close()
    report.cases = _cases(contract, report.phases, skipped_chaos=not options.chaos)
    if report.status != "invalid" and not (infra and not report.phases):
        _conclude(report, infra=infra)
    report.ended_at = time.time()
    return report


# ---------------------------------------------------------------------------------------- steps


def _validate(contract: Contract, library: SliLibrary, options: CheckOptions) -> list[str]:
    """What the check will run; every input problem at once, before anything starts."""
    problems: list[str] = []
    if contract.spec.load is None:
        problems.append("spec.load: gate check sends the contract's synthetic load; this contract has none")
    for name, url in (("--stable-url", options.stable_url), ("--canary-url", options.canary_url)):
        if not url.startswith(("http://", "https://")):
            problems.append(f"{name}: expected an http(s) URL, got {url[:80]!r}")
    if options.prometheus_url and not options.prometheus_url.startswith(("http://", "https://")):
        shown = redact.redact_url(options.prometheus_url)[:80]
        problems.append(f"--prometheus: expected an http(s) URL, got {shown!r}")
    synthetic = [o for o in contract.spec.objectives if "synthetic" in o.sources]
    if not synthetic:
        problems.append(
            "spec.objectives: no objective is judged on the synthetic source, which gate check measures"
        )
    experiments = _experiments(contract) if options.chaos else []
    if experiments:
        specs = specs_from_contract(contract)
        for name in experiments:
            if isinstance(specs.get(name), BuiltinFault) and not (options.fault_context or {}):
                problems.append(
                    f"spec.chaos.{name}: a built-in fault needs the fault proxy's admin URL; pass "
                    "--fault-proxy URL, or --no-chaos to skip the chaos objectives"
                )
    for objective in synthetic:
        if objective.sli not in library:
            problems.append(f"objective {objective.key}: unknown SLI {objective.sli!r}")
    if problems:
        raise CheckInputError("; ".join(problems))
    return experiments


def _experiments(contract: Contract) -> list[str]:
    """Chaos experiments with objectives bound to them (`during`) on the synthetic source."""
    bound = {o.during for o in contract.spec.objectives if o.during and "synthetic" in o.sources}
    return [name for name in contract.spec.chaos if name in bound]


def _preflight(options: CheckOptions, say: Progress) -> None:
    """Fail fast (exit 4) when a service or Prometheus does not answer, before minutes of load."""
    targets = [("stable", options.stable_url), ("canary", options.canary_url)]
    if options.prometheus_url:
        targets.append(("prometheus", options.prometheus_url.rstrip("/") + "/-/ready"))
    with httpx.Client(timeout=5.0) as http:
        for name, url in targets:
            try:
                http.get(url)
            except httpx.HTTPError as exc:
                raise InfrastructureError(
                    redact.redact_text(f"{name} at {url} does not answer: {type(exc).__name__}: {exc}")
                ) from exc
    say("stable, canary" + (" and Prometheus" if options.prometheus_url else "") + " answer")


def _summary(evidence: Evidence) -> dict[str, Any]:
    try:
        return dict(describe_evidence(evidence))
    except Exception as exc:  # a summary is for people; its failure must not fail the check
        return {"error": f"could not summarise the evidence: {type(exc).__name__}: {exc}"}


def _chaos_duration(contract: Contract, name: str) -> float:
    for step in contract.spec.steps:
        if isinstance(step, contract_steps.ChaosStep) and step.experiment == name and step.duration:
            return float(step.duration)
    return float(contract.spec.load.duration) if contract.spec.load else DEFAULT_CHAOS_SECONDS


def _phase(
    contract: Contract,
    library: SliLibrary,
    options: CheckOptions,
    *,
    client: PrometheusClient | None,
    chaos: str | None,
    say: Progress,
) -> Phase:
    phase = Phase(name="baseline" if chaos is None else f"chaos {chaos}", chaos=chaos)
    duration = _chaos_duration(contract, chaos) if chaos else None
    try:
        plan = LoadPlan.from_contract(
            contract, stable_url=options.stable_url, canary_url=options.canary_url, duration=duration
        )
    except PlanError as exc:
        raise CheckInputError(str(exc)) from exc
    say(f"{phase.name}: {plan.users} users per track for {plan.duration:g}s")
    workdir = None if options.workdir is None else options.workdir / phase.name.replace(" ", "-")
    result, fault = _load_and_chaos(contract, plan, options, chaos=chaos, workdir=workdir, say=say)
    phase.started_at, phase.ended_at = result.started_at, result.ended_at
    phase.fault = fault
    phase.load = result.summary()
    if not result.complete and result.problems:
        raise InfrastructureError(f"{phase.name}: the load did not run: {'; '.join(result.problems)[:1500]}")
    chosen = applicable(contract, sources=SOURCES_CHECKED, chaos=chaos)
    evidence = load_evidence(result, [o for o, _ in chosen], library)
    sources: tuple[str, ...] = SOURCES_CHECKED
    measurable = applicable(contract, sources=ALL_SOURCES, chaos=chaos)
    if client is not None and measurable:
        interval = float(contract.spec.prometheus.scrape_interval)
        settle = options.settle if options.settle is not None else min(MAX_SETTLE, 2 * interval)
        if settle > 0:
            time.sleep(settle)  # the last scrape of the window must be in before it is read
        try:
            measured = measure(
                contract,
                library,
                client,
                start=result.started_at,
                end=max(result.ended_at, result.started_at + 1.0),
                objectives=[o for o, _ in measurable],
            )
        except PrometheusError as exc:
            raise InfrastructureError(f"{phase.name}: Prometheus: {exc}") from exc
        # Besides its own synthetic load, the check judges every source Prometheus saw reach the canary
        # in the window (production users, mirrored shadow requests); a source with no canary data
        # is not judged rather than made Inconclusive: the check did not send it.
        sources = SOURCES_CHECKED + tuple(
            s for s in ALL_SOURCES if s not in SOURCES_CHECKED and _reached_canary(measured, s)
        )
        # Locust's raw per-request samples beat Prometheus buckets for the cells both measured.
        evidence = overlay(measured, evidence)
    phase.sources = sources
    phase.evidence = _summary(evidence)
    phase.judgement = judge_look(
        contract, library, evidence, sources=sources, chaos=chaos, final=True, fault=fault
    )
    if phase.judgement is not None:
        say(f"{phase.name}: {phase.judgement.decision.action} — {phase.judgement.decision.reason}")
    return phase


def _load_and_chaos(
    contract: Contract,
    plan: LoadPlan,
    options: CheckOptions,
    *,
    chaos: str | None,
    workdir: Path | None,
    say: Progress,
) -> tuple[LoadResult, FaultWindow | None]:
    """Run the load (and the experiment beside it); the result and when the fault was in place."""
    driver = LoadDriver(plan, workdir=workdir)
    chaos_driver: ChaosDriver | None = None
    try:
        driver.start()
        if chaos is not None:
            base = options.workdir or Path(driver.workdir)
            chaos_driver = ChaosDriver(FaultLedger(base / "faults.ledger"), workdir=base / "chaos")
            left = chaos_driver.recover()
            for line in left:
                say(f"undone from an earlier run: {line}")
            spec = specs_from_contract(contract)[chaos]
            try:
                handle = chaos_driver.start(chaos, spec, options.fault_context, plan.duration)
            except ExperimentError as exc:
                raise CheckInputError(f"spec.chaos.{chaos}: {exc}") from exc
            with handle:
                result = driver.result()
                journal = handle.wait(timeout=60.0)
                say(f"chaos {chaos}: {journal.status}")
                if journal.open_faults:
                    raise InfrastructureError(f"chaos {chaos}: faults NOT undone: {journal.open_faults}")
            return result, fault_window(journal.window)
        return driver.result(), None
    except (OSError, RuntimeError) as exc:
        if isinstance(exc, CheckInputError | InfrastructureError):
            raise
        raise InfrastructureError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        driver.close()
        if chaos_driver is not None:
            for line in chaos_driver.recover():
                say(f"fault undone: {line}")


# ------------------------------------------------------------------------------------- outcome


def _cases(contract: Contract, phases: list[Phase], *, skipped_chaos: bool) -> list[Case]:
    """One case per objective × source, in contract order; what no phase judged is skipped, with why."""
    judged: dict[tuple[str, str], tuple[str, Any]] = {}
    for phase in phases:
        if phase.judgement is None:
            continue
        for v in phase.judgement.verdicts:
            judged[(v.objective, v.source)] = (phase.name, v)
    out: list[Case] = []
    for objective in contract.spec.objectives:
        for source in objective.sources:
            hit = judged.get((objective.key, source))
            if hit is not None:
                phase_name, v = hit
                out.append(
                    Case(
                        objective=objective.key,
                        sli=objective.sli,
                        source=source,
                        phase=phase_name,
                        status=str(v.status.value),  # type: ignore[arg-type]
                        reason=v.reason,
                        critical=v.critical,
                        numbers=dict(v.numbers),
                    )
                )
                continue
            out.append(_skipped(objective, source, phases, skipped_chaos))
    return out


def _reached_canary(evidence: Evidence, source: str) -> bool:
    """Did Prometheus see `source` requests reach the canary in the window?

    Only request-level entries count (histograms, error counts with requests in them): a gauge says
    nothing about which traffic a process served."""
    for per_source in evidence.slis.values():
        item = per_source.get(source, {}).get("canary")  # type: ignore[call-overload]
        if item is None or item.missing:
            continue
        if isinstance(item, Histogram) and item.counts and item.counts[-1] > 0:
            return True
        if isinstance(item, Counts) and item.total > 0:
            return True
    return False


def _skipped(objective: Objective, source: str, phases: list[Phase], skipped_chaos: bool) -> Case:
    if source not in SOURCES_CHECKED and not any(source in p.sources for p in phases):
        why = (
            f"gate check sends synthetic load only, and no {source} traffic reached the canary "
            "(per Prometheus); it is judged during a rollout"
        )
    elif objective.during and skipped_chaos:
        why = f"chaos skipped (--no-chaos): {objective.during} did not run"
    elif not phases:
        why = "the check stopped before judging"
    else:
        why = "not judged in this check"
    phase = f"chaos {objective.during}" if objective.during else "baseline"
    return Case(objective.key, objective.sli, source, phase, "skipped", why, objective.critical)


def _conclude(report: CheckReport, *, infra: bool) -> None:
    """The status from the phases' decisions: failures first, then what went wrong, then unknowns."""
    decisions = [(p.name, p.judgement.decision) for p in report.phases if p.judgement is not None]
    failed_cases = [c for c in report.cases if c.status == "fail"]
    if infra:  # an infrastructure problem after some phases ran
        if failed_cases:
            report.status = "fail"
            report.reason = f"{_names(failed_cases)} failed (and then: {report.reason})"
        return
    rollbacks = [(n, d) for n, d in decisions if d.action == "rollback"]
    if rollbacks and failed_cases:
        report.status = "fail"
        report.reason = "; ".join(f"{n}: {d.reason}" for n, d in rollbacks)
    elif rollbacks:
        # A rollback without a failed verdict rests on unknowns: verdicts the judge could not
        # compute (errors beyond the limit: exit 4) or evidence that never sufficed (exit 3).
        errors = any(c.status == "error" for c in report.cases)
        report.status = "error" if errors else "inconclusive"
        report.reason = "; ".join(f"{n}: {d.reason}" for n, d in rollbacks)
    elif any(d.action == "hold" for _, d in decisions) or not decisions:
        report.status = "inconclusive"
        report.reason = "; ".join(f"{n}: {d.reason}" for n, d in decisions if d.action == "hold") or (
            "nothing was judged"
        )
    else:
        report.status = "pass"
        report.reason = "; ".join(f"{n}: {d.reason}" for n, d in decisions)


def _names(cases: list[Case]) -> str:
    return ", ".join(f"{c.objective}@{c.source}" for c in cases[:5])


def worst_case_status(cases: list[Case]) -> str:
    """The worst status among judged cases (for summaries)."""
    ranks = {s.value: s.rank for s in Status}
    judged = [c.status for c in cases if c.status != "skipped"]
    return max(judged, key=lambda s: ranks.get(s, 0), default="skipped")
