"""Chaos Toolkit activities: HTTP delay/abort through an Istio VirtualService, recorded in the fault ledger.

A thin wrapper around chaostoolkit-istio 0.4.1 (``chaosistio.fault.actions.set_fault`` /
``unset_fault``), which patches the VirtualService through the Kubernetes API. gate adds what the
extension lacks: the fault is written to the ledger before the patch, the delay and the abort go in
one fault block (``add_delay_fault`` and ``add_abort_fault`` each replace the block the other set),
and an API error raises instead of being returned as data (the extension returns ``{"status": 404}``
and the run would call it a success).

This module runs inside the chaos worker process (``python -m gate.drivers.chaos.worker``), never in
gate's own process: chaostoolkit-istio imports the Kubernetes client, which only ``gate.drivers.kube``
may import there. The extension is imported inside the functions so that importing this module costs
nothing and pulls in no Kubernetes client.

The Kubernetes connection comes from the extension: ``~/.kube/config`` (``KUBERNETES_CONTEXT``), the
pod's service account (``CHAOSTOOLKIT_IN_POD=true``), or ``KUBERNETES_HOST`` and friends. Secrets passed
to the action are used for the patch but never written to the ledger, so a recovery after a crash
connects the same way without them.
"""

from __future__ import annotations

import os
from typing import Any

from gate.drivers.chaos.ledger import LEDGER_ENV, FaultLedger, Undo

__all__ = ["clear_istio_fault", "inject_istio_fault"]

MODULE = "gate.drivers.chaos.istio"
KIND = "istio-fault"
DEFAULT_VERSION = "networking.istio.io/v1alpha3"
MAX_DELAY_S = 300.0


def _key(virtual_service_name: str, ns: str, routes: list[dict[str, Any]]) -> str:
    hosts = ",".join(
        sorted(
            f"{r['destination'].get('host', '')}/{r['destination'].get('subset') or ''}"
            for r in routes
            if isinstance(r, dict) and isinstance(r.get("destination"), dict)
        )
    )
    return f"{KIND}:{ns}/{virtual_service_name}:{hosts}"


def _check_routes(routes: list[dict[str, Any]]) -> None:
    if not isinstance(routes, list) or not routes:
        raise ValueError("routes must list at least one {'destination': {'host': ..., 'subset': ...}}")
    for i, route in enumerate(routes):
        dest = route.get("destination") if isinstance(route, dict) else None
        if not isinstance(dest, dict) or not isinstance(dest.get("host"), str):
            raise ValueError(f"routes[{i}] must be {{'destination': {{'host': ..., 'subset': ...}}}}")


def fault_block(
    delay_s: float = 0.0, delay_percent: float = 100.0, abort_status: int = 0, abort_percent: float = 0.0
) -> dict[str, Any]:
    """The VirtualService ``http[].fault`` block for a delay and/or an abort (percentages 0-100)."""
    if not 0 <= delay_s <= MAX_DELAY_S:
        raise ValueError(f"delay must be between 0 and {MAX_DELAY_S:g} s, not {delay_s!r}")
    for name, value in (("delay_percent", delay_percent), ("abort_percent", abort_percent)):
        if not 0 <= value <= 100:
            raise ValueError(f"{name} must be between 0 and 100, not {value!r}")
    fault: dict[str, Any] = {}
    if delay_s > 0:
        # Istio durations are protobuf Durations: seconds with up to nanosecond precision, suffix "s".
        fault["delay"] = {"fixedDelay": f"{delay_s:.3f}s", "percentage": {"value": float(delay_percent)}}
    if abort_percent > 0:
        if not 400 <= abort_status <= 599:
            raise ValueError(f"abort_status must be an HTTP status 400-599, not {abort_status!r}")
        fault["abort"] = {"httpStatus": int(abort_status), "percentage": {"value": float(abort_percent)}}
    if not fault:
        raise ValueError("an Istio fault needs a delay or aborts")
    return fault


def _check_result(result: dict[str, Any], what: str) -> dict[str, Any]:
    status = int(result.get("status", 0))
    if not 200 <= status < 300:
        body = str(result.get("body", ""))[:300]
        raise RuntimeError(f"{what}: the Kubernetes API answered {status}: {body}")
    return result


def inject_istio_fault(
    virtual_service_name: str,
    routes: list[dict[str, Any]],
    *,
    delay_s: float = 0.0,
    delay_percent: float = 100.0,
    abort_status: int = 0,
    abort_percent: float = 0.0,
    ns: str = "default",
    version: str = DEFAULT_VERSION,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Add a delay and/or abort fault to the VirtualService routes going to ``routes``' destinations."""
    from chaosistio.fault.actions import set_fault  # type: ignore[import-untyped]

    _check_routes(routes)
    fault = fault_block(delay_s, delay_percent, abort_status, abort_percent)
    ledger = FaultLedger.from_env()
    entry_id = ledger.record(
        KIND,
        _key(virtual_service_name, ns, routes),
        Undo(
            MODULE,
            "clear_istio_fault",
            {"virtual_service_name": virtual_service_name, "routes": routes, "ns": ns, "version": version},
        ),
        {"virtual_service": virtual_service_name, "namespace": ns, "fault": fault},
    )
    result = set_fault(
        virtual_service_name,
        routes=routes,
        fault=fault,
        ns=ns,
        version=version,
        configuration=configuration,
        secrets=secrets,
    )
    _check_result(result, f"fault on VirtualService {ns}/{virtual_service_name}")
    ledger.mark_injected(entry_id)
    return {"virtual_service": virtual_service_name, "namespace": ns, "fault": fault}


def clear_istio_fault(
    virtual_service_name: str,
    routes: list[dict[str, Any]],
    *,
    ns: str = "default",
    version: str = DEFAULT_VERSION,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Remove the fault block from those routes (idempotent) and close the ledger entry."""
    from chaosistio.fault.actions import unset_fault
    from chaosistio.fault.probes import get_virtual_service  # type: ignore[import-untyped]

    _check_routes(routes)
    what = f"clearing the fault on VirtualService {ns}/{virtual_service_name}"
    found = get_virtual_service(
        virtual_service_name, ns=ns, version=version, configuration=configuration, secrets=secrets
    )
    if int(found.get("status", 0)) == 404:
        note = "the VirtualService is gone, and its fault with it"
    else:
        _check_result(found, what)
        result = unset_fault(
            virtual_service_name,
            routes=routes,
            ns=ns,
            version=version,
            configuration=configuration,
            secrets=secrets,
        )
        _check_result(result, what)
        note = "cleared"
    if os.environ.get(LEDGER_ENV):
        FaultLedger.from_env().mark_cleared(_key(virtual_service_name, ns, routes))
    return {"virtual_service": virtual_service_name, "namespace": ns, "fault": None, "note": note}
