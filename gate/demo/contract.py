"""The demo's contract: ``contracts/local-demo.yaml`` with the topology's real addresses.

The file in the repository is what a reader studies; the demo only rewrites what exists at run time
(URLs and ports, which are free ports picked at start) and, for ``--quick``, shortens the steps.
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
# --quick scales every step duration by this and never below the floor (seconds): enough evidence
# for a decision at 1 s scrapes, short enough for the whole demo to stay under a minute.
QUICK_SCALE = 0.4
QUICK_FLOOR = 6.0
QUICK_MIN_EVIDENCE = {"requests": 30, "duration": "6s"}


class DemoContractError(RuntimeError):
    """The demo contract file is missing or not shaped as the demo expects."""


def contract_source() -> Path:
    """Where the repository keeps the demo contract."""
    path = Path(__file__).resolve().parents[2] / "contracts" / CONTRACT_FILE
    if not path.exists():
        raise DemoContractError(f"{path} is missing: the demo runs from a checkout of the repository")
    return path


def _seconds(text: Any) -> float | None:
    """'20s' / '2m' / 30 -> seconds (only the spellings the demo contract uses)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    if not isinstance(text, str):
        return None
    value = text.strip()
    for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if value.endswith(suffix):
            try:
                return float(value[: -len(suffix)]) * factor
            except ValueError:
                return None
    return None


def _scaled(seconds: float) -> str:
    return f"{max(QUICK_FLOOR, round(seconds * QUICK_SCALE)):g}s"


def _quick_step(step: Any) -> Any:
    """One step with its duration shortened; weights, mirror and plain words stay as written."""
    if isinstance(step, str):
        words = step.split()
        if len(words) >= 2 and words[0] in ("pause", "analyze", "load") and _seconds(words[-1]) is not None:
            return f"{' '.join(words[:-1])} {_scaled(_seconds(words[-1]) or 0)}"
        if len(words) == 3 and words[0] == "chaos" and _seconds(words[2]) is not None:
            return f"chaos {words[1]} {_scaled(_seconds(words[2]) or 0)}"
        return step
    if isinstance(step, dict):
        out = dict(step)
        for key in ("for", "duration"):
            if key in out and _seconds(out[key]) is not None:
                out[key] = _scaled(_seconds(out[key]) or 0)
        for kind in ("pause", "analyze", "load"):
            if kind in out and _seconds(out[kind]) is not None:
                out[kind] = _scaled(_seconds(out[kind]) or 0)
        return out
    return step


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
    if quick:
        spec["steps"] = [_quick_step(s) for s in spec.get("steps", [])]
        load = spec.get("load")
        if isinstance(load, dict) and _seconds(load.get("duration")) is not None:
            load["duration"] = _scaled(_seconds(load["duration"]) or 0)
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
    buf.write(f"# Written by `gate demo` from {src.name}: the topology's real ports")
    buf.write(", steps shortened for --quick.\n" if quick else ".\n")
    yaml.dump(data, buf)
    path = Path(workdir) / "contract.yaml"
    path.write_text(buf.getvalue())
    # Loaded from the written file, so problems point at its lines. (The demo contract names no
    # experiment file or locustfile; relative paths would resolve from the workdir.)
    contract = load_contract(path)
    return contract, path
