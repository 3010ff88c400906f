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
from gate.drivers.routers.base import Finish, Outcome, RouterMisconfigured, RouterUnavailable, RouteState

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
    """Turn Kubernetes API failures into router errors (permanent stays permanent, temporary stays
    temporary), keeping the API's words and the hint on what to do."""
    try:
        yield
    except kube.KubePermanentError as exc:
        raise RouterMisconfigured(f"{what}: {exc.message}", hint=exc.hint) from exc
    except kube.KubeTemporaryError as exc:
        raise RouterUnavailable(f"{what}: {exc.message}", hint=exc.hint, retry_after=exc.retry_after) from exc


def untouched_and_already(obj: JSON, current: RouteState, *, weight: int | None, mirror: int | None) -> bool:
    """True when gate has not touched `obj` and it already routes as asked: nothing to write (so a
    rollback before the first weight step leaves the user's object exactly as it was)."""
    if read_ledger(obj) is not None:
        return False
    return (weight is None or current.canary_weight == weight) and (
        mirror is None or current.mirror_percent == mirror
    )


class ObjectRouter:
    """A router that edits gate's fields in one Kubernetes object (an HTTPRoute, a VirtualService):
    every change is one read-modify-write through `kube.KubeClient.modify` (guarded by the
    resourceVersion; a conflict is temporary and retried by the caller). Subclasses say how to
    apply, restore and read the object's routing."""

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

    def _change(self, *, weight: int | None = None, mirror: int | None = None) -> RouteState:
        def mutate(obj: JSON) -> JSON | None:
            if untouched_and_already(obj, self._state(obj), weight=weight, mirror=mirror):
                return None
            return self._apply(obj, weight=weight, mirror=mirror)

        with api_errors(self.describe()):
            obj = self.client.modify(self.target.ref, mutate)
        return self._state(obj)

    def set_weight(self, canary_percent: int) -> RouteState:
        weights.check_percent(canary_percent)
        return self._change(weight=canary_percent)

    def set_mirror(self, percent: int) -> RouteState:
        weights.check_percent(percent, "mirror percentage")
        return self._change(mirror=percent)

    def read(self) -> RouteState:
        with api_errors(self.describe()):
            obj = self.client.get(self.target.ref)
        return self._state(obj)

    def remove(self) -> None:
        with api_errors(self.describe()):
            self.client.modify(self.target.ref, self._restore)

    def _promote(self, obj: JSON) -> JSON | None:
        """Canary 100 %, no mirror, gate's record gone (the weights are the only change left)."""
        if untouched_and_already(obj, self._state(obj), weight=100, mirror=0):
            return None
        obj = self._apply(obj, weight=100, mirror=0)
        ledger = read_ledger(obj)
        if ledger is not None:
            drop_ledger(obj, ledger)
        return obj

    def finish(self, outcome: Outcome) -> Finish:
        change = self._promote if outcome == "promoted" else self._restore
        with api_errors(self.describe()):
            obj = self.client.modify(self.target.ref, change)
        return Finish(True, self._state(obj))
