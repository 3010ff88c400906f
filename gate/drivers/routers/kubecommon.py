"""What the Kubernetes routers share: the annotation in which gate remembers, on the object itself,
the original values of the fields it changed (so `remove()` can put them back after a restart), and
the translation of API errors into router errors."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from gate.drivers import kube
from gate.drivers.routers import weights
from gate.drivers.routers.base import RouterMisconfigured, RouterUnavailable, RouteState

JSON = dict[str, Any]

# Gate's own annotation: the only annotation key gate adds to an object it does not own.
LEDGER_ANNOTATION = "perfgate.dev/router-original"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_GATE = "perfgate"
MAX_LEDGER = 16_000


def read_ledger(obj: JSON) -> JSON | None:
    """Gate's record of the original values on `obj`, or None when gate has not touched it."""
    raw = (obj.get("metadata", {}).get("annotations") or {}).get(LEDGER_ANNOTATION)
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > MAX_LEDGER:
        raise RouterMisconfigured(f"annotation {LEDGER_ANNOTATION} is not gate's record; remove it by hand")
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise RouterMisconfigured(
            f"annotation {LEDGER_ANNOTATION} is not valid JSON; remove it by hand"
        ) from exc
    if not isinstance(value, dict):
        raise RouterMisconfigured(f"annotation {LEDGER_ANNOTATION} is not gate's record; remove it by hand")
    return value


def write_ledger(obj: JSON, ledger: JSON) -> None:
    """Record `ledger` on `obj` (in place), creating the annotations map if needed; the ledger notes
    whether that map existed, so `drop_ledger` leaves metadata exactly as it was."""
    meta = obj.setdefault("metadata", {})
    if "annotations" not in meta or meta["annotations"] is None:
        ledger = {**ledger, "annotationsAbsent": True}
        meta["annotations"] = {}
    meta["annotations"][LEDGER_ANNOTATION] = json.dumps(ledger, sort_keys=True, separators=(",", ":"))


def drop_ledger(obj: JSON, ledger: JSON) -> None:
    """Remove gate's annotation (in place), and the annotations map when gate created it."""
    meta = obj.get("metadata", {})
    annotations = meta.get("annotations") or {}
    annotations.pop(LEDGER_ANNOTATION, None)
    if ledger.get("annotationsAbsent") and not annotations:
        meta.pop("annotations", None)


@contextlib.contextmanager
def api_errors(what: str) -> Iterator[None]:
    """Turn Kubernetes API failures into router errors that say what to do."""
    try:
        yield
    except kube.KubeNotFoundError as exc:
        raise RouterMisconfigured(f"{what}: {exc}; create it, or fix the name in the contract") from exc
    except kube.KubeForbiddenError as exc:
        raise RouterMisconfigured(
            f"{what}: {exc}; grant gate's service account the RBAC rules in docs/routers.md"
        ) from exc
    except kube.KubePermanentError as exc:
        raise RouterMisconfigured(f"{what}: {exc}") from exc
    except kube.KubeTemporaryError as exc:
        raise RouterUnavailable(f"{what}: {exc}") from exc


class ObjectRouter:
    """A router that edits gate's fields in one Kubernetes object (an HTTPRoute, a VirtualService):
    every change is a read-modify-write through `kube.KubeClient.modify` (resourceVersion, retried
    on conflict). Subclasses say how to apply, restore and read the object's routing."""

    client: kube.KubeClient
    target: Any  # the backend's target description; has `.ref`

    def describe(self) -> str:
        raise NotImplementedError

    def _apply(self, obj: JSON, *, weight: int | None = None, mirror: int | None = None) -> JSON:
        raise NotImplementedError

    def _restore(self, obj: JSON) -> JSON:
        raise NotImplementedError

    def _state(self, obj: JSON) -> RouteState:
        raise NotImplementedError

    def set_weight(self, canary_percent: int) -> RouteState:
        weights.check_percent(canary_percent)
        with api_errors(self.describe()):
            obj = self.client.modify(self.target.ref, lambda o: self._apply(o, weight=canary_percent))
        return self._state(obj)

    def set_mirror(self, percent: int) -> RouteState:
        weights.check_percent(percent, "mirror percentage")
        with api_errors(self.describe()):
            obj = self.client.modify(self.target.ref, lambda o: self._apply(o, mirror=percent))
        return self._state(obj)

    def read(self) -> RouteState:
        with api_errors(self.describe()):
            obj = self.client.read(self.target.ref)
        return self._state(obj)

    def remove(self) -> None:
        with api_errors(self.describe()):
            self.client.modify(self.target.ref, self._restore)
