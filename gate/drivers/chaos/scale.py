"""Chaos Toolkit activities: scale a Deployment for a step, recorded in the fault ledger, scaled back after.

chaostoolkit-kubernetes' own ``scale_deployment`` changes the replica count and forgets what it was:
the experiment's rollback has to hard-code the old count, and a gate killed together with its worker
leaves the Deployment scaled down for good. gate's version reads the replica count first, writes it to
the fault ledger *before* scaling, and ``restore_deployment_scale`` puts it back — from the experiment's
rollbacks (no count needed: it comes from the ledger) or from ``ChaosDriver.recover()`` at the next start.

    method:    {module: gate.drivers.chaos.scale, func: scale_deployment,
                arguments: {name: checkout-canary, replicas: 1, ns: shop}}
    rollbacks: {module: gate.drivers.chaos.scale, func: restore_deployment_scale,
                arguments: {name: checkout-canary, ns: shop}}

Scaling the same Deployment twice in one run keeps the count from before the first scale, so the
restore always returns to what the Deployment had before gate touched it. Killing pods needs no undo
(their Deployment replaces them): use ``chaosk8s.pod.actions.terminate_pods`` as it is.

Like ``gate.drivers.chaos.istio``, this module runs in the chaos worker process only (the extension
imports the Kubernetes client); it imports chaostoolkit-kubernetes inside its functions. The connection
comes from the extension (``KUBECONFIG``, the pod's service account, or ``KUBERNETES_HOST``); secrets
passed to an action are never written to the ledger.
"""

from __future__ import annotations

import os
import re
from typing import Any

from gate.drivers.chaos.ledger import LEDGER_ENV, FaultLedger, Undo

__all__ = ["restore_deployment_scale", "scale_deployment"]

MODULE = "gate.drivers.chaos.scale"
KIND = "deployment-scale"
MAX_REPLICAS = 10_000
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def _check_name(what: str, value: str) -> str:
    if not isinstance(value, str) or len(value) > 253 or not _NAME_RE.match(value):
        raise ValueError(f"{what} {value!r} is not a Kubernetes name (lowercase letters, digits, '-', '.')")
    return value


def _key(name: str, ns: str) -> str:
    return f"{KIND}:{ns}/{name}"


def _replicas_now(name: str, ns: str, secrets: dict[str, Any] | None) -> int:
    from chaosk8s.crd.probes import get_custom_object  # type: ignore[import-untyped]

    # The generic object API reaches any API group, apps/v1 included, and returns plain JSON.
    deployment = get_custom_object("apps", "v1", "deployments", name, ns=ns, secrets=secrets)
    replicas = (deployment.get("spec") or {}).get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise RuntimeError(f"Deployment {ns}/{name} has no usable spec.replicas ({replicas!r})")
    return replicas


def _scale(name: str, replicas: int, ns: str, secrets: dict[str, Any] | None) -> None:
    from chaosk8s.deployment.actions import scale_deployment as k8s_scale  # type: ignore[import-untyped]

    k8s_scale(name, replicas, ns=ns, secrets=secrets)


def _recorded_before(ledger: FaultLedger, key: str) -> int | None:
    """The replica count before gate's first open scale of this Deployment, if one is open."""
    for entry in ledger.open_entries():  # oldest first
        before = entry.detail.get("replicas_before")
        if entry.key == key and isinstance(before, int) and not isinstance(before, bool):
            return before
    return None


def scale_deployment(
    name: str, replicas: int, ns: str = "default", secrets: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Scale Deployment ``ns/name`` to ``replicas``, after recording the count it had in the ledger."""
    _check_name("name", name)
    _check_name("ns", ns)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 0 <= replicas <= MAX_REPLICAS:
        raise ValueError(f"replicas must be a whole number between 0 and {MAX_REPLICAS}, not {replicas!r}")
    ledger = FaultLedger.from_env()
    key = _key(name, ns)
    before = _recorded_before(ledger, key)
    if before is None:
        before = _replicas_now(name, ns, secrets)
    entry_id = ledger.record(
        KIND,
        key,
        Undo(MODULE, "restore_deployment_scale", {"name": name, "ns": ns, "replicas": before}),
        {"deployment": name, "namespace": ns, "replicas_before": before, "replicas": replicas},
    )
    _scale(name, replicas, ns, secrets)
    ledger.mark_injected(entry_id)
    return {"deployment": name, "namespace": ns, "replicas": replicas, "replicas_before": before}


def restore_deployment_scale(
    name: str, ns: str = "default", replicas: int | None = None, secrets: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Scale ``ns/name`` back to the count recorded before gate scaled it (idempotent).

    ``replicas`` is what recovery passes (it is in the ledger entry); an experiment's rollback leaves it
    out and the count comes from the ledger. Nothing open in the ledger: nothing to restore. A
    Deployment that no longer exists has nothing to restore either."""
    _check_name("name", name)
    _check_name("ns", ns)
    key = _key(name, ns)
    ledger = FaultLedger.from_env() if os.environ.get(LEDGER_ENV) else None
    target = replicas
    if target is None and ledger is not None:
        target = _recorded_before(ledger, key)
    if target is None:
        return {"deployment": name, "namespace": ns, "note": "no scale recorded: nothing to restore"}
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target <= MAX_REPLICAS:
        raise ValueError(f"replicas must be a whole number between 0 and {MAX_REPLICAS}, not {target!r}")
    note = f"scaled back to {target}"
    try:
        _scale(name, target, ns, secrets)
    except Exception as exc:
        # chaosk8s wraps the API error into ActivityFailed with the reason in the text.
        if "Not Found" not in str(exc):
            raise
        note = "the Deployment is gone: nothing to restore"
    if ledger is not None:
        ledger.mark_cleared(key)
    return {"deployment": name, "namespace": ns, "replicas": target, "note": note}
