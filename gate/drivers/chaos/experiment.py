"""What a contract's chaos entry asks for, and the Chaos Toolkit experiment gate runs for it.

Three kinds, as in the contract's ``spec.chaos``:

- ``BuiltinFault`` (``fault: {target, delay, delayPercent, abort, abortStatus}``): gate generates an
  experiment: inject the fault (recorded in the ledger first), read it back, hold it for the step's
  duration (a Chaos Toolkit pause), and roll it back. Outside Kubernetes the fault goes to the nginx
  fault proxy; with ``istio`` in the context it becomes a VirtualService fault.
- ``ExperimentFile`` (``experiment: path``): the user's Chaos Toolkit experiment (JSON or YAML).
- ``InlineExperiment`` (``inline: {...}``): the same, written in the contract.

Pure: builds dicts, reads nothing but the file size check; Chaos Toolkit itself only runs in the worker.
Units follow the contract: seconds and fractions (0.15 = 15 %); the actions take milliseconds and
percentages, as the proxy and Istio do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.drivers.chaos.faultproxy import TARGET_RE

if TYPE_CHECKING:
    from gate.contract import Contract

ACTIONS = "gate.drivers.chaos.actions"
ISTIO = "gate.drivers.chaos.istio"
MAX_EXPERIMENT_BYTES = 1024 * 1024
MAX_HOLD_S = 24 * 3600.0


class ExperimentError(ValueError):
    """A chaos entry gate cannot turn into an experiment; the message says which field and why."""


@dataclass(frozen=True)
class HttpFault:
    """An HTTP delay and/or abort on a named target (seconds, fractions of requests)."""

    target: str
    delay: float = 0.0
    delay_percent: float = 1.0
    abort: float = 0.0
    abort_status: int = 503

    def check(self, where: str = "fault") -> None:
        if not TARGET_RE.match(self.target):
            raise ExperimentError(
                f"{where}.target {self.target!r}: use 1-64 letters, digits, '.', '_' or '-'"
            )
        if not 0 <= self.delay <= 300:
            raise ExperimentError(f"{where}.delay must be between 0 and 300 s, not {self.delay!r}")
        if not 0 <= self.delay_percent <= 1:
            raise ExperimentError(f"{where}.delayPercent must be a fraction 0-1, not {self.delay_percent!r}")
        if not 0 <= self.abort <= 1:
            raise ExperimentError(f"{where}.abort must be a fraction 0-1, not {self.abort!r}")
        if self.abort > 0 and not 400 <= self.abort_status <= 599:
            raise ExperimentError(
                f"{where}.abortStatus must be an HTTP status 400-599, not {self.abort_status!r}"
            )
        if self.delay == 0 and self.abort == 0:
            raise ExperimentError(f"{where}: a fault needs a delay, aborts, or both")


@dataclass(frozen=True)
class BuiltinFault:
    fault: HttpFault


@dataclass(frozen=True)
class ExperimentFile:
    path: Path


@dataclass(frozen=True)
class InlineExperiment:
    experiment: Mapping[str, Any]


ExperimentSpec = BuiltinFault | ExperimentFile | InlineExperiment


@dataclass(frozen=True)
class IstioTarget:
    """Where a builtin fault goes in a mesh: the VirtualService and the destinations it routes to."""

    virtual_service: str
    routes: list[dict[str, Any]]
    namespace: str = "default"
    version: str = "networking.istio.io/v1beta1"


@dataclass(frozen=True)
class FaultContext:
    """Where builtin faults are injected: the fault proxy's admin URL, or an Istio VirtualService.

    ``targets`` overrides the default per fault target name."""

    fault_proxy: str | None = None
    istio: IstioTarget | None = None
    targets: dict[str, FaultContext] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> FaultContext:
        """From plain data: ``{"fault_proxy": url}``, ``{"istio": {...}}``, ``{"targets": {name: ...}}``."""
        if raw is None:
            return cls()
        istio_raw = raw.get("istio")
        istio = None
        if istio_raw is not None:
            if not isinstance(istio_raw, Mapping):
                raise ExperimentError("context.istio must be a mapping")
            vs = istio_raw.get("virtual_service") or istio_raw.get("virtualService")
            routes = istio_raw.get("routes")
            if not isinstance(vs, str) or not isinstance(routes, list) or not routes:
                raise ExperimentError(
                    "context.istio needs virtual_service and routes: [{destination: {host}}]"
                )
            istio = IstioTarget(
                virtual_service=vs,
                routes=[dict(r) for r in routes],
                namespace=str(istio_raw.get("namespace", "default")),
                version=str(istio_raw.get("version", "networking.istio.io/v1beta1")),
            )
        targets_raw = raw.get("targets") or {}
        if not isinstance(targets_raw, Mapping):
            raise ExperimentError("context.targets must map target names to contexts")
        proxy = raw.get("fault_proxy")
        return cls(
            fault_proxy=str(proxy) if proxy else None,
            istio=istio,
            targets={str(k): cls.from_mapping(v) for k, v in targets_raw.items()},
        )

    def for_target(self, target: str) -> FaultContext:
        return self.targets.get(target, self)


def spec_from_contract(entry: Any) -> ExperimentSpec:
    """Adapt a contract's chaos entry (``gate.contract``'s model, or the same shape as plain data).

    Reads the attributes (or keys) ``fault`` / ``experiment`` / ``inline``; exactly one must be set."""

    def get(obj: Any, *names: str) -> Any:
        for name in names:
            if isinstance(obj, Mapping) and name in obj:
                return obj[name]
            if not isinstance(obj, Mapping) and getattr(obj, name, None) is not None:
                return getattr(obj, name)
        return None

    fault = get(entry, "fault")
    path = get(entry, "experiment", "path")
    inline = get(entry, "inline")
    chosen = [x for x in (fault, path, inline) if x is not None]
    if len(chosen) != 1:
        raise ExperimentError("a chaos entry needs exactly one of fault, experiment or inline")
    if fault is not None:
        http = HttpFault(
            target=str(get(fault, "target")),
            delay=float(get(fault, "delay") or 0.0),
            delay_percent=float(v if (v := get(fault, "delay_percent", "delayPercent")) is not None else 1.0),
            abort=float(get(fault, "abort") or 0.0),
            abort_status=int(get(fault, "abort_status", "abortStatus") or 503),
        )
        http.check()
        return BuiltinFault(http)
    if path is not None:
        return ExperimentFile(Path(str(path)))
    if not isinstance(inline, Mapping):
        inline = inline.model_dump(by_alias=True) if hasattr(inline, "model_dump") else None
    if not isinstance(inline, Mapping):
        raise ExperimentError("chaos inline must be a Chaos Toolkit experiment (a mapping)")
    return InlineExperiment(dict(inline))


def specs_from_contract(contract: Contract) -> dict[str, ExperimentSpec]:
    """Every chaos entry of a contract, by name; experiment files resolved against the contract's folder."""
    specs: dict[str, ExperimentSpec] = {}
    for name, entry in contract.spec.chaos.items():
        spec = spec_from_contract(entry)
        if isinstance(spec, ExperimentFile):
            spec = ExperimentFile(contract.resolve(str(spec.path)))
        specs[name] = spec
    return specs


def _python(func: str, arguments: dict[str, Any], module: str = ACTIONS) -> dict[str, Any]:
    return {"type": "python", "module": module, "func": func, "arguments": arguments}


def builtin_experiment(name: str, fault: HttpFault, context: FaultContext, hold: float) -> dict[str, Any]:
    """The Chaos Toolkit experiment for a builtin fault held for ``hold`` seconds, then rolled back."""
    fault.check()
    if not 0 < hold <= MAX_HOLD_S:
        raise ExperimentError(f"chaos {name!r}: the fault must be held for 0-{MAX_HOLD_S:g} s, not {hold!r}")
    ctx = context.for_target(fault.target)
    tags = ["gate", "builtin", f"target:{fault.target}"]
    description = (
        f"gate builtin fault on {fault.target}: delay {fault.delay * 1000:g} ms on {fault.delay_percent:.2%}"
        f" of requests, abort {fault.abort_status} on {fault.abort:.2%}, held {hold:g} s, then rolled back."
    )
    if ctx.istio is not None:
        ist = ctx.istio
        where = {
            "virtual_service_name": ist.virtual_service,
            "routes": ist.routes,
            "ns": ist.namespace,
            "version": ist.version,
        }
        inject = _python(
            "inject_istio_fault",
            {
                **where,
                "delay_s": fault.delay,
                "delay_percent": fault.delay_percent * 100,
                "abort_status": fault.abort_status if fault.abort > 0 else 0,
                "abort_percent": fault.abort * 100,
            },
            module=ISTIO,
        )
        method: list[dict[str, Any]] = [
            {"type": "action", "name": "inject-istio-fault", "provider": inject, "pauses": {"after": hold}}
        ]
        rollbacks = [
            {
                "type": "action",
                "name": "clear-istio-fault",
                "provider": _python("clear_istio_fault", where, ISTIO),
            }
        ]
        tags.append("istio")
    elif ctx.fault_proxy:
        where = {"admin_url": ctx.fault_proxy, "target": fault.target}
        inject = _python(
            "inject_http_fault",
            {
                **where,
                "delay_ms": round(fault.delay * 1000, 3),
                "delay_percent": round(fault.delay_percent * 100, 4),
                "abort_status": fault.abort_status if fault.abort > 0 else 0,
                "abort_percent": round(fault.abort * 100, 4),
            },
        )
        method = [
            {"type": "action", "name": "inject-http-fault", "provider": inject},
            {
                "type": "probe",
                "name": "http-fault-in-place",
                "provider": _python("http_fault_state", where),
                "pauses": {"after": hold},
            },
        ]
        rollbacks = [
            {"type": "action", "name": "clear-http-fault", "provider": _python("clear_http_fault", where)}
        ]
        tags.append("fault-proxy")
    else:
        raise ExperimentError(
            f"chaos {name!r}: nowhere to inject the fault on {fault.target!r}: "
            "the context names neither a fault proxy (fault_proxy: admin URL) nor an Istio VirtualService"
        )
    return {
        "version": "1.0.0",
        "title": f"gate chaos {name}",
        "description": description,
        "tags": tags,
        "method": method,
        "rollbacks": rollbacks,
    }


def check_experiment_file(path: Path) -> None:
    """Refuse files gate should not hand to Chaos Toolkit: missing, not a file, or too large."""
    if not path.is_file():
        raise ExperimentError(f"chaos experiment file {path} does not exist")
    size = path.stat().st_size
    if size > MAX_EXPERIMENT_BYTES:
        raise ExperimentError(
            f"chaos experiment file {path} is {size} bytes; the limit is {MAX_EXPERIMENT_BYTES}"
        )
    if path.suffix.lower() not in (".json", ".yaml", ".yml"):
        raise ExperimentError(f"chaos experiment file {path} must be .json, .yaml or .yml")
