"""The demo's contract: ``contracts/local-demo.yaml`` with the topology's real addresses.

The file in the repository is what a reader studies; the demo only rewrites what exists at run time
(URLs and ports, which are free ports picked at start), judges objectives ``during`` a chaos step on
every source (steps run one at a time, so no synthetic load runs during chaos), gives objectives
without a ``minEvidence`` the one the others have (the default 30 s is longer than the analyze
steps) and, for ``--quick``, puts in a shorter ladder.
The result is written beside the topology's other files and loaded like any contract, so a problem
in it is reported with file, line and field like any other.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from gate.contract import Contract, load_contract

CONTRACT_FILE = "local-demo.yaml"
# --quick runs its own, shorter ladder: every source and driver once, each long enough for the judge
# to conclude at 1 s scrapes and 100 production requests/s (an error ratio bounded by 1 % needs about
# 700 requests per source; a trend needs a dozen points). The whole demo stays under a minute.
QUICK_STEPS: list[Any] = [
    "load 20s",
    "mirror 100%",
    "50%",
    "analyze 15s",
    {"chaos": "risk-api-slow", "for": "10s"},
    "100%",
]
# Long enough for the paired raw samples to decide a 10 % tolerance on p95 for a good canary
# (12 s left its interval at x0.93-x1.10, undecided) while the demo stays under a minute.
QUICK_LOAD_DURATION = "20s"
QUICK_MIN_EVIDENCE = {"requests": 50, "duration": "10s"}


def keep_sources(spec: dict[str, Any], produced: set[str]) -> None:
    """For a shorter ladder that produces only ``produced`` sources and runs no chaos: objectives
    during chaos go, explicit source lists lose the sources no step produces (an objective left
    with none goes), so the edited contract still validates."""
    kept: list[Any] = []
    for objective in spec.get("objectives", []):
        if not isinstance(objective, dict) or objective.get("during"):
            continue
        if "sources" in objective:
            sources = [s for s in objective["sources"] if s in produced]
            if not sources:
                continue
            objective["sources"] = sources
        kept.append(objective)
    spec["objectives"] = kept


class DemoContractError(RuntimeError):
    """The demo contract file is missing or not shaped as the demo expects."""


def contract_source() -> Path:
    """Where the repository keeps the demo contract."""
    path = Path(__file__).resolve().parents[2] / "contracts" / CONTRACT_FILE
    if not path.exists():
        raise DemoContractError(f"{path} is missing: the demo runs from a checkout of the repository")
    return path


def demo_contract_data(
    source: Path,
    *,
    stable_url: str,
    canary_url: str,
    router_port: int,
    prometheus_url: str,
    quick: bool = False,
) -> dict[str, Any]:
    """The contract file as data, pointed at the running topology (and shortened for ``quick``)."""
    data = YAML().load(source.read_text())  # round-trip: the written file keeps order and comments
    try:
        spec = data["spec"]
        spec["target"] = {"stable": {"url": stable_url}, "canary": {"url": canary_url}}
        spec["router"]["port"] = router_port
        spec.setdefault("prometheus", {})["url"] = prometheus_url
    except (KeyError, TypeError) as exc:
        raise DemoContractError(f"{source}: not shaped like the demo contract ({exc})") from None
    objectives = [o for o in spec.get("objectives", []) if isinstance(o, dict)]
    # An objective left at the default minimum evidence (30 s) could never conclude inside the
    # ladder's 20 s analyze steps, and `onInconclusive: rollback` would then roll back a good canary:
    # it gets the minimum the contract gives its other objectives.
    given = next((o["minEvidence"] for o in objectives if "minEvidence" in o), None)
    for objective in objectives:
        if given is not None and "minEvidence" not in objective:
            objective["minEvidence"] = dict(given)
    for objective in spec.get("objectives", []):
        # An objective judged only `during` a chaos step gets synthetic evidence only if load runs in
        # that step, and steps run one at a time: judge it on whatever traffic reaches the canary then
        # (shadow and production), so the chaos step shows the breaker at work.
        if isinstance(objective, dict) and objective.get("during") and "sources" in objective:
            del objective["sources"]
    if quick:
        if "risk-api-slow" not in spec.get("chaos", {}):
            raise DemoContractError(
                f"{source}: --quick runs the chaos experiment risk-api-slow; it is missing"
            )
        spec["steps"] = list(QUICK_STEPS)
        if isinstance(spec.get("load"), dict):
            spec["load"]["duration"] = QUICK_LOAD_DURATION
        for objective in spec.get("objectives", []):
            if isinstance(objective, dict):
                objective["minEvidence"] = dict(QUICK_MIN_EVIDENCE)
    return data  # type: ignore[no-any-return]


def write_demo_contract(
    workdir: Path,
    *,
    stable_url: str,
    canary_url: str,
    router_port: int,
    prometheus_url: str,
    quick: bool = False,
    source: Path | None = None,
) -> tuple[Contract, Path]:
    """Write the topology's contract into ``workdir`` and load it (validated, with positions)."""
    src = source or contract_source()
    data = demo_contract_data(
        src,
        stable_url=stable_url,
        canary_url=canary_url,
        router_port=router_port,
        prometheus_url=prometheus_url,
        quick=quick,
    )
    yaml = YAML()
    yaml.width = 110
    buf = io.StringIO()
    buf.write(
        f"# Written by `gate demo` from {src.name}: the topology's real ports, "
        "`during` objectives judged on every source, one minEvidence for all objectives"
    )
    buf.write(", the shorter ladder of --quick.\n" if quick else ".\n")
    yaml.dump(data, buf)
    path = Path(workdir) / "contract.yaml"
    path.write_text(buf.getvalue())
    # Loaded from the written file, so problems point at its lines. (The demo contract names no
    # experiment file or locustfile; relative paths would resolve from the workdir.)
    contract = load_contract(path)
    return contract, path
