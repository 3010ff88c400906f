"""From a contract to the machine's plan: its steps in the engine's terms, and the policy it acts on.

Durations the contract leaves open get the defaults the contract documents: a load step runs
``spec.load.duration``; an analyze step without a duration ends as soon as a look says promote (the
judge says so only once every objective has its minimum evidence); a chaos step without one holds
its fault for ``DEFAULT_CHAOS_SECONDS``. A pause without a duration waits for a person.
"""

from __future__ import annotations

from gate.contract import Contract
from gate.contract import steps as contract_steps
from gate.engine.machine import Plan, PolicyPlan, StepPlan

DEFAULT_CHAOS_SECONDS = 60.0
UNDECIDED_LOOKS = 3  # looks at a step's end the judge may leave undecided (hold) before onInconclusive
BLIND_LOOKS = 3  # looks in a row that could not be made or judged (errors) before onInconclusive


def plan_from_contract(contract: Contract, *, diagnostics: bool = False) -> Plan:
    """The machine's plan for ``contract`` (``diagnostics``: capture them on a failed canary)."""
    spec = contract.spec
    out: list[StepPlan] = []
    for step in spec.steps:
        if isinstance(step, contract_steps.SetWeight):
            out.append(StepPlan("setWeight", weight=int(step.weight)))
        elif isinstance(step, contract_steps.Mirror):
            out.append(StepPlan("mirror", percent=int(step.percent)))
        elif isinstance(step, contract_steps.Pause):
            out.append(StepPlan("pause", duration=_secs(step.duration)))
        elif isinstance(step, contract_steps.Analyze):
            out.append(StepPlan("analyze", duration=_secs(step.duration) or 0.0))
        elif isinstance(step, contract_steps.LoadStep):
            default = float(spec.load.duration) if spec.load is not None else 0.0
            out.append(StepPlan("load", duration=_secs(step.duration) or default))
        elif isinstance(step, contract_steps.ChaosStep):
            out.append(
                StepPlan(
                    "chaos",
                    experiment=step.experiment,
                    duration=_secs(step.duration) or DEFAULT_CHAOS_SECONDS,
                )
            )
        else:  # pragma: no cover - the contract's step union is closed
            raise ValueError(f"unknown step {step!r}")
    policy = spec.policy
    return Plan(
        steps=tuple(out),
        policy=PolicyPlan(
            interval=float(policy.interval),
            deadline=float(policy.deadline),
            on_inconclusive=policy.on_inconclusive,
            # failureLimit, inconclusiveLimit and errorLimit count verdicts within one look and are
            # applied by the judge (its decision is anytime-valid: a rollback acts at once). What the
            # engine counts are looks, with its own fixed rules (docs/contracts.md#policy).
            failed_looks=0,
            undecided_looks=UNDECIDED_LOOKS,
            blind_looks=BLIND_LOOKS,
            diagnostics=diagnostics,
        ),
    )


def _secs(value: float | None) -> float | None:
    return None if value is None else float(value)
