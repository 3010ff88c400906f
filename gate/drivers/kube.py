"""The one place gate talks to the Kubernetes API (the only module that imports `kubernetes`).

- Finding a cluster (`KubeOptions`, `connect`), in this order: an explicit API server URL (tests,
  emulators); `--kubeconfig` (optionally `--context`); `$KUBECONFIG`; `~/.kube/config`; the pod's
  service account (in-cluster). Nothing found is a `KubeConfigError` naming all four. The default
  namespace is `--namespace`, else the kubeconfig context's, else the pod's, else none (the contract
  or `default` decides: see `gate.drivers.routers.factory`).
- Objects travel as plain JSON dicts, exactly as the API server sends them, for every kind gate
  touches (custom objects, Deployments, Ingresses, Services, ConfigMaps, Jobs, access reviews) — no
  model round trip that could drop or rename a field gate does not own. A pod's log is streamed line
  by line (`follow_log`).
- Writes are JSON merge patches computed from a read-modify-write (`modify`), carrying the
  `metadata.resourceVersion` that was read: the API server refuses the write with 409 Conflict when
  the object changed meanwhile. Fields the mutation did not change are not in the patch; when nothing
  changes, nothing is sent.
- Errors are gate's: `KubePermanentError` (a `gate.errors.PermanentError`: 400/401/403/404/422, no
  configuration) and `KubeTemporaryError` (a `gate.errors.TemporaryError`: 409, 429, 5xx, timeouts,
  refused connections), each naming the verb, the object and what to do; the transport's exception
  is chained as the cause. This module never retries: `gate.errors.retry_call` (applied by the
  caller) is the one retry policy. Requests are paced by a client-side rate limit (qps, burst).

Every call blocks; the operator runs them in threads, never on its event loop.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import urllib3.exceptions
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from gate.errors import GateError, PermanentError, TemporaryError

JSON = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
MAX_MESSAGE = 300
MAX_BODY = 8 * 1024 * 1024  # an answer larger than this is refused, not parsed
RBAC_DOC = "docs/kubernetes.md#rbac"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeError(GateError):
    """A Kubernetes API call failed. `status` is the HTTP status (0 when no answer came)."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "", hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.reason = reason


class KubePermanentError(KubeError, PermanentError):
    """Retrying is useless: not found, forbidden, invalid, or no configuration."""


class KubeTemporaryError(KubeError, TemporaryError):
    """Retrying later may work: conflict, throttling, server or connection trouble."""

    def __init__(
        self, message: str, *, status: int = 0, reason: str = "", hint: str = "", delay: float | None = None
    ) -> None:
        super().__init__(message, status=status, reason=reason, hint=hint)
        self.delay = delay  # the server's Retry-After, when it sent one (honoured by retry_call)
        if delay is not None:
            self.retry_after = max(0.0, delay)


class KubeConfigError(KubePermanentError):
    """No usable way to reach a cluster (no kubeconfig, no service account, a bad context)."""


class KubeNotFoundError(KubePermanentError):
    """The object (or its resource type) does not exist."""


class KubeForbiddenError(KubePermanentError):
    """401/403: gate's identity lacks the RBAC permission (docs/kubernetes.md lists what it needs)."""


class KubeInvalidError(KubePermanentError):
    """400/422: the API server rejected the request or the object as invalid."""


class KubeAlreadyExistsError(KubePermanentError):
    """409 on create: an object of that name exists already."""


class KubeConflictError(KubeTemporaryError):
    """409 on a write: the object changed since it was read (optimistic concurrency)."""


class KubeUnavailableError(KubeTemporaryError):
    """429, 5xx, a timeout or a refused connection."""


@dataclass(frozen=True)
class Resource:
    """A kind of object: its API group ("" for the core group), version, plural and kind."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def rbac(self) -> str:
        """How RBAC rules name it: `httproutes.gateway.networking.k8s.io`, `services`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
        if subresource:
            base += f"/{subresource}"
        return base


HTTPROUTE = Resource("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
VIRTUALSERVICE = Resource("networking.istio.io", "v1", "virtualservices", "VirtualService")
INGRESS = Resource("networking.k8s.io", "v1", "ingresses", "Ingress")
DEPLOYMENT = Resource("apps", "v1", "deployments", "Deployment")
SERVICE = Resource("", "v1", "services", "Service")
CONFIGMAP = Resource("", "v1", "configmaps", "ConfigMap")
POD = Resource("", "v1", "pods", "Pod")
JOB = Resource("batch", "v1", "jobs", "Job")
ACCESS_REVIEW = Resource(
    "authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", namespaced=False
)


@dataclass(frozen=True)
class ObjectRef:
    """One namespaced object: its resource, namespace and name."""

    resource: Resource
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.resource.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class KubeOptions:
    """How to reach the cluster: the `--kubeconfig`, `--context`, `--namespace` flags (and settings),
    a client-side rate limit, and a per-request timeout. `host`/`token` name an API server directly."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    qps: float = 20.0
    burst: int = 40
    timeout: float = 10.0
    host: str | None = None
    token: str | None = None
    verify_ssl: bool = True
    ca_cert: str | None = None


class RateLimit:
    """A token bucket: at most `burst` requests at once, refilled at `qps` per second (0: unlimited)."""

    def __init__(self, qps: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.qps = max(0.0, qps)
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._clock = clock
        self._at = clock()
        self._lock = threading.Lock()

    def wait_time(self) -> float:
        """Take a token; the seconds to wait before the request may go (0 when one was there)."""
        if self.qps <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.qps)
            self._at = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.qps


def _context_namespace(kubeconfig: str | None, context: str | None) -> str | None:
    try:
        contexts, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except (k8s_config.ConfigException, OSError, ValueError, TypeError):
        return None
    chosen = next((c for c in contexts or [] if c.get("name") == context), None) if context else active
    ns = ((chosen or {}).get("context") or {}).get("namespace")
    return str(ns) if ns else None


def _pod_namespace() -> str | None:
    try:
        return (SERVICE_ACCOUNT_DIR / "namespace").read_text().strip() or None
    except OSError:
        return None


def _default_kubeconfig() -> str | None:
    env = os.environ.get("KUBECONFIG")
    if env:
        return env
    home = Path.home() / ".kube" / "config"
    return str(home) if home.exists() else None


def connect(options: KubeOptions | None = None, **kwargs: Any) -> KubeClient:
    """A client for the cluster `options` name (see the module's docstring for the order searched).
    Keyword arguments are KubeOptions fields (`connect(host=url)` is the same as
    `connect(KubeOptions(host=url))`)."""
    opts = options or KubeOptions()
    if kwargs:
        opts = KubeOptions(**{**opts.__dict__, **kwargs})
    cfg = k8s_client.Configuration()
    namespace = opts.namespace
    try:
        if opts.host is not None:
            cfg.host = opts.host.rstrip("/")
            cfg.verify_ssl = opts.verify_ssl
            if opts.ca_cert:
                cfg.ssl_ca_cert = opts.ca_cert
            if opts.token:
                cfg.api_key = {"BearerToken": opts.token}
                cfg.api_key_prefix = {"BearerToken": "Bearer"}
        else:
            config_file = opts.kubeconfig or _default_kubeconfig()
            if config_file is None and opts.context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
                k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
                namespace = namespace or _pod_namespace()
            elif config_file is None:
                raise KubeConfigError(
                    "no Kubernetes configuration found: no --kubeconfig, no KUBECONFIG, no ~/.kube/config, "
                    "and not running in a pod (in-cluster service account)",
                    hint="pass --kubeconfig FILE (and --context NAME), set KUBECONFIG, or run gate in a pod "
                    "with a service account (docs/kubernetes.md)",
                )
            else:
                if not Path(config_file).exists():
                    which = "--kubeconfig" if opts.kubeconfig else "KUBECONFIG"
                    raise KubeConfigError(
                        f"kubeconfig {config_file} ({which}) does not exist",
                        hint="pass --kubeconfig with an existing file, or fix KUBECONFIG",
                    )
                k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=config_file, context=opts.context, client_configuration=cfg
                )
                namespace = namespace or _context_namespace(config_file, opts.context)
    except KubeConfigError:
        raise
    except (k8s_config.ConfigException, OSError, ValueError, TypeError, KeyError) as exc:
        where = f"context {opts.context!r} of " if opts.context else ""
        raise KubeConfigError(
            f"cannot use the Kubernetes configuration ({where}{opts.kubeconfig or 'the default kubeconfig'}"
            f"): {str(exc)[:MAX_MESSAGE]}",
            hint="check --kubeconfig and --context (kubectl config get-contexts lists the contexts), "
            "or run gate in a pod with a service account",
        ) from exc
    # No retries inside the transport either: one attempt per call, the caller's policy retries.
    cfg.retries = 0
    return KubeClient(
        k8s_client.ApiClient(cfg),
        timeout=opts.timeout,
        namespace=namespace,
        rate=RateLimit(opts.qps, opts.burst),
    )


class KubeClient:
    """Blocking get/list/create/delete/patch of objects as JSON dicts; one attempt per call."""

    def __init__(
        self,
        api_client: k8s_client.ApiClient,
        *,
        timeout: float = 10.0,
        namespace: str | None = None,
        rate: RateLimit | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._api_client = api_client
        self.timeout = timeout
        self.namespace = namespace  # the default namespace from --namespace / the context / the pod
        self.rate = rate or RateLimit(0, 1)
        self._sleep = sleep

    @property
    def host(self) -> str:
        return str(self._api_client.configuration.host)

    def close(self) -> None:
        self._api_client.close()  # type: ignore[no-untyped-call]

    # -- single calls ------------------------------------------------------------------------------

    def get(self, ref: ObjectRef) -> JSON:
        """The object as the API server has it (KubeNotFoundError when it does not exist)."""
        return self._send("get", ref, "GET", ref.resource.path(ref.namespace, ref.name))

    def read(self, ref: ObjectRef) -> JSON:
        """The same as `get` (the name the routers used when this client retried by itself)."""
        return self.get(ref)

    def create(self, ref: ObjectRef, body: Mapping[str, Any]) -> JSON:
        """Create the object `body` (its metadata.name and namespace are set from `ref`)."""
        r = ref.resource
        obj = copy.deepcopy(dict(body))
        obj["apiVersion"] = r.api_version
        obj["kind"] = r.kind
        meta = obj.setdefault("metadata", {})
        meta["name"], meta["namespace"] = ref.name, ref.namespace
        created = self._send("create", ref, "POST", r.path(ref.namespace), body=obj)
        return created or self.get(ref)

    def delete(
        self, ref: ObjectRef, *, resource_version: str | None = None, propagation: str | None = None
    ) -> None:
        """Delete the object; with `resource_version`, only if it is still that version (else conflict).
        `propagation` is the DeleteOptions' propagationPolicy (`Background`: a Job's pods go too)."""
        body: JSON = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if resource_version:
            body["preconditions"] = {"resourceVersion": resource_version}
        if propagation:
            body["propagationPolicy"] = propagation
        self._send("delete", ref, "DELETE", ref.resource.path(ref.namespace, ref.name), body=body)

    def patch(self, ref: ObjectRef, patch: Mapping[str, Any]) -> JSON:
        """Send one JSON merge patch (RFC 7386). Include metadata.resourceVersion to make it conditional."""
        path = ref.resource.path(ref.namespace, ref.name)
        return self._send("patch", ref, "PATCH", path, body=dict(patch), content_type=MERGE_PATCH)

    def patch_status(self, ref: ObjectRef, patch: Mapping[str, Any]) -> JSON:
        """Merge-patch the `status` subresource (e.g. a custom resource's status written by the operator)."""
        path = ref.resource.path(ref.namespace, ref.name, "status")
        return self._send(
            "patch", ref, "PATCH", path, body=dict(patch), content_type=MERGE_PATCH, sub="status"
        )

    def list(self, resource: Resource, namespace: str, *, label_selector: str | None = None) -> list[JSON]:
        """The objects of a resource in a namespace (optionally by label selector)."""
        where = ObjectRef(resource, namespace, "*")
        query = {"labelSelector": label_selector} if label_selector else None
        answer = self._send("list", where, "GET", resource.path(namespace), query=query)
        items = answer.get("items") or []
        return [item for item in items if isinstance(item, dict)]

    def follow_log(
        self,
        ref: ObjectRef,
        consume: Callable[[Iterator[bytes]], None],
        *,
        container: str | None = None,
        idle_timeout: float = 300.0,
    ) -> None:
        """Stream a pod's log (`GET .../pods/NAME/log?follow=true`): `consume` gets its lines as they
        come and returns when it wants no more (or when the stream ends: the container stopped).

        `idle_timeout` bounds the wait for the next bytes of a quiet log (then KubeUnavailableError:
        the caller may open it again); `ref.resource` is POD."""
        query = {"follow": "true"}
        if container:
            query["container"] = container
        path = ref.resource.path(ref.namespace, ref.name, "log")
        self._send("get", ref, "GET", path, query=query, sub="log", consume=consume, idle=idle_timeout)

    def modify(self, ref: ObjectRef, mutate: Callable[[JSON], JSON | None]) -> JSON:
        """Read-modify-write with optimistic concurrency, once.

        `mutate` gets a deep copy of the object as read and returns the object it should become (or
        None: no change). Only the differences go out, as a merge patch carrying the resourceVersion
        that was read; when there are none, nothing is written. A 409 Conflict (someone wrote in
        between) is a KubeConflictError: temporary, the caller's retry reads again and re-runs
        `mutate` on the new state. Exceptions from `mutate` propagate (they are not API failures)."""
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

    def allowed(
        self,
        verb: str,
        resource: Resource,
        namespace: str | None,
        *,
        name: str | None = None,
        subresource: str | None = None,
    ) -> tuple[bool, str]:
        """Whether gate's identity may `verb` the resource (a SelfSubjectAccessReview), and the reason."""
        attributes: JSON = {"verb": verb, "group": resource.group, "resource": resource.plural}
        if namespace is not None:
            attributes["namespace"] = namespace
        if name is not None:
            attributes["name"] = name
        if subresource:
            attributes["subresource"] = subresource
        body = {
            "apiVersion": ACCESS_REVIEW.api_version,
            "kind": ACCESS_REVIEW.kind,
            "spec": {"resourceAttributes": attributes},
        }
        where = ObjectRef(ACCESS_REVIEW, namespace or "", f"{verb} {resource.rbac}")
        answer = self._send("create", where, "POST", ACCESS_REVIEW.path(None), body=body)
        status = answer.get("status") or {}
        return bool(status.get("allowed")), str(status.get("reason") or status.get("evaluationError") or "")[
            :MAX_MESSAGE
        ]

    # -- the transport ----------------------------------------------------------------------------

    def _send(
        self,
        verb: str,
        ref: ObjectRef,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str | None = None,
        query: Mapping[str, str] | None = None,
        sub: str | None = None,
        consume: Callable[[Iterator[bytes]], None] | None = None,
        idle: float | None = None,
    ) -> JSON:
        """One request. With `consume`, a 2xx answer's body goes to it line by line as it streams
        (and {} is returned); `idle` is then the longest wait for the next bytes."""
        wait = self.rate.wait_time()
        if wait > 0:
            self._sleep(wait)
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        url = path + (f"?{urlencode(query)}" if query else "")
        try:
            request = self._api_client.param_serialize(
                method=method,
                resource_path=url,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            timeout: float | tuple[float, float] = self.timeout if idle is None else (self.timeout, idle)
            response = self._api_client.call_api(*request, _request_timeout=timeout)
            if consume is not None and 200 <= response.status <= 299:
                try:
                    consume(_stream_lines(response.response))
                finally:
                    # Closed, not returned to the pool: a stream left early has unread bytes.
                    with contextlib.suppress(Exception):
                        response.response.close()
                return {}
            data = response.read()  # type: ignore[no-untyped-call]
        except ApiException as exc:
            raise _translate(
                verb, ref, status=exc.status, reason=exc.reason, body=exc.body, headers=exc.headers, sub=sub
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # With retries off, urllib3 wraps the first failure in MaxRetryError: say what it was.
            cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason else exc
            if isinstance(cause, (urllib3.exceptions.TimeoutError, TimeoutError)):
                raise KubeUnavailableError(
                    f"cannot {verb} {ref}: the API server at {self.host} "
                    f"did not answer within {self.timeout:g}s",
                    hint="check the API server's health and gate's network path to it; gate retries",
                ) from exc
            raise KubeUnavailableError(
                f"cannot {verb} {ref}: the API server at {self.host} did not answer "
                f"({type(cause).__name__}: {str(cause)[:MAX_MESSAGE]})",
                hint="check the API server address (--kubeconfig/--context) and the network; gate retries",
            ) from exc
        if not 200 <= response.status <= 299:
            raise _translate(
                verb,
                ref,
                status=response.status,
                reason=response.reason,
                body=data,
                headers=response.headers,
                sub=sub,
            )
        if not data:
            return {}
        if len(data) > MAX_BODY:
            raise KubeUnavailableError(f"cannot {verb} {ref}: the answer is larger than {MAX_BODY} bytes")
        try:
            result = json.loads(data)
        except ValueError as exc:
            raise KubeUnavailableError(f"cannot {verb} {ref}: the answer is not JSON") from exc
        if not isinstance(result, dict):
            raise KubeUnavailableError(
                f"cannot {verb} {ref}: the answer is {type(result).__name__}, not an object"
            )
        return result


def _stream_lines(raw: Any) -> Iterator[bytes]:
    """The complete lines of a streamed answer (urllib3's response), as they arrive. Bytes after the
    last newline are not a line: a stream cut mid-line would otherwise hand over half a record."""
    pending = b""
    for chunk in raw.stream(64 * 1024, decode_content=True):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from lines


def _hint(verb: str, ref: ObjectRef, status: int, sub: str | None) -> str:
    r = ref.resource
    if status in (401, 403):
        what = f"{r.plural}/{sub}" if sub else r.plural
        group = f'apiGroups: ["{r.group}"]'
        return (
            f"grant gate's identity `{verb}` on {what} ({group}) in namespace {ref.namespace} "
            f"— the Role in {RBAC_DOC} lists every verb gate needs"
        )
    if status == 404:
        return (
            f"create {r.kind} {ref.namespace}/{ref.name}, or fix its name/namespace in the contract; "
            f"if the {r.kind} kind itself is unknown, install its CRD ({r.rbac})"
        )
    if status in (400, 422):
        return f"the API server refused the {r.kind} as written; fix it (or the contract) as the message says"
    if status == 409:
        return "someone else changed it at the same time; gate reads it again and retries"
    if status == 429:
        return "the API server is throttling gate; gate backs off (lower --kube-qps if it persists)"
    return "the API server is in trouble; gate retries within its budget"


def _translate(
    verb: str, ref: ObjectRef, *, status: int | None, reason: Any, body: Any, headers: Any, sub: str | None
) -> KubeError:
    code = int(status or 0)
    words, message = _status_words(reason, body)
    text = f"cannot {verb} {ref}: {code} {words}" + (f": {message}" if message else "")
    hint = _hint(verb, ref, code, sub)
    if code == 404:
        return KubeNotFoundError(text, status=code, reason=words, hint=hint)
    if code in (401, 403):
        return KubeForbiddenError(text, status=code, reason=words, hint=hint)
    if code == 409:
        if verb == "create" and words == "AlreadyExists":
            return KubeAlreadyExistsError(text, status=code, reason=words, hint="it exists already")
        return KubeConflictError(text, status=code, reason=words, hint=hint)
    if code in (400, 422):
        return KubeInvalidError(text, status=code, reason=words, hint=hint)
    if code in (408, 425, 429) or code >= 500:
        return KubeUnavailableError(text, status=code, reason=words, hint=hint, delay=_retry_after(headers))
    return KubePermanentError(text, status=code, reason=words, hint=hint)


def _status_words(reason: Any, body: Any) -> tuple[str, str]:
    """Reason and message from the API server's Status body, shortened (never the whole body)."""
    words = str(reason or "")
    message = ""
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body[:65536]).decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            parsed = json.loads(body[:65536])
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            words = str(parsed.get("reason") or words)
            message = str(parsed.get("message") or "")
    message = " ".join(message.split())
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    return words[:100], message


def _retry_after(headers: Any) -> float | None:
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
