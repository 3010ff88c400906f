"""The one place gate talks to the Kubernetes API (the only module that imports `kubernetes`).

- Client construction: an explicit host (tests, kmock), in-cluster service account, or kubeconfig.
- Objects travel as plain JSON dicts, exactly as the API server sends them, for every kind gate
  touches (custom objects, `apps/v1` Deployments, `networking.k8s.io/v1` Ingresses) — no model
  round trip that could drop or rename a field gate does not own.
- Writes are JSON merge patches computed from a read-modify-write (`modify`), carrying the
  `metadata.resourceVersion` that was read: the API server refuses the write with 409 Conflict when
  the object changed meanwhile, and `modify` re-reads and retries, with backoff, a bounded number of
  times. Fields the mutation did not change are not in the patch.
- Errors: gate's own hierarchy (`KubeError` → `KubePermanentError` / `KubeTemporaryError`), the
  transport's exception chained as the cause.

Every call blocks; the operator runs them in threads, never on its event loop.
"""

from __future__ import annotations

import copy
import json
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import urllib3.exceptions
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

JSON = dict[str, Any]
T = TypeVar("T")

MERGE_PATCH = "application/merge-patch+json"
MAX_MESSAGE = 500


class KubeError(RuntimeError):
    """A Kubernetes API call failed. `status` is the HTTP status (0 when no answer came)."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class KubePermanentError(KubeError):
    """Retrying is useless: not found, forbidden, invalid, or no configuration."""


class KubeTemporaryError(KubeError):
    """Retrying later may work: conflict, throttling, server or connection trouble."""

    def __init__(
        self, message: str, *, status: int = 0, reason: str = "", delay: float | None = None
    ) -> None:
        super().__init__(message, status=status, reason=reason)
        self.delay = delay


class KubeNotFoundError(KubePermanentError):
    """The object (or its resource type) does not exist."""


class KubeForbiddenError(KubePermanentError):
    """401/403: gate's identity lacks the RBAC permission (docs/routers.md lists what each router needs)."""


class KubeInvalidError(KubePermanentError):
    """400/422: the API server rejected the object as invalid."""


class KubeAlreadyExistsError(KubePermanentError):
    """409 on create: an object of that name exists already."""


class KubeConflictError(KubeTemporaryError):
    """409 on a write: the object changed since it was read (optimistic concurrency)."""


class KubeUnavailableError(KubeTemporaryError):
    """429, 5xx, a timeout or a refused connection."""


@dataclass(frozen=True)
class Resource:
    """A kind of object in a named API group (not the core group: gate writes none of those)."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


HTTPROUTE = Resource("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
VIRTUALSERVICE = Resource("networking.istio.io", "v1", "virtualservices", "VirtualService")
INGRESS = Resource("networking.k8s.io", "v1", "ingresses", "Ingress")
DEPLOYMENT = Resource("apps", "v1", "deployments", "Deployment")


@dataclass(frozen=True)
class ObjectRef:
    """One namespaced object: its resource, namespace and name."""

    resource: Resource
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.resource.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class Retry:
    """Bounds for retrying conflicts and temporary failures: attempts in all, exponential backoff."""

    attempts: int = 6
    base_delay: float = 0.05
    max_delay: float = 2.0

    def delay(self, attempt: int, hint: float | None = None) -> float:
        """Seconds to wait before attempt number `attempt + 1` (jittered; a server hint wins, capped)."""
        if hint is not None:
            return min(max(hint, 0.0), self.max_delay)
        return float(min(self.base_delay * (2**attempt), self.max_delay) * random.uniform(0.5, 1.0))


def connect(
    *,
    host: str | None = None,
    token: str | None = None,
    verify_ssl: bool = True,
    ca_cert: str | None = None,
    kubeconfig: str | None = None,
    context: str | None = None,
    timeout: float = 10.0,
    retry: Retry | None = None,
) -> KubeClient:
    """A client from, in order: an explicit `host` (tests, emulators), the in-cluster service account
    (when running in a pod), or a kubeconfig file (`$KUBECONFIG` or ~/.kube/config, optional context)."""
    cfg = k8s_client.Configuration()
    try:
        if host is not None:
            cfg.host = host.rstrip("/")
            cfg.verify_ssl = verify_ssl
            if ca_cert:
                cfg.ssl_ca_cert = ca_cert
            if token:
                cfg.api_key = {"BearerToken": token}
                cfg.api_key_prefix = {"BearerToken": "Bearer"}
        elif kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context, client_configuration=cfg
            )
    except (k8s_config.ConfigException, OSError, ValueError) as exc:
        raise KubePermanentError(
            f"no usable Kubernetes configuration: {exc}; set KUBECONFIG, run in a pod with a service "
            "account, or pass an explicit API server URL"
        ) from exc
    return KubeClient(k8s_client.ApiClient(cfg), timeout=timeout, retry=retry or Retry())


class KubeClient:
    """Blocking get/create/delete/patch of namespaced objects as JSON dicts, with bounded retries."""

    def __init__(
        self, api_client: k8s_client.ApiClient, *, timeout: float = 10.0, retry: Retry | None = None
    ) -> None:
        self._api = k8s_client.CustomObjectsApi(api_client)
        self._api_client = api_client
        self.timeout = timeout
        self.retry = retry or Retry()

    def close(self) -> None:
        self._api_client.close()  # type: ignore[no-untyped-call]

    # -- single calls ------------------------------------------------------------------------------

    def get(self, ref: ObjectRef) -> JSON:
        """The object as the API server has it (KubeNotFoundError when it does not exist)."""
        r = ref.resource
        return self._call(
            "read",
            ref,
            lambda: self._api.get_namespaced_custom_object(
                r.group, r.version, ref.namespace, r.plural, ref.name, _request_timeout=self.timeout
            ),
        )

    def create(self, ref: ObjectRef, body: Mapping[str, Any]) -> JSON:
        """Create the object `body` (its metadata.name and namespace are set from `ref`)."""
        r = ref.resource
        obj = copy.deepcopy(dict(body))
        obj["apiVersion"] = r.api_version
        obj["kind"] = r.kind
        meta = obj.setdefault("metadata", {})
        meta["name"], meta["namespace"] = ref.name, ref.namespace
        created = self._call(
            "create",
            ref,
            lambda: self._api.create_namespaced_custom_object(
                r.group, r.version, ref.namespace, r.plural, obj, _request_timeout=self.timeout
            ),
        )
        # The client maps only a 201 answer to a body; a server answering 200 yields nothing.
        return created or self.get(ref)

    def delete(self, ref: ObjectRef, *, resource_version: str | None = None) -> None:
        """Delete the object; with `resource_version`, only if it is still that version (else conflict)."""
        r = ref.resource
        body = k8s_client.V1DeleteOptions(
            preconditions=k8s_client.V1Preconditions(resource_version=resource_version)
            if resource_version
            else None
        )
        self._call(
            "delete",
            ref,
            lambda: self._api.delete_namespaced_custom_object(
                r.group,
                r.version,
                ref.namespace,
                r.plural,
                ref.name,
                body=body,
                _request_timeout=self.timeout,
            ),
        )

    def patch(self, ref: ObjectRef, patch: Mapping[str, Any]) -> JSON:
        """Send one JSON merge patch (RFC 7386). Include metadata.resourceVersion to make it conditional."""
        r = ref.resource
        body = dict(patch)
        return self._call(
            "patch",
            ref,
            lambda: self._api.patch_namespaced_custom_object(
                r.group,
                r.version,
                ref.namespace,
                r.plural,
                ref.name,
                body,
                _request_timeout=self.timeout,
                _content_type=MERGE_PATCH,
            ),
        )

    def patch_status(self, ref: ObjectRef, patch: Mapping[str, Any]) -> JSON:
        """Merge-patch the `status` subresource (e.g. a custom resource's status written by the operator)."""
        r = ref.resource
        body = dict(patch)
        return self._call(
            "patch status of",
            ref,
            lambda: self._api.patch_namespaced_custom_object_status(
                r.group,
                r.version,
                ref.namespace,
                r.plural,
                ref.name,
                body,
                _request_timeout=self.timeout,
                _content_type=MERGE_PATCH,
            ),
        )

    def list(self, resource: Resource, namespace: str, *, label_selector: str | None = None) -> list[JSON]:
        """The objects of a resource in a namespace (optionally by label selector), retried when temporary."""
        where = ObjectRef(resource, namespace, "*")
        answer = self._retrying(
            where,
            lambda: self._call(
                "list",
                where,
                lambda: self._api.list_namespaced_custom_object(
                    resource.group,
                    resource.version,
                    namespace,
                    resource.plural,
                    label_selector=label_selector,
                    _request_timeout=self.timeout,
                ),
            ),
        )
        items = answer.get("items") or []
        return [item for item in items if isinstance(item, dict)]

    # -- retried operations -----------------------------------------------------------------------

    def read(self, ref: ObjectRef) -> JSON:
        """`get`, retrying temporary failures within the retry bounds."""
        return self._retrying(ref, lambda: self.get(ref))

    def modify(self, ref: ObjectRef, mutate: Callable[[JSON], JSON | None]) -> JSON:
        """Read-modify-write with optimistic concurrency.

        `mutate` gets a deep copy of the object as read and returns the object it should become (or
        None: no change). Only the differences go out, as a merge patch carrying the resourceVersion
        that was read; on 409 Conflict the object is read again and `mutate` runs again on the new
        state. Exceptions from `mutate` propagate at once (they are not API failures)."""

        def attempt() -> JSON:
            before = self.get(ref)
            after = mutate(copy.deepcopy(before))
            if after is None:
                return before
            patch = merge_patch(before, after)
            if not patch:
                return before
            version = before.get("metadata", {}).get("resourceVersion")
            if version:
                patch.setdefault("metadata", {})["resourceVersion"] = version
            return self.patch(ref, patch)

        return self._retrying(ref, attempt)

    def _retrying(self, ref: ObjectRef, fn: Callable[[], T]) -> T:
        last: KubeTemporaryError | None = None
        for n in range(self.retry.attempts):
            try:
                return fn()
            except KubeTemporaryError as exc:
                last = exc
                if n + 1 < self.retry.attempts:
                    time.sleep(self.retry.delay(n, exc.delay))
        assert last is not None  # the loop ran at least once and only left by raising or returning
        kind = KubeConflictError if isinstance(last, KubeConflictError) else KubeUnavailableError
        raise kind(
            f"{ref}: gave up after {self.retry.attempts} attempts: {last}",
            status=last.status,
            reason=last.reason,
        ) from last

    def _call(self, verb: str, ref: ObjectRef, fn: Callable[[], object]) -> JSON:
        try:
            result = fn()
        except ApiException as exc:
            raise _translate(verb, ref, exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeUnavailableError(
                f"{ref}: cannot {verb}: the API server did not answer ({exc})"
            ) from exc
        if result is None:
            return {}
        if not isinstance(result, dict):
            raise KubeUnavailableError(f"{ref}: {verb} answered {type(result).__name__}, not an object")
        return result


def _translate(verb: str, ref: ObjectRef, exc: ApiException) -> KubeError:
    status = int(exc.status or 0)
    reason, message = _status_words(exc)
    text = f"{ref}: cannot {verb}: {status} {reason}: {message}".rstrip(": ")
    if status == 404:
        return KubeNotFoundError(text, status=status, reason=reason)
    if status in (401, 403):
        return KubeForbiddenError(text, status=status, reason=reason)
    if status == 409:
        if verb == "create":
            return KubeAlreadyExistsError(text, status=status, reason=reason)
        return KubeConflictError(text, status=status, reason=reason)
    if status in (400, 422):
        return KubeInvalidError(text, status=status, reason=reason)
    if status == 429 or status >= 500:
        return KubeUnavailableError(text, status=status, reason=reason, delay=_retry_after(exc))
    return KubePermanentError(text, status=status, reason=reason)


def _status_words(exc: ApiException) -> tuple[str, str]:
    """Reason and message from the API server's Status body, shortened (never the whole body)."""
    reason = str(exc.reason or "")
    message = ""
    if exc.body:
        try:
            body = json.loads(exc.body)
        except (TypeError, ValueError):
            body = None
        if isinstance(body, dict):
            reason = str(body.get("reason") or reason)
            message = str(body.get("message") or "")
    return reason[:100], message[:MAX_MESSAGE]


def _retry_after(exc: ApiException) -> float | None:
    headers = exc.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def merge_patch(before: Mapping[str, Any], after: Mapping[str, Any]) -> JSON:
    """The RFC 7386 merge patch that turns `before` into `after` (pure).

    Keys gone from `after` become null; nested objects recurse; any other changed value (lists
    included — merge patch replaces lists whole) is sent as it is in `after`. Unchanged keys are not
    in the patch, so fields gate did not touch are never written."""
    patch: JSON = {}
    for key in before:
        if key not in after:
            patch[key] = None
    for key, value in after.items():
        if key not in before:
            patch[key] = copy.deepcopy(value)
        elif isinstance(value, Mapping) and isinstance(before[key], Mapping):
            sub = merge_patch(before[key], value)
            if sub:
                patch[key] = sub
        elif not same_json(value, before[key]):
            patch[key] = copy.deepcopy(value)
    return patch


def same_json(a: object, b: object) -> bool:
    """Equal as JSON (so `1` and `true`, or `1` and `1.0`, are different values)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
