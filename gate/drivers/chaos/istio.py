"""Chaos Toolkit activities: HTTP delay/abort through an Istio VirtualService, recorded in the fault ledger.

The fault is Istio's own ``http[].fault`` block (``delay.fixedDelay`` + ``percentage``, ``abort.httpStatus``
+ ``percentage``), set on every ``http`` route entry that sends traffic to one of the given destinations,
and removed from the same entries by ``clear_istio_fault``.

Why not chaostoolkit-istio's actions: 0.4.1 (``chaosistio.fault.actions``) calls
``ApiClient.call_api(..., auth_settings=...)``, a signature the locked Kubernetes client (37.x) no longer
has, so every call fails with a TypeError before reaching the API. gate therefore reads and patches the
VirtualService through chaostoolkit-kubernetes 0.39 (``chaosk8s.crd.probes.get_custom_object``,
``chaosk8s.crd.actions.patch_custom_object``), whose generated-API calls work. The patch is a JSON Patch
that first tests ``metadata.resourceVersion``: a VirtualService changed by someone else between read
and write is re-read and patched again, never overwritten. A delay and an abort go in one fault block.

This module runs inside the chaos worker process (``python -m gate.drivers.chaos.worker``), never in
gate's own process: chaostoolkit-kubernetes imports the Kubernetes client, which only
``gate.drivers.kube`` may import there. The extension is imported inside the functions, so importing
this module pulls in no Kubernetes client.

The connection comes from the extension: ``KUBECONFIG`` / ``~/.kube/config`` (``KUBERNETES_CONTEXT``),
the pod's service account (``CHAOSTOOLKIT_IN_POD=true``), or ``KUBERNETES_HOST`` and friends. Secrets
passed to the action are used for the calls but never written to the ledger, so a recovery after a
crash connects the same way without them.
"""

from __future__ import annotations

import os
from typing import Any

from gate.drivers.chaos.ledger import LEDGER_ENV, FaultLedger, Undo

__all__ = ["clear_istio_fault", "fault_block", "inject_istio_fault"]

MODULE = "gate.drivers.chaos.istio"
KIND = "istio-fault"
DEFAULT_VERSION = "networking.istio.io/v1beta1"
PLURAL = "virtualservices"
MAX_DELAY_S = 300.0
PATCH_ATTEMPTS = 4


def _key(virtual_service_name: str, ns: str, routes: list[dict[str, Any]]) -> str:
    hosts = ",".join(sorted(f"{h}/{s or ''}" for h, s in _destinations(routes)))
    return f"{KIND}:{ns}/{virtual_service_name}:{hosts}"


def _destinations(routes: list[dict[str, Any]]) -> set[tuple[str, str | None]]:
    found: set[tuple[str, str | None]] = set()
    for route in routes:
        dest = route.get("destination") if isinstance(route, dict) else None
        if isinstance(dest, dict) and isinstance(dest.get("host"), str):
            found.add((dest["host"], dest.get("subset")))
    return found


def _check_routes(routes: list[dict[str, Any]]) -> None:
    if not isinstance(routes, list) or not routes:
        raise ValueError("routes must list at least one {'destination': {'host': ..., 'subset': ...}}")
    for i, route in enumerate(routes):
        dest = route.get("destination") if isinstance(route, dict) else None
        if not isinstance(dest, dict) or not isinstance(dest.get("host"), str):
            raise ValueError(f"routes[{i}] must be {{'destination': {{'host': ..., 'subset': ...}}}}")


def _group_version(version: str) -> tuple[str, str]:
    group, _, ver = version.partition("/")
    if not group or not ver:
        raise ValueError(f"version {version!r} must be group/version, e.g. {DEFAULT_VERSION}")
    return group, ver


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
        # Istio durations are protobuf Durations: seconds with a fraction, suffix "s".
        fault["delay"] = {"fixedDelay": f"{delay_s:.3f}s", "percentage": {"value": float(delay_percent)}}
    if abort_percent > 0:
        if not 400 <= abort_status <= 599:
            raise ValueError(f"abort_status must be an HTTP status 400-599, not {abort_status!r}")
        fault["abort"] = {"httpStatus": int(abort_status), "percentage": {"value": float(abort_percent)}}
    if not fault:
        raise ValueError("an Istio fault needs a delay or aborts")
    return fault


def _matching(spec: dict[str, Any], wanted: set[tuple[str, str | None]]) -> list[int]:
    """Indexes of the ``http`` entries that route to one of the wanted destinations."""
    out = []
    for i, entry in enumerate(spec.get("http") or []):
        entry_routes = entry.get("route") if isinstance(entry, dict) else None
        for route in entry_routes if isinstance(entry_routes, list) else []:
            dest = route.get("destination") if isinstance(route, dict) else None
            if isinstance(dest, dict) and (dest.get("host"), dest.get("subset")) in wanted:
                out.append(i)
                break
    return out


def _is_not_found(exc: Exception) -> bool:
    # chaosk8s wraps ApiException into ActivityFailed with the reason in the text.
    return "'Not Found'" in str(exc)


def _is_conflict(exc: Exception) -> bool:
    text = str(exc)
    return any(word in text for word in ("'Conflict'", "'Unprocessable Entity'", "testing value"))


def _patch_fault(
    virtual_service_name: str,
    routes: list[dict[str, Any]],
    fault: dict[str, Any] | None,
    *,
    ns: str,
    version: str,
    secrets: dict[str, Any] | None,
) -> str:
    """Set (``fault``) or remove (``None``) the fault on the matching entries; returns a note."""
    from chaosk8s.crd.actions import patch_custom_object  # type: ignore[import-untyped]
    from chaosk8s.crd.probes import get_custom_object  # type: ignore[import-untyped]

    group, ver = _group_version(version)
    wanted = _destinations(routes)
    what = f"VirtualService {ns}/{virtual_service_name}"
    for attempt in range(PATCH_ATTEMPTS):
        try:
            current = get_custom_object(group, ver, PLURAL, virtual_service_name, ns=ns, secrets=secrets)
        except Exception as exc:
            if fault is None and _is_not_found(exc):
                return f"{what} is gone, and its fault with it"
            raise
        spec = current.get("spec") or {}
        indexes = _matching(spec, wanted)
        if not indexes:
            if fault is None:
                return f"{what} no longer routes to {sorted(wanted)}: nothing to clear"
            raise RuntimeError(f"{what} has no http route to {sorted(wanted)}; check routes")
        ops: list[dict[str, Any]] = []
        version_now = (current.get("metadata") or {}).get("resourceVersion")
        if version_now is not None:
            ops.append({"op": "test", "path": "/metadata/resourceVersion", "value": version_now})
        for i in indexes:
            if fault is not None:
                ops.append({"op": "add", "path": f"/spec/http/{i}/fault", "value": fault})
            elif "fault" in spec["http"][i]:
                ops.append({"op": "remove", "path": f"/spec/http/{i}/fault"})
        if not any(op["op"] != "test" for op in ops):
            return f"{what}: no fault to clear"
        try:
            patch_custom_object(
                group, ver, PLURAL, virtual_service_name, ns=ns, resource=ops, secrets=secrets
            )
        except Exception as exc:
            if _is_conflict(exc) and attempt + 1 < PATCH_ATTEMPTS:
                continue  # changed since we read it: read again
            raise
        done = "set" if fault is not None else "cleared"
        return f"{what}: fault {done} on http[{','.join(map(str, indexes))}]"
    raise RuntimeError(f"{what} kept changing; gave up after {PATCH_ATTEMPTS} attempts")


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
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Add a delay and/or abort fault to the VirtualService routes going to ``routes``' destinations."""
    _check_routes(routes)
    _group_version(version)
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
    note = _patch_fault(virtual_service_name, routes, fault, ns=ns, version=version, secrets=secrets)
    ledger.mark_injected(entry_id)
    return {"virtual_service": virtual_service_name, "namespace": ns, "fault": fault, "note": note}


def clear_istio_fault(
    virtual_service_name: str,
    routes: list[dict[str, Any]],
    *,
    ns: str = "default",
    version: str = DEFAULT_VERSION,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Remove the fault block from those routes (idempotent) and close the ledger entry."""
    _check_routes(routes)
    note = _patch_fault(virtual_service_name, routes, None, ns=ns, version=version, secrets=secrets)
    if os.environ.get(LEDGER_ENV):
        FaultLedger.from_env().mark_cleared(_key(virtual_service_name, ns, routes))
    return {"virtual_service": virtual_service_name, "namespace": ns, "fault": None, "note": note}
