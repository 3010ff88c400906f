"""kmock's KubernetesEmulator made faithful enough for kopf, kubectl and gate's optimistic writes.

What plain kmock lacks and this adds (RECIPES.md): resourceVersion, uid, generation and
creationTimestamp stamped on every write; RFC 7386 merge patches (null deletes a key) and RFC 6902 JSON
patches (a failing ``test`` answers 422, as the API server does); a stale ``metadata.resourceVersion``
answers 409; status isolation (a write to the main resource keeps the status, a write to ``/status``
keeps the rest); list responses with ``kind``/``apiVersion``; the core group's ``groupVersion: v1``.
It runs on its own event loop in a thread (``EmulatorThread``) so sync tests and separate processes
(the real ``gate operator``) reach it over real HTTP.

(The kube engineer's shared fixture ``tests/support/kube.py`` will replace this one once it lands.)
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
import threading
import uuid
from typing import Any

import aiohttp.web
import kmock
from kmock._internal import enums

from gate.operator import resource

GATES = f"{resource.GROUP}/{resource.VERSION}/{resource.PLURAL}"


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


class PatchFailed(Exception):
    pass


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def _json_patch(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    doc = copy.deepcopy(obj)
    for op in ops:
        parts = _pointer(op["path"])
        parent: Any = doc
        for part in parts[:-1]:
            if isinstance(parent, list):
                parent = parent[int(part)]
            else:
                if op["op"] == "add" and part not in parent:
                    parent[part] = {}
                parent = parent[part]
        last = parts[-1] if parts else ""
        kind = op["op"]
        if kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op.get("value"):
                raise PatchFailed(f"test failed at {op['path']}")
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                elif kind == "add":
                    parent.insert(int(last), op["value"])
                else:
                    parent[int(last)] = op["value"]
            else:
                parent[last] = op["value"]
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            else:
                parent.pop(last, None)
        else:
            raise PatchFailed(f"unsupported op {kind}")
    return doc


def _status(code: int, reason: str, message: str) -> aiohttp.web.Response:
    return aiohttp.web.json_response(
        {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "code": code,
            "reason": reason,
            "message": message,
        },
        status=code,
    )


class Emulator(kmock.KubernetesEmulator):  # type: ignore[misc]
    """The emulator with the write semantics of a real API server (those gate and kopf rely on)."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._rv = itertools.count(1000)
        self.writes: list[tuple[str, str, str | None, str | None]] = []  # (verb, plural, ns, name)
        self.fail_next: list[tuple[str, int]] = []  # (plural, status): answer the next write with it
        self.history: list[tuple[str, str | None, str | None, dict[str, Any]]] = []  # every stored write

    async def _handle(self, request: Any) -> aiohttp.web.StreamResponse:
        if request.resource is not None and request.action in (enums.action.CREATE, enums.action.UPDATE):
            return await self._write(request)
        return await super()._handle(request)

    async def _write(self, request: Any) -> aiohttp.web.StreamResponse:
        res = request.resource
        data = request.data
        creating = request.action == enums.action.CREATE
        meta_in = (data.get("metadata") or {}) if isinstance(data, dict) else {}
        name = request.name or meta_in.get("name")
        if creating and not name and meta_in.get("generateName"):
            name = f"{meta_in['generateName']}{uuid.uuid4().hex[:5]}"
        namespace = request.namespace or meta_in.get("namespace")
        self.writes.append(
            ("create" if creating else str(request.method).lower(), res.plural, namespace, name)
        )
        for i, (plural, code) in enumerate(self.fail_next):
            if plural == res.plural:
                self.fail_next.pop(i)
                return _status(code, "Injected", f"injected {code}")
        key = (res, namespace, name)
        async with self._lock:
            current = None
            if key in self._objects and not self._objects[key].deleted:
                current = copy.deepcopy(self._objects[key].raw)
            if creating:
                if current is not None:
                    return _status(409, "AlreadyExists", f"{res.plural} {name!r} already exists")
                new = copy.deepcopy(data)
                meta = new.setdefault("metadata", {})
                meta["namespace"] = namespace
                meta["uid"] = str(uuid.uuid4())
                meta["generation"] = 1
                meta["creationTimestamp"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                event = "ADDED"
            else:
                if current is None:
                    return _status(404, "NotFound", f"{res.plural} {name!r} not found")
                kind = str(request.headers.get("Content-Type", "")).split(";")[0]
                try:
                    if str(request.method).upper().endswith("PUT"):
                        new = copy.deepcopy(data)
                    elif kind == "application/json-patch+json":
                        new = _json_patch(current, data)
                    else:
                        new = _merge(current, data)
                except (PatchFailed, KeyError, IndexError, ValueError, TypeError) as exc:
                    return _status(422, "Invalid", f"the patch could not be applied: {exc}")
                sent_rv = (
                    ((data.get("metadata") or {}).get("resourceVersion")) if isinstance(data, dict) else None
                )
                if sent_rv is not None and sent_rv != current["metadata"].get("resourceVersion"):
                    return _status(
                        409,
                        "Conflict",
                        "the object has been modified; apply your changes to the latest version",
                    )
                if request.subresource == "status":
                    new = {**current, "status": new.get("status")}
                elif self._has_status(res) and ("status" in current or "status" in new):
                    new["status"] = current.get("status")
                    if new["status"] is None:
                        new.pop("status")
                meta = new.setdefault("metadata", {})
                for stamp in ("uid", "creationTimestamp", "generation", "namespace", "name"):
                    if stamp in current["metadata"]:
                        meta[stamp] = current["metadata"][stamp]
                if new.get("spec") != current.get("spec"):
                    meta["generation"] = int(current["metadata"].get("generation", 1)) + 1
                event = "MODIFIED"
            meta["name"] = name
            meta["resourceVersion"] = str(next(self._rv))
            if not creating and meta.get("deletionTimestamp") and not meta.get("finalizers"):
                self._objects[key].delete()
                await self._buses[res].put({"type": "DELETED", "object": new})
                return aiohttp.web.json_response(new)
            self._objects[key] = new
            self.history.append((res.plural, namespace, name, copy.deepcopy(new)))
            await self._buses[res].put({"type": event, "object": copy.deepcopy(new)})
        return aiohttp.web.json_response(new, status=201 if creating else 200)

    def _has_status(self, res: Any) -> bool:
        for known in self.resources:
            if known == res:
                return "status" in set(self.resources[known].subresources)
        return False

    async def _serve_list(self, request: Any) -> Any:
        answer = await super()._serve_list(request)
        info = self.resources.get(request.resource) if hasattr(self.resources, "get") else None
        kind = getattr(info, "kind", None) or "List"
        group = request.resource.group
        answer["apiVersion"] = f"{group}/{request.resource.version}" if group else request.resource.version
        answer["kind"] = f"{kind}List"
        answer["metadata"] = {"resourceVersion": str(next(self._rv))}
        return answer

    async def _serve_version(self, request: Any) -> Any:
        answer = await super()._serve_version(request)
        if request.resource is not None and not request.resource.group:
            answer["groupVersion"] = request.resource.version
        return answer


def register_resources(k: Emulator) -> None:
    """The resources kopf, gate and kubectl need discovered."""
    verbs = {"list", "watch", "get", "patch", "create", "update", "delete"}
    k.resources[GATES] = kmock.ResourceInfo(
        kind="PerformanceGate",
        namespaced=True,
        verbs=verbs,
        subresources={"status"},
        singular="performancegate",
    )
    k.resources[f"{resource.GROUP}/{resource.VERSION}/{resource.CONTRACT_PLURAL}"] = kmock.ResourceInfo(
        kind="PerformanceContract", namespaced=True, verbs=verbs, singular="performancecontract"
    )
    k.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = kmock.ResourceInfo(
        kind="CustomResourceDefinition", namespaced=False, verbs=verbs
    )
    k.resources["v1/namespaces"] = kmock.ResourceInfo(kind="Namespace", namespaced=False, verbs=verbs)
    k.resources["v1/events"] = kmock.ResourceInfo(kind="Event", namespaced=True, verbs=verbs)
    k.resources["apps/v1/deployments"] = kmock.ResourceInfo(
        kind="Deployment",
        namespaced=True,
        verbs=verbs,
        subresources={"status", "scale"},
        singular="deployment",
    )
    k.resources["gateway.networking.k8s.io/v1/httproutes"] = kmock.ResourceInfo(
        kind="HTTPRoute", namespaced=True, verbs=verbs, singular="httproute"
    )
    k.resources["kopf.dev/v1/clusterkopfpeerings"] = kmock.ResourceInfo(
        kind="ClusterKopfPeering", namespaced=False, verbs=verbs, singular="clusterkopfpeering"
    )
    k.resources["kopf.dev/v1/kopfpeerings"] = kmock.ResourceInfo(
        kind="KopfPeering", namespaced=True, verbs=verbs, singular="kopfpeering"
    )


class EmulatorThread:
    """The emulator served on loopback from its own event loop in a thread; ``url`` to reach it."""

    def __init__(self) -> None:
        self.url = ""
        self.emulator: Emulator | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="kube-emulator", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        try:
            self._stop = asyncio.Event()
            async with Emulator() as k, kmock.Server(k, host="127.0.0.1") as srv:
                register_resources(k)
                self.emulator = k
                self.url = str(srv.url).rstrip("/")
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    def start(self) -> EmulatorThread:
        self._thread.start()
        self._ready.wait(20)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def call(self, fn: Any) -> Any:
        """Run ``fn()`` (sync, touching the emulator's objects) on the emulator's loop."""

        async def wrapped() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(10)
