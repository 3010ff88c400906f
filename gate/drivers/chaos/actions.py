"""Chaos Toolkit activities gate ships: HTTP faults through the fault proxy and the demo's fault switches.

Use them from any experiment with a python provider::

    {"type": "action", "name": "slow-risk-api",
     "provider": {"type": "python", "module": "gate.drivers.chaos.actions", "func": "inject_http_fault",
                  "arguments": {"admin_url": "http://127.0.0.1:9901", "target": "risk-api",
                                "delay_ms": 800, "delay_percent": 100}}}

and undo them in the experiment's ``rollbacks`` with ``clear_http_fault`` / ``clear_demo_switch``.
Every ``inject``/``set`` writes the fault and its undo to the fault ledger (``GATE_FAULT_LEDGER``)
*before* touching anything, and refuses to act without a ledger: a fault gate cannot record is a fault
it might never undo. Every ``clear`` is idempotent and closes the ledger entry.

Istio VirtualService faults are in ``gate.drivers.chaos.istio``, a recorded Deployment scale in
``gate.drivers.chaos.scale``; pod kill comes straight from chaostoolkit-kubernetes
(``chaosk8s.pod.actions.terminate_pods``: nothing to undo). This module uses plain HTTP only, so gate may
also call the ``clear_*`` functions in its own process when it recovers after a crash.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from gate.drivers.chaos.ledger import LEDGER_ENV, FaultLedger, Undo

__all__ = [
    "clear_demo_switch",
    "clear_http_fault",
    "http_fault_state",
    "inject_http_fault",
    "set_demo_switch",
]

MODULE = "gate.drivers.chaos.actions"
KIND_PROXY = "http-proxy"
KIND_SWITCH = "demo-switch"
MAX_DELAY_MS = 300_000
MAX_SWITCH_FIELDS = 16


def _base_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} {url!r} must be an http(s) URL with a host")
    return url.rstrip("/")


def _check_number(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"{name} must be a number between {low:g} and {high:g}, not {value!r}")


def _proxy_key(admin_url: str, target: str) -> str:
    return f"{KIND_PROXY}:{admin_url}/faults/{target}"


def inject_http_fault(
    admin_url: str,
    target: str,
    *,
    delay_ms: float = 0,
    delay_percent: float = 100,
    abort_status: int = 0,
    abort_percent: float = 0,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Delay and/or abort requests through the fault proxy's ``target`` (percentages 0-100).

    Recorded in the ledger before the proxy is told. Returns the fault the proxy now holds."""
    admin = _base_url(admin_url, "fault proxy admin URL")
    _check_number("delay_ms", delay_ms, 0, MAX_DELAY_MS)
    _check_number("delay_percent", delay_percent, 0, 100)
    _check_number("abort_percent", abort_percent, 0, 100)
    if abort_percent > 0 and not (isinstance(abort_status, int) and 400 <= abort_status <= 599):
        raise ValueError(f"abort_status must be an HTTP status 400-599 when aborting, not {abort_status!r}")
    if delay_ms == 0 and abort_percent == 0:
        raise ValueError("inject_http_fault needs a delay (delay_ms > 0) or aborts (abort_percent > 0)")
    body = {
        "delay_ms": delay_ms,
        "delay_percent": delay_percent,
        "abort_status": abort_status if abort_percent > 0 else 0,
        "abort_percent": abort_percent,
    }
    ledger = FaultLedger.from_env()
    entry_id = ledger.record(
        KIND_PROXY,
        _proxy_key(admin, target),
        Undo(MODULE, "clear_http_fault", {"admin_url": admin, "target": target}),
        {"target": target, **body},
    )
    response = httpx.put(f"{admin}/faults/{quote(target, safe='')}", json=body, timeout=timeout)
    if response.status_code != 200:
        raise RuntimeError(
            f"fault proxy refused the fault for {target!r}: HTTP {response.status_code} {response.text[:300]}"
        )
    ledger.mark_injected(entry_id)
    result: dict[str, Any] = response.json()
    return result


def clear_http_fault(admin_url: str, target: str, timeout: float = 5.0) -> dict[str, Any]:
    """Remove ``target``'s fault from the fault proxy (idempotent) and close its ledger entries.

    A proxy that refuses connections holds no faults (they live in nginx's memory), so that counts
    as cleared; any other failure raises and the ledger entry stays open."""
    admin = _base_url(admin_url, "fault proxy admin URL")
    note = "cleared"
    try:
        response = httpx.delete(f"{admin}/faults/{quote(target, safe='')}", timeout=timeout)
    except httpx.ConnectError:
        note = "fault proxy not running: it holds no faults"
    else:
        if response.status_code != 200:
            raise RuntimeError(
                f"fault proxy did not clear {target!r}: HTTP {response.status_code} {response.text[:300]}"
            )
    _close(_proxy_key(admin, target))
    return {"target": target, "fault": None, "note": note}


def http_fault_state(admin_url: str, target: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
    """Probe: the faults the proxy holds now (all targets, or one)."""
    admin = _base_url(admin_url, "fault proxy admin URL")
    response = httpx.get(f"{admin}/faults", timeout=timeout)
    response.raise_for_status()
    targets: dict[str, Any] = response.json().get("targets", {})
    if target is None:
        return targets
    if target not in targets:
        raise ValueError(f"the fault proxy has no target {target!r}; it has {sorted(targets)}")
    return {target: targets[target]}


def _switch_key(url: str, path: str) -> str:
    return f"{KIND_SWITCH}:{url}{path}"


def _check_path(path: str) -> str:
    if not path.startswith("/") or any(c in path for c in "?#\\ ") or ".." in path:
        raise ValueError(f"switch path {path!r} must be an absolute path without query or '..'")
    return path


def set_demo_switch(
    url: str,
    switches: dict[str, Any],
    path: str = "/__switch",
    reset: dict[str, Any] | None = None,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Turn on a service's own fault switches: ``POST {url}{path}`` with ``switches`` as JSON.

    The demo service takes ``{"latency_ms": 300, "error_rate": 0.05, "leak": true}``. The undo is
    ``DELETE {url}{path}``, or ``POST`` of ``reset`` when the service has no DELETE."""
    base = _base_url(url, "service URL")
    _check_path(path)
    if not isinstance(switches, dict) or not switches or len(switches) > MAX_SWITCH_FIELDS:
        raise ValueError(f"switches must be a JSON object of 1-{MAX_SWITCH_FIELDS} fields")
    ledger = FaultLedger.from_env()
    entry_id = ledger.record(
        KIND_SWITCH,
        _switch_key(base, path),
        Undo(MODULE, "clear_demo_switch", {"url": base, "path": path, "reset": reset}),
        {"switches": switches},
    )
    response = httpx.post(f"{base}{path}", json=switches, timeout=timeout)
    if response.status_code >= 300:
        raise RuntimeError(
            f"{base}{path} refused the switch: HTTP {response.status_code} {response.text[:300]}"
        )
    ledger.mark_injected(entry_id)
    try:
        result: dict[str, Any] = response.json()
    except ValueError:
        result = {"status": response.status_code}
    return result


def clear_demo_switch(
    url: str,
    path: str = "/__switch",
    reset: dict[str, Any] | None = None,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Turn a service's fault switches off (idempotent) and close the ledger entry."""
    base = _base_url(url, "service URL")
    _check_path(path)
    if reset is None:
        response = httpx.delete(f"{base}{path}", timeout=timeout)
    else:
        response = httpx.post(f"{base}{path}", json=reset, timeout=timeout)
    if response.status_code >= 300:
        raise RuntimeError(f"{base}{path} did not clear: HTTP {response.status_code} {response.text[:300]}")
    _close(_switch_key(base, path))
    return {"url": base, "cleared": True}


def _close(key: str) -> None:
    # A clear outside gate (no ledger) still clears; it just has nothing to close.
    if os.environ.get(LEDGER_ENV):
        FaultLedger.from_env().mark_cleared(key)
