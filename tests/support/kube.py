"""A Kubernetes API server for tests: kmock's KubernetesEmulator, made to behave like the real one
where gate, kopf and kubectl depend on it, and able to misbehave on purpose.

What it adds to kmock (which merges patches as plain JSON and keeps no versions):

- every write stamps ``metadata.resourceVersion`` (a new one only when the object changed),
  ``uid``, ``creationTimestamp`` and ``generation`` (bumped when anything but metadata/status changes);
- a merge patch, PUT or delete carrying a stale ``resourceVersion`` is refused with 409 Conflict and
  not applied; creating an existing object is 409 AlreadyExists;
- JSON patches (RFC 6902) are applied properly, and a failed ``test`` op is 422 Invalid (kopf relies
  on it); strategic-merge and apply patches are treated as merge patches;
- the ``status`` subresource is isolated for resources that declare it (a main-resource write keeps
  the status, a status write changes only the status), as the API server does;
- discovery that kubectl understands (core ``groupVersion: v1``, lists with ``kind``/``apiVersion``);
- SelfSubjectAccessReview answered from the permissions the test sets (``deny``), and the same
  denials enforced as 403 on real requests;
- injected answers (``fail``: 403/404/409/429/503 …, optionally ``Retry-After``) for the next
  requests that match a verb/resource/name, and a ``freeze`` during which every request hangs
  (a request that hung is carried out after the thaw, as a stuck API server may do).

Use it in-process from asyncio (``async with KubeEmulator() as k, kmock.Server(k) as srv``), or
from blocking code with ``serve()`` / the ``kube_api`` pytest fixture: a server on a loopback port
in a background thread. ``RunningKube`` has thread-safe helpers (``seed``, ``stored``, ``freeze``,
``complete_rollout`` to play the Deployment controller, ``kubeconfig`` to write a kubeconfig file).
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import jsonpointer
import kmock
import pytest
import yaml
from kmock._internal import k8s_views, rendering

JSON = dict[str, Any]

# The resources gate touches (and kubectl/kopf need to discover), keyed like kmock's resources.
DEFAULT_RESOURCES: dict[str, kmock.ResourceInfo] = {
    "gateway.networking.k8s.io/v1/httproutes": kmock.ResourceInfo(
        kind="HTTPRoute", singular="httproute", namespaced=True,
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"}, subresources={"status"},
    ),
    "networking.istio.io/v1/virtualservices": kmock.ResourceInfo(
        kind="VirtualService", singular="virtualservice", namespaced=True,
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
    ),
    "networking.k8s.io/v1/ingresses": kmock.ResourceInfo(
        kind="Ingress", singular="ingress", namespaced=True,
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"}, subresources={"status"},
    ),
    "apps/v1/deployments": kmock.ResourceInfo(
        kind="Deployment", singular="deployment", namespaced=True,
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
        subresources={"status", "scale"},
    ),
    "v1/services": kmock.ResourceInfo(
        kind="Service", singular="service", namespaced=True,
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"}, subresources={"status"},
    ),
    "v1/namespaces": kmock.ResourceInfo(
        kind="Namespace", singular="namespace", namespaced=False, verbs={"get", "list", "watch", "create"}
    ),
    "v1/events": kmock.ResourceInfo(
        kind="Event", singular="event", namespaced=True, verbs={"create", "get", "list", "watch", "patch"}
    ),
    "authorization.k8s.io/v1/selfsubjectaccessreviews": kmock.ResourceInfo(
        kind="SelfSubjectAccessReview", singular="selfsubjectaccessreview", namespaced=False, verbs={"create"}
    ),
    "apiextensions.k8s.io/v1/customresourcedefinitions": kmock.ResourceInfo(
        kind="CustomResourceDefinition", singular="customresourcedefinition", namespaced=False,
        verbs={"get", "list", "watch"},
    ),
}  # fmt: skip

WRITES = frozenset({"create", "patch", "update", "delete"})


def api_error(status: int, reason: str, message: str) -> kmock.KubernetesError:
    """A Status error as the API server sends it."""
    return kmock.KubernetesError(status=status, reason=reason, message=message, details={})


@dataclass
class Fault:
    """An answer given instead of the real one to the next ``times`` matching requests."""

    status: int
    verb: str | None = None  # get, list, watch, create, patch, update, delete (None: any)
    resource: str | None = None  # plural, e.g. "httproutes" (None: any)
    name: str | None = None
    times: int = 1
    retry_after: float | None = None
    reason: str = ""
    message: str = ""

    def matches(self, call: Call) -> bool:
        return (
            (self.verb is None or self.verb == call.verb)
            and (self.resource is None or self.resource == call.plural)
            and (self.name is None or self.name == call.name)
        )


_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass(frozen=True)
class Call:
    """One request the emulator received (discovery excluded)."""

    verb: str
    group: str
    version: str
    plural: str
    namespace: str | None
    name: str | None
    subresource: str | None
    content_type: str
    body: Any


def _verb(request: rendering.Request) -> str:
    method = str(request.method.value if hasattr(request.method, "value") else request.method).upper()
    if method == "GET":
        if request.params.get("watch") in ("true", "1"):
            return "watch"
        return "get" if request.name else "list"
    return {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}.get(
        method, method.lower()
    )


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (``null`` removes, objects recurse, anything else replaces)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value)
    return out


def _key(resource: str, namespace: str | None, name: str) -> Any:
    """An ObjectsArray key (its `in` needs the parsed resource, not the string)."""
    return (k8s_views._parse_resource(resource), namespace, name)


def _spec_part(obj: JSON) -> JSON:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    """KubernetesEmulator with versions, preconditions, JSON patch, status isolation, RBAC answers,
    injected faults and freezes (see the module's docstring)."""

    _versions: Iterator[int] = attrs.field(factory=lambda: itertools.count(1000), init=False)
    faults: list[Fault] = attrs.field(factory=list, init=False)
    denied: set[tuple[str, str, str, str | None]] = attrs.field(factory=set, init=False)
    calls: list[Call] = attrs.field(factory=list, init=False)
    conflicts: int = attrs.field(default=0, init=False)
    # Every patch body as the client sent it: (object name, body).
    patches: list[tuple[str, Any]] = attrs.field(factory=list, init=False)
    _frozen: bool = attrs.field(default=False, init=False)
    _frozen_until: float | None = attrs.field(default=None, init=False)
    _interference: dict[tuple[str, str, str], list[Callable[[JSON], None]]] = attrs.field(
        factory=dict, init=False
    )
    with_default_resources: bool = True

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if self.with_default_resources:
            for key, info in DEFAULT_RESOURCES.items():
                self.resources[key] = info

    # -- set-up and inspection (call on the emulator's loop, or through RunningKube) ------------------

    def next_version(self) -> str:
        return str(next(self._versions))

    def seed(self, resource: str, namespace: str | None, name: str, obj: JSON) -> JSON:
        """Store ``obj`` as if it had been created (stamped like a create); returns what is stored."""
        body = copy.deepcopy(obj)
        meta = body.setdefault("metadata", {})
        meta["name"] = name
        if namespace is not None:
            meta["namespace"] = namespace
        self._stamp_new(body)
        key = _key(resource, namespace, name)
        if key in self.objects:
            self.objects[key].create(body)
        else:
            self.objects[key] = body
        return copy.deepcopy(body)

    def stored(self, resource: str, namespace: str | None, name: str) -> JSON:
        """The object as stored now (KeyError when absent or deleted)."""
        key = _key(resource, namespace, name)
        if key not in self.objects or self.objects[key].deleted:
            raise KeyError(f"{resource} {namespace}/{name} does not exist")
        return copy.deepcopy(self.objects[key].raw)

    def exists(self, resource: str, namespace: str | None, name: str) -> bool:
        key = _key(resource, namespace, name)
        return key in self.objects and not self.objects[key].deleted

    def fail(
        self,
        status: int,
        *,
        verb: str | None = None,
        resource: str | None = None,
        name: str | None = None,
        times: int = 1,
        retry_after: float | None = None,
        message: str = "",
    ) -> Fault:
        """Answer the next ``times`` requests matching verb/resource(plural)/name with ``status``,
        without carrying them out."""
        fault = Fault(
            status, verb, resource, name, times, retry_after, _REASONS.get(status, "Error"), message
        )
        self.faults.append(fault)
        return fault

    def reject_patches(self, count: int) -> None:
        """The next ``count`` patches are refused with 409 Conflict (not applied)."""
        self.fail(409, verb="patch", times=count)

    def interfere(self, resource: str, namespace: str, name: str, change: Callable[[JSON], None]) -> None:
        """Queue ``change`` to land (as another writer's update) right before the next patch of the object."""
        self._interference.setdefault((resource, namespace, name), []).append(change)

    def deny(self, verb: str, resource: str, *, group: str = "", namespace: str | None = None) -> None:
        """Take a permission away: SelfSubjectAccessReview says no, and the request itself gets 403.
        ``resource`` may name a subresource (``deployments/status``); ``namespace`` None: everywhere."""
        self.denied.add((verb, group, resource, namespace))

    def freeze(self, seconds: float | None = None) -> None:
        """Every request hangs until ``thaw()`` (or for ``seconds``), then is carried out."""
        self._frozen = True
        self._frozen_until = None if seconds is None else time.monotonic() + seconds

    def thaw(self) -> None:
        self._frozen = False
        self._frozen_until = None

    @property
    def frozen(self) -> bool:
        if self._frozen and self._frozen_until is not None and time.monotonic() >= self._frozen_until:
            self.thaw()
        return self._frozen

    def calls_of(self, verb: str | None = None, plural: str | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if (verb is None or c.verb == verb) and (plural is None or c.plural == plural)
        ]

    # -- the server --------------------------------------------------------------------------------

    def _is_denied(self, verb: str, group: str, resource: str, namespace: str | None) -> bool:
        return any(
            v in (verb, "*") and g == group and r in (resource, "*") and (ns is None or ns == namespace)
            for v, g, r, ns in self.denied
        )

    def _stamp_new(self, body: JSON) -> None:
        meta = body.setdefault("metadata", {})
        meta["resourceVersion"] = self.next_version()
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1

    def _info(self, resource: str) -> kmock.ResourceInfo | None:
        for key in self.resources:
            if f"{key.group}/{key.version}/{key.plural}".lstrip("/") == resource:
                return self.resources[key]
        return None

    def _has_status(self, resource: str) -> bool:
        info = self._info(resource)
        return info is not None and "status" in set(info.subresources)

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        while self.frozen:
            await asyncio.sleep(0.02)
        res = request.resource
        if res is None or res.plural is None:  # not an object request: discovery, /version …
            return await kmock.KubernetesScaffold._handle(self, request)
        verb = _verb(request)
        call = Call(
            verb=verb,
            group=res.group or "",
            version=res.version or "",
            plural=res.plural,
            namespace=request.namespace,
            name=request.name or (request.data or {}).get("metadata", {}).get("name")
            if isinstance(request.data, dict)
            else request.name,
            subresource=request.subresource,
            content_type=str(request.headers.get("Content-Type", "")),
            body=copy.deepcopy(request.data),
        )
        self.calls.append(call)
        if verb == "patch":
            self.patches.append((str(request.name), copy.deepcopy(request.data)))
        for fault in self.faults:
            if fault.times > 0 and fault.matches(call):
                fault.times -= 1
                if fault.status == 409:
                    self.conflicts += 1
                message = fault.message or f"{fault.reason} (injected by the test)"
                return self._error(fault.status, fault.reason, message, retry_after=fault.retry_after)
        if (call.group, call.plural) == ("authorization.k8s.io", "selfsubjectaccessreviews"):
            return self._review(request.data)
        rbac_resource = call.plural + (f"/{call.subresource}" if call.subresource else "")
        if self._is_denied(verb, call.group, rbac_resource, call.namespace):
            what = f"{call.plural}.{call.group}" if call.group else call.plural
            name = f' "{call.name}"' if call.name else ""
            where = f' in the namespace "{call.namespace}"' if call.namespace else ""
            return self._error(
                403,
                "Forbidden",
                f'{what}{name} is forbidden: User "test" cannot {verb} resource "{rbac_resource}" '
                f'in API group "{call.group}"{where}',
            )
        if verb in WRITES:
            try:
                async with self._lock:
                    status, obj = await self._write(request, call)
            except kmock.KubernetesError as exc:
                return await self._render_error(exc)
            return aiohttp.web.json_response(obj, status=status)
        return await kmock.KubernetesScaffold._handle(self, request)

    def _error(
        self, status: int, reason: str, message: str, *, retry_after: float | None = None
    ) -> aiohttp.web.Response:
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
        body = {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "code": status,
            "reason": reason,
            "message": message,
        }
        return aiohttp.web.json_response(body, status=status, headers=headers)

    def _review(self, body: Any) -> aiohttp.web.Response:
        attrs_ = ((body or {}).get("spec") or {}).get("resourceAttributes") or {}
        verb = str(attrs_.get("verb") or "")
        resource = str(attrs_.get("resource") or "")
        if attrs_.get("subresource"):
            resource += f"/{attrs_['subresource']}"
        denied = self._is_denied(verb, str(attrs_.get("group") or ""), resource, attrs_.get("namespace"))
        out = copy.deepcopy(body) if isinstance(body, dict) else {}
        out.setdefault("apiVersion", "authorization.k8s.io/v1")
        out.setdefault("kind", "SelfSubjectAccessReview")
        out.setdefault("metadata", {})
        out["status"] = {"allowed": not denied}
        if denied:
            out["status"]["reason"] = "denied by the test"
        return aiohttp.web.json_response(out, status=201)

    async def _write(self, request: rendering.Request, call: Call) -> tuple[int, JSON]:
        res = request.resource
        assert res is not None
        resource = f"{call.group}/{call.version}/{call.plural}".lstrip("/")
        data = request.data
        if call.verb == "create":
            if not isinstance(data, dict):
                raise api_error(400, "BadRequest", "the body of a create must be an object")
            name = (data.get("metadata") or {}).get("name")
            if not name:
                raise api_error(422, "Invalid", "metadata.name: Required value")
            key = (res, request.namespace, name)
            if key in self.objects and not self.objects[key].deleted:
                raise api_error(409, "AlreadyExists", f'{call.plural} "{name}" already exists')
            body = copy.deepcopy(data)
            if request.namespace is not None:
                body["metadata"]["namespace"] = request.namespace
            info = self._info(resource)
            body.setdefault("apiVersion", f"{call.group}/{call.version}".lstrip("/"))
            if info is not None and info.kind:
                body.setdefault("kind", info.kind)
            self._stamp_new(body)
            if key in self.objects:
                self.objects[key].create(body)
            else:
                self.objects[key] = body
            await self._buses[res].put({"type": "ADDED", "object": copy.deepcopy(body)})
            return 201, copy.deepcopy(body)

        key = (res, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            raise api_error(404, "NotFound", f'{call.plural} "{request.name}" not found')
        obj = self.objects[key]
        current = copy.deepcopy(obj.raw)
        current_version = current.get("metadata", {}).get("resourceVersion")

        if call.verb == "delete":
            wanted = (
                ((data or {}).get("preconditions") or {}).get("resourceVersion")
                if isinstance(data, dict)
                else None
            )
            if wanted and wanted != current_version:
                self.conflicts += 1
                raise api_error(
                    409, "Conflict", "Precondition failed: the object has a newer resourceVersion"
                )
            if current.get("metadata", {}).get("finalizers"):
                current["metadata"].setdefault("deletionTimestamp", _now())
                current["metadata"]["resourceVersion"] = self.next_version()
                obj.history.append(kmock.ObjectVersion(current))
                await self._buses[res].put({"type": "MODIFIED", "object": copy.deepcopy(current)})
            else:
                obj.delete()
                await self._buses[res].put({"type": "DELETED", "object": copy.deepcopy(current)})
            return 200, current

        pending = self._interference.get((resource, request.namespace or "", str(request.name))) or []
        if call.verb == "patch" and pending:
            change = pending.pop(0)
            change(current)
            current["metadata"]["resourceVersion"] = current_version = self.next_version()
            obj.history.append(kmock.ObjectVersion(copy.deepcopy(current)))

        ctype = call.content_type.split(";")[0].strip().lower()
        if call.verb == "update":  # PUT: the whole object
            if not isinstance(data, dict):
                raise api_error(400, "BadRequest", "the body of an update must be an object")
            wanted = (data.get("metadata") or {}).get("resourceVersion")
            if wanted and wanted != current_version:
                self.conflicts += 1
                raise _conflict(call)
            new = copy.deepcopy(data)
        elif ctype == "application/json-patch+json":
            if not isinstance(data, list):
                raise api_error(400, "BadRequest", "a JSON patch is a list of operations")
            try:
                new = jsonpatch.apply_patch(current, data)
            except jsonpatch.JsonPatchTestFailed as exc:
                raise api_error(
                    422, "Invalid", f"the server rejected our request due to an error in our request: {exc}"
                ) from exc
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
                raise api_error(422, "Invalid", f"the patch cannot be applied: {exc}") from exc
        else:  # merge, strategic merge (treated as merge) and apply patches
            if not isinstance(data, dict):
                raise api_error(400, "BadRequest", "a merge patch is an object")
            wanted = (data.get("metadata") or {}).get("resourceVersion")
            if wanted and wanted != current_version:
                self.conflicts += 1
                raise _conflict(call)
            new = merge(current, data)

        if self._has_status(resource):
            if call.subresource == "status":
                new = (
                    {**current, "status": new.get("status")}
                    if "status" in new
                    else {k: v for k, v in current.items() if k != "status"}
                )
            else:
                new = {k: v for k, v in new.items() if k != "status"}
                if "status" in current:
                    new["status"] = current["status"]
        meta = new.setdefault("metadata", {})
        for fixed in ("name", "namespace", "uid", "creationTimestamp"):
            if fixed in current.get("metadata", {}):
                meta[fixed] = current["metadata"][fixed]
        meta["generation"] = current.get("metadata", {}).get("generation", 1)
        meta["resourceVersion"] = current_version
        if new == current:
            return 200, current  # a no-op write keeps the version, as the API server does
        if _spec_part(new) != _spec_part(current):
            meta["generation"] = int(meta["generation"] or 0) + 1
        meta["resourceVersion"] = self.next_version()
        obj.history.append(kmock.ObjectVersion(copy.deepcopy(new)))
        await self._buses[res].put({"type": "MODIFIED", "object": copy.deepcopy(new)})
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            obj.delete()
            await self._buses[res].put({"type": "DELETED", "object": copy.deepcopy(new)})
        return 200, new

    async def _serve_fetch(self, request: rendering.Request) -> rendering.Payload:
        res = request.resource
        assert res is not None
        key = (res, request.namespace, request.name)
        async with self._lock:
            if key not in self.objects or self.objects[key].deleted:
                what = f"{res.plural}.{res.group}" if res.group else str(res.plural)
                raise api_error(404, "NotFound", f'{what} "{request.name}" not found')
            return copy.deepcopy(self.objects[key].raw)

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        payload = await super()._serve_list(request)
        res = request.resource
        assert res is not None and isinstance(payload, dict)
        info = self._info(f"{res.group}/{res.version}/{res.plural}".lstrip("/"))
        kind = info.kind if info is not None and info.kind else str(res.plural).capitalize()
        payload["apiVersion"] = f"{res.group}/{res.version}".lstrip("/")
        payload["kind"] = f"{kind}List"
        selector = request.params.get("labelSelector")
        if selector:  # kmock lists everything; the API server filters by the selector
            payload["items"] = [i for i in payload.get("items") or [] if selects(str(selector), i)]
        payload["metadata"] = {"resourceVersion": str(next(self._versions))}
        return payload

    async def _serve_version(self, request: rendering.Request) -> rendering.Payload:
        payload = await super()._serve_version(request)
        if isinstance(payload, dict) and str(payload.get("groupVersion", "")).startswith("/"):
            payload["groupVersion"] = payload["groupVersion"].lstrip("/")  # kubectl cannot map "/v1"
        return payload


def selects(selector: str, obj: JSON) -> bool:
    """Whether an equality-based label selector (`a=b,c!=d,e,!f`) selects the object."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in (t.strip() for t in selector.split(",")):
        if not term:
            continue
        if "!=" in term:
            key, value = (p.strip() for p in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (p.strip() for p in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def _conflict(call: Call) -> kmock.KubernetesError:
    what = f"{call.plural}.{call.group}" if call.group else call.plural
    return api_error(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {what} "{call.name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
    )


# -- a server in a thread, for blocking code ------------------------------------------------------


@dataclass
class RunningKube:
    """A KubeEmulator served on a loopback port from a background thread."""

    emulator: KubeEmulator
    url: str
    loop: asyncio.AbstractEventLoop
    _stop: asyncio.Event | None = field(default=None, repr=False)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the emulator's loop (so it does not race a request) and return its result."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)

    def seed(self, resource: str, namespace: str | None, name: str, obj: JSON) -> JSON:
        return self.call(lambda: self.emulator.seed(resource, namespace, name, obj))  # type: ignore[no-any-return]

    def stored(self, resource: str, namespace: str | None, name: str) -> JSON:
        return self.call(lambda: self.emulator.stored(resource, namespace, name))  # type: ignore[no-any-return]

    def exists(self, resource: str, namespace: str | None, name: str) -> bool:
        return bool(self.call(lambda: self.emulator.exists(resource, namespace, name)))

    def delete(self, resource: str, namespace: str | None, name: str) -> None:
        """Remove an object (as if deleted by someone else)."""
        self.call(self.emulator.objects[_key(resource, namespace, name)].delete)

    def freeze(self, seconds: float | None = None) -> None:
        self.emulator.freeze(seconds)

    def thaw(self) -> None:
        self.emulator.thaw()

    def complete_rollout(self, namespace: str, name: str, *, ready: bool = True) -> JSON:
        """Play the Deployment controller: status says the current generation has rolled out
        (observedGeneration, updated/ready/available replicas = spec.replicas; none ready if not ``ready``)."""

        def change() -> JSON:
            key = ("apps/v1/deployments", namespace, name)
            obj = self.emulator.objects[key]
            current = copy.deepcopy(obj.raw)
            replicas = int(current.get("spec", {}).get("replicas", 1))
            current["status"] = {
                "observedGeneration": current["metadata"].get("generation", 1),
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas if ready else 0,
                "availableReplicas": replicas if ready else 0,
            }
            current["metadata"]["resourceVersion"] = self.emulator.next_version()
            obj.history.append(kmock.ObjectVersion(current))
            return copy.deepcopy(current)

        return self.call(change)  # type: ignore[no-any-return]

    def kubeconfig(
        self, path: Path, *, context: str = "emulator", namespace: str | None = None, token: str = "test"
    ) -> Path:
        """Write a kubeconfig whose (current) context ``context`` points at this emulator."""
        ctx: JSON = {"cluster": "emulator", "user": "tester"}
        if namespace:
            ctx["namespace"] = namespace
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": token}}],
            "contexts": [{"name": context, "context": ctx}],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(config))
        return path


@contextmanager
def serve(**kwargs: Any) -> Iterator[RunningKube]:
    """Start a KubeEmulator on 127.0.0.1 (a free port) in a thread; stop it on exit."""
    loop = asyncio.new_event_loop()
    ready: dict[str, Any] = {}
    started = threading.Event()

    async def main() -> None:
        stop = asyncio.Event()
        try:
            async with KubeEmulator(**kwargs) as emulator, kmock.Server(emulator) as server:
                ready.update(emulator=emulator, url=str(server.url).rstrip("/"), stop=stop)
                started.set()
                await stop.wait()
        except BaseException as exc:  # report start failures to the waiting test
            ready["error"] = exc
            started.set()
            raise

    def run() -> None:
        asyncio.set_event_loop(loop)
        with suppress(BaseException):
            loop.run_until_complete(main())

    thread = threading.Thread(target=run, name="kube-emulator", daemon=True)
    thread.start()
    if not started.wait(20):
        raise TimeoutError("the Kubernetes emulator did not start within 20 s")
    if "error" in ready:
        raise RuntimeError(f"the Kubernetes emulator failed to start: {ready['error']!r}")
    running = RunningKube(ready["emulator"], ready["url"], loop, ready["stop"])
    try:
        yield running
    finally:
        running.emulator.thaw()
        loop.call_soon_threadsafe(ready["stop"].set)
        thread.join(20)
        loop.close()


@pytest.fixture
def kube_api() -> Iterator[RunningKube]:
    """A fresh emulator per test (import this fixture into a conftest.py to use it)."""
    with serve() as running:
        yield running


def dump(obj: Any) -> str:
    """An object as sorted JSON (for readable assertion messages)."""
    return json.dumps(obj, sort_keys=True, indent=1)


SERVER_FIELDS = ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields")


def as_written(obj: JSON) -> JSON:
    """The object without what the API server stamps on it (to compare with what a user wrote)."""
    out = copy.deepcopy(obj)
    meta = out.get("metadata") or {}
    for key in SERVER_FIELDS:
        meta.pop(key, None)
    return out


def field_diff(before: Any, after: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Every leaf that differs between two JSON values: (path, before, after); `...` marks absent."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(set(before) | set(after)):
            out += field_diff(before.get(key, ...), after.get(key, ...), f"{path}.{key}" if path else key)
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        out = []
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            out += field_diff(b, a, f"{path}[{i}]")
        return out
    return [] if before == after else [(path, before, after)]
