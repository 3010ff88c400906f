"""The performance contract: a Kubernetes-style document (apiVersion, kind, metadata, spec).

The same file is a custom resource in a cluster and a file in CI. Values are stored in base units
(seconds, fractions, bytes, per second); YAML keys are camelCase, Python attributes snake_case.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from gate.contract import promql
from gate.contract.base import SOURCES, TRACKS, Bool, Int, Model, Source, Track
from gate.contract.errors import short
from gate.contract.sli import NAME_RE as SLI_NAME_RE
from gate.contract.sli import SliTemplate
from gate.contract.steps import Step
from gate.contract.units import Duration, Fraction, Quantile, Quantity, Rate

API_VERSION = "perfgate.dev/v1alpha1"
KIND = "PerformanceContract"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_HEADER_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_URL_RE = re.compile(r"^https?://[^\s/?#]+(?:[/?#]\S*)?$")
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_VERBS = ("get", "post", "put", "patch", "delete", "head", "options")


def _check_url(value: str) -> str:
    if not _URL_RE.match(value):
        raise ValueError(f"expected an http:// or https:// URL, got {short(value)}")
    return value


HttpUrl = Annotated[
    str,
    AfterValidator(_check_url),
    WithJsonSchema(
        {"type": "string", "pattern": _URL_RE.pattern, "description": "An http:// or https:// URL."}
    ),
]
"""An http(s) URL, kept as written."""


def _check_name(value: str, what: str) -> str:
    if not _DNS_LABEL.match(value) or len(value) > 63:
        raise ValueError(f"{what} is lowercase letters, digits and dashes (at most 63), got {short(value)}")
    return value


# --- metadata -------------------------------------------------------------------------------------


class Metadata(Model):
    """Kubernetes object metadata; fields the API server adds are accepted and ignored."""

    name: str = Field(description="The contract's name (lowercase, digits, dashes).")
    namespace: str | None = Field(default=None, description="Kubernetes namespace; default for references.")
    labels: dict[str, str] = Field(default_factory=dict, description="Kubernetes labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Kubernetes annotations.")
    uid: str | None = Field(default=None, description="Set by the API server.")
    resource_version: str | None = Field(default=None, description="Set by the API server.")
    generation: Int | None = Field(default=None, description="Set by the API server.")
    creation_timestamp: str | None = Field(default=None, description="Set by the API server.")
    deletion_timestamp: str | None = Field(default=None, description="Set by the API server.")
    deletion_grace_period_seconds: Int | None = Field(default=None, description="Set by the API server.")
    generate_name: str | None = Field(default=None, description="Kubernetes name prefix.")
    finalizers: list[str] = Field(default_factory=list, description="Kubernetes finalizers.")
    owner_references: list[dict[str, Any]] = Field(default_factory=list, description="Kubernetes owners.")
    managed_fields: list[dict[str, Any]] = Field(default_factory=list, description="Set by the API server.")
    self_link: str | None = Field(default=None, description="Set by the API server (old versions).")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, "metadata.name")


# --- target, router, prometheus, traffic ------------------------------------------------------------


class Endpoint(Model):
    """How to reach one track: a URL (CI, local runs) and/or its Kubernetes Service and Deployment."""

    url: HttpUrl | None = Field(default=None, description="Base URL, e.g. http://127.0.0.1:8081.")
    deployment: str | None = Field(default=None, description="Kubernetes Deployment of this track.")
    service: str | None = Field(default=None, description="Kubernetes Service of this track.")

    @model_validator(mode="after")
    def _something(self) -> Endpoint:
        if not (self.url or self.deployment or self.service):
            raise ValueError("say how to reach this track: url, deployment or service")
        return self


class Target(Model):
    """The two versions of the service."""

    stable: Endpoint = Field(description="What users get today.")
    canary: Endpoint = Field(description="The candidate.")


class NginxRouter(Model):
    """An nginx that gate runs itself, splitting by weight and mirroring (outside Kubernetes, local runs)."""

    type: Literal["nginx"]
    host: str = Field(default="127.0.0.1", description="Address nginx listens on.")
    port: Int | None = Field(
        default=None, ge=1, le=65535, description="Port nginx listens on; empty: a free one."
    )


class GatewayApiRouter(Model):
    """A Gateway API HTTPRoute whose backendRefs gate weights between the stable and canary Services."""

    type: Literal["gateway-api"]
    http_route: str = Field(description="Name of the HTTPRoute.")
    namespace: str | None = Field(default=None, description="Namespace; default metadata.namespace.")


class IstioRouter(Model):
    """An Istio VirtualService whose route weights gate sets (mirroring with `mirrorPercentage`)."""

    type: Literal["istio"]
    virtual_service: str = Field(description="Name of the VirtualService.")
    namespace: str | None = Field(default=None, description="Namespace; default metadata.namespace.")
    destination_rule: str | None = Field(
        default=None,
        description="DestinationRule with `stable`/`canary` subsets; empty: route to the Services.",
    )


class IngressNginxRouter(Model):
    """NGINX Ingress canary annotations on a second Ingress that gate manages."""

    type: Literal["ingress-nginx"]
    ingress: str = Field(description="Name of the stable Ingress; gate writes `<ingress>-canary`.")
    namespace: str | None = Field(default=None, description="Namespace; default metadata.namespace.")


class DeploymentRouter(Model):
    """Weight by replica ratio between the stable and canary Deployments behind one Service."""

    type: Literal["deployment"]
    replicas: Int = Field(default=10, ge=1, le=1000, description="Total replicas split between the tracks.")
    namespace: str | None = Field(default=None, description="Namespace; default metadata.namespace.")


Router = Annotated[
    NginxRouter | GatewayApiRouter | IstioRouter | IngressNginxRouter | DeploymentRouter,
    Field(discriminator="type"),
]
"""What moves traffic, chosen by `type`."""


class SecretKeyRef(Model):
    """A key of a Kubernetes Secret in the contract's namespace (resolved by the operator)."""

    name: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")] = (
        Field(description="The Secret's name.")
    )
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")] = Field(
        default="value", description="The key in the Secret's data."
    )


class Credential(Model):
    """Where a credential comes from — never the credential itself: a file (relative to the contract),
    an environment variable, or, in a cluster, a Kubernetes Secret the operator reads."""

    file: Annotated[str, Field(min_length=1, max_length=4096)] | None = Field(
        default=None, description="A file holding the credential (one trailing newline is ignored)."
    )
    env: Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = (
        Field(default=None, description="An environment variable holding the credential.")
    )
    secret: SecretKeyRef | None = Field(
        default=None, description="A Kubernetes Secret key (resolved by the operator only)."
    )

    @model_validator(mode="after")
    def _one(self) -> Credential:
        given = [k for k in ("file", "env", "secret") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of file, env or secret")
        return self


class BasicAuth(Model):
    """HTTP basic authentication."""

    username: Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^:\r\n]+$")] = Field(
        description="The user name (not a secret; no colon)."
    )
    password: Credential = Field(description="Where the password comes from.")


class PrometheusAuth(Model):
    """How gate authenticates to Prometheus: a bearer token or basic auth (one of them)."""

    bearer: Credential | None = Field(default=None, description="Where the bearer token comes from.")
    basic: BasicAuth | None = Field(default=None, description="User name and where the password comes from.")

    @model_validator(mode="after")
    def _one(self) -> PrometheusAuth:
        if (self.bearer is None) == (self.basic is None):
            raise ValueError("give exactly one of bearer or basic")
        return self


class PrometheusTls(Model):
    """How the Prometheus server's certificate is checked."""

    ca_file: Annotated[str, Field(min_length=1, max_length=4096)] | None = Field(
        default=None,
        description="PEM file of the CA that signed the server's certificate (relative to the contract).",
    )
    insecure_skip_verify: Bool = Field(
        default=False, description="Do not verify the server's certificate (test setups only)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> PrometheusTls:
        if self.ca_file is not None and self.insecure_skip_verify:
            raise ValueError("caFile and insecureSkipVerify contradict each other; keep one")
        return self


_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie")
HeaderValue = Annotated[str, Field(max_length=4096, pattern=r"^[^\r\n\x00]*$")]


class Prometheus(Model):
    """Where the SLIs are read, and how gate authenticates there."""

    url: HttpUrl | None = Field(
        default=None, description="Prometheus base URL, e.g. http://prometheus.monitoring:9090."
    )
    scrape_interval: Duration = Field(default=15.0, gt=0, description="How often targets are scraped.")
    auth: PrometheusAuth | None = Field(
        default=None, description="Bearer token or basic auth, read from a file, a variable or a Secret."
    )
    headers: dict[str, HeaderValue] = Field(
        default_factory=dict,
        max_length=32,
        description="Extra request headers (e.g. X-Scope-OrgID for Thanos or Mimir); not for credentials.",
    )
    tls: PrometheusTls | None = Field(default=None, description="CA file or skipping verification.")

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _HEADER_RE.match(name) or len(name) > 256:
                raise ValueError(f"{short(name)} is not an HTTP header name")
            if name.lower() in _CREDENTIAL_HEADERS:
                raise ValueError(
                    f"header {name} would put a credential in the contract; use auth.bearer or auth.basic"
                )
        return value

    @model_validator(mode="after")
    def _credentials_once(self) -> Prometheus:
        if self.auth is not None and self.url is not None and "@" in self.url.split("/", 3)[2]:
            raise ValueError("the URL carries user:password and auth is set too; drop the URL's credentials")
        return self


def _default_sources() -> dict[Source, dict[str, str]]:
    return {s: {"traffic_source": s} for s in SOURCES}


def _default_tracks() -> dict[Track, dict[str, str]]:
    return {"stable": {"track": "stable"}, "canary": {"track": "canary"}}


LabelMatchers = dict[str, Annotated[str, Field(max_length=1024)]]


class ProcessLabels(Model):
    """How runtime series of the pods (go_*, process_*) tell the tracks apart, when not like requests."""

    tracks: dict[Track, LabelMatchers] | None = Field(
        default=None, description="Label matchers per track for process SLIs; default: traffic.tracks."
    )
    selector: LabelMatchers | None = Field(
        default=None, description="Matchers added to process SLI queries; default: traffic.selector."
    )

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key in value or {}:
            promql.check_label_name(key)
        return value

    @field_validator("tracks")
    @classmethod
    def _tracks(cls, value: dict[Track, dict[str, str]] | None) -> dict[Track, dict[str, str]] | None:
        if value is not None:
            _check_distinct("track", {t: value.get(t, {}) for t in ("stable", "canary")})
        return value


def _check_distinct(what: str, groups: Mapping[Any, Mapping[str, str]]) -> None:
    """Each group of matchers must exclude the others, or a series could belong to two of them."""
    for matchers in groups.values():
        for key in matchers:
            promql.check_label_name(key)
    names = list(groups)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ma, mb = groups[a], groups[b]
            if not any(k in mb and mb[k] != v for k, v in ma.items()):
                label = "traffic_source" if what == "source" else "track"
                raise ValueError(
                    f"{what}s {a} and {b} could select the same series; give both a label "
                    f"with different values (e.g. {a}: {{{label}: {a}}})"
                )


class Traffic(Model):
    """How Prometheus tells the tracks and the sources apart: label matchers for each."""

    header: str = Field(
        default="X-Traffic-Source",
        description="Header gate's own load sets to `synthetic` (and mirrored requests carry as `shadow`).",
    )
    unobserved: list[Source] = Field(
        default_factory=list,
        description="Sources Prometheus cannot tell apart here (e.g. behind ingress-nginx); their matchers "
        "are ignored and only gate's own load measures them.",
    )
    sources: dict[Source, LabelMatchers] = Field(
        default_factory=_default_sources,
        description="Label matchers per source (synthetic, shadow, production); an empty value matches "
        "an absent label. Default: traffic_source=<source>.",
    )
    tracks: dict[Track, LabelMatchers] = Field(
        default_factory=_default_tracks,
        description="Label matchers per track (stable, canary). Default: track=<track>.",
    )
    selector: LabelMatchers = Field(
        default_factory=dict, description="Matchers added to every query, e.g. {job: checkout}."
    )
    process: ProcessLabels = Field(
        default_factory=ProcessLabels,
        description="Track matchers and selector for process-scoped SLIs (runtime metrics of the pods).",
    )
    route_label: str = Field(
        default="route", description="Label holding the route template (OpenAPI objectives)."
    )
    method_label: str = Field(
        default="method", description="Label holding the HTTP method (OpenAPI objectives)."
    )

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        if not _HEADER_RE.match(value) or len(value) > 128:
            raise ValueError(f"not an HTTP header name: {short(value)}")
        return value

    @field_validator("sources")
    @classmethod
    def _sources(
        cls, value: dict[Source, dict[str, str]], info: ValidationInfo
    ) -> dict[Source, dict[str, str]]:
        unobserved = info.data.get("unobserved") or []
        filled = {s: value.get(s, _default_sources()[s]) for s in SOURCES}
        _check_distinct("source", {s: m for s, m in filled.items() if s not in unobserved})
        return filled

    @field_validator("tracks")
    @classmethod
    def _tracks(cls, value: dict[Track, dict[str, str]]) -> dict[Track, dict[str, str]]:
        filled: dict[Track, dict[str, str]] = {t: value.get(t, _default_tracks()[t]) for t in TRACKS}
        _check_distinct("track", filled)
        return filled

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            promql.check_label_name(key)
        return value

    @field_validator("route_label", "method_label")
    @classmethod
    def _label(cls, value: str) -> str:
        return promql.check_label_name(value)

    def tracks_for(self, scope: str) -> dict[Track, dict[str, str]]:
        """Track matchers for a template scope (`traffic` or `process`)."""
        if scope == "process" and self.process.tracks is not None:
            return {t: dict(self.process.tracks.get(t, {})) for t in ("stable", "canary")}
        return {t: dict(self.tracks[t]) for t in ("stable", "canary")}

    def selector_for(self, scope: str) -> dict[str, str]:
        """Common matchers for a template scope (`traffic` or `process`)."""
        if scope == "process" and self.process.selector is not None:
            return dict(self.process.selector)
        return dict(self.selector)


# --- load ----------------------------------------------------------------------------------------


def _task_json_schema(schema: dict[str, Any]) -> None:
    props = schema.setdefault("properties", {})
    for verb in _VERBS:
        props[verb] = {"type": "string", "description": f"Shorthand: `{verb}: /path` sets method and path."}
    schema["required"] = [r for r in schema.get("required", []) if r != "path"]


class Task(Model):
    """One weighted request of the synthetic scenario; `post: /orders` is short for method + path."""

    model_config = ConfigDict(**Model.model_config, json_schema_extra=_task_json_schema)

    name: str = Field(description="Name shown in results (also the Locust request name).")
    weight: Int = Field(default=1, ge=0, le=1000, description="Relative frequency among tasks.")
    method: HttpMethod = Field(default="GET", description="HTTP method.")
    path: str = Field(description="Path and query, starting with /.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    json_body: Any = Field(default=None, alias="json", description="JSON request body.")
    body: str | None = Field(default=None, description="Raw request body (instead of json).")

    @model_validator(mode="before")
    @classmethod
    def _verb_shorthand(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        verbs = [v for v in _VERBS if v in data]
        if not verbs:
            return data
        if len(verbs) > 1 or "path" in data or "method" in data:
            raise ValueError("give the request once: either `post: /orders` or `method:` and `path:`")
        out = {k: v for k, v in data.items() if k != verbs[0]}
        out["method"] = verbs[0].upper()
        out["path"] = data[verbs[0]]
        return out

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or any(c.isspace() for c in value):
            raise ValueError(f"a path starts with / and has no spaces, got {short(value)}")
        return value

    @model_validator(mode="after")
    def _one_body(self) -> Task:
        if self.json_body is not None and self.body is not None:
            raise ValueError("give either json or body, not both")
        return self


class Load(Model):
    """The synthetic load: a Locust scenario of weighted tasks (or a locustfile), run on both tracks."""

    users: Int = Field(default=10, ge=1, le=100_000, description="Concurrent simulated users per track.")
    spawn_rate: Rate = Field(default=10.0, gt=0, description="Users started per second, e.g. 10/s.")
    duration: Duration = Field(default=60.0, gt=0, description="How long a load step runs by default.")
    workers: Int | Literal["auto"] = Field(
        default=1, description="Locust worker processes; `auto` uses the machine's cores."
    )
    tasks: list[Task] = Field(default_factory=list, description="Weighted requests (unless locustfile).")
    locustfile: str | None = Field(
        default=None, description="Path to a locustfile, relative to the contract."
    )

    @field_validator("workers")
    @classmethod
    def _workers(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= 256:
            raise ValueError("workers is between 1 and 256, or auto")
        return value

    @model_validator(mode="after")
    def _scenario(self) -> Load:
        if bool(self.tasks) == bool(self.locustfile):
            raise ValueError("give the scenario once: either tasks or a locustfile")
        names = [t.name for t in self.tasks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"task names must be unique: {', '.join(short(d) for d in dupes)}")
        if self.tasks and not any(t.weight for t in self.tasks):
            raise ValueError("at least one task needs a weight above 0")
        return self


# --- chaos ---------------------------------------------------------------------------------------


class HttpFault(Model):
    """A built-in HTTP fault on a dependency (or the canary): added latency and/or aborted requests."""

    target: str = Field(description="The dependency (or `canary`) whose requests get the fault.")
    delay: Duration | None = Field(
        default=None, description="Latency added to affected requests, e.g. 800ms."
    )
    delay_percent: Fraction = Field(
        default=1.0, ge=0, le=1, description="Share of requests delayed (default 100%)."
    )
    abort: Fraction | None = Field(
        default=None, ge=0, le=1, description="Share of requests aborted, e.g. 15%."
    )
    abort_status: Int = Field(default=503, ge=400, le=599, description="HTTP status of aborted requests.")

    @model_validator(mode="after")
    def _something(self) -> HttpFault:
        if self.delay is None and self.abort is None:
            raise ValueError("a fault needs a delay, an abort share, or both")
        return self


class FaultExperiment(Model):
    """Chaos by the built-in HTTP fault."""

    fault: HttpFault = Field(description="The HTTP fault to inject.")

    @property
    def kind(self) -> Literal["fault"]:
        """Which kind of experiment this is."""
        return "fault"


class FileExperiment(Model):
    """A Chaos Toolkit experiment file (JSON or YAML), relative to the contract."""

    experiment: str = Field(description="Path to a Chaos Toolkit experiment, relative to the contract.")

    @property
    def kind(self) -> Literal["experiment"]:
        """Which kind of experiment this is."""
        return "experiment"


class InlineExperiment(Model):
    """A Chaos Toolkit experiment written inline."""

    inline: dict[str, Any] = Field(description="A Chaos Toolkit experiment (title, method, rollbacks...).")

    @property
    def kind(self) -> Literal["inline"]:
        """Which kind of experiment this is."""
        return "inline"

    @field_validator("inline")
    @classmethod
    def _looks_like_experiment(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(value.get("method"), list) or not value.get("title"):
            raise ValueError("a Chaos Toolkit experiment needs a title and a method (a list of activities)")
        return value


_CHAOS_KINDS = ("fault", "experiment", "inline")


def _chaos_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        present = [k for k in _CHAOS_KINDS if k in value]
        return present[0] if len(present) == 1 else None
    if isinstance(value, Model):
        return str(getattr(value, "kind", None))
    return None


ChaosExperiment = Annotated[
    Annotated[FaultExperiment, Tag("fault")]
    | Annotated[FileExperiment, Tag("experiment")]
    | Annotated[InlineExperiment, Tag("inline")],
    Discriminator(
        _chaos_kind,
        custom_error_type="chaos_kind",
        custom_error_message="a chaos experiment has exactly one of: fault, experiment (a file), inline",
    ),
]
"""A chaos experiment, by kind: `fault` (built in), `experiment` (a file) or `inline`."""


# --- objectives ----------------------------------------------------------------------------------


class MinEvidence(Model):
    """The least evidence before a verdict other than Inconclusive."""

    requests: Int = Field(default=100, ge=0, description="Requests per track and source.")
    duration: Duration = Field(default=30.0, ge=0, description="Observed time per track and source.")


class Route(Model):
    """Restrict an objective to one route (set by the OpenAPI import)."""

    method: HttpMethod | None = Field(default=None, description="HTTP method; empty: any.")
    path: str = Field(description="Route template as the service labels it, e.g. /orders/{id}.")


class Objective(Model):
    """What must hold for one SLI: absolute bounds, bounds relative to stable, evidence needed."""

    key: str = Field(default="", description="Unique name; default from sli, quantile and during.")
    sli: str = Field(description="SLI template name (analyses/ or spec.slis).")
    quantile: Quantile | None = Field(default=None, description="For latency SLIs: 0.95, 95% or p95.")
    max: Quantity | None = Field(default=None, description="Upper bound, in the SLI's unit (220ms, 0.1%).")
    min: Quantity | None = Field(default=None, description="Lower bound, in the SLI's unit.")
    max_increase: Fraction | None = Field(
        default=None, ge=0, description="Largest allowed increase of canary over stable, e.g. 10%."
    )
    max_decrease: Fraction | None = Field(
        default=None, ge=0, description="Largest allowed decrease of canary below stable, e.g. 5%."
    )
    max_growth: Rate | None = Field(
        default=None, description="For gauge trends: largest growth per time, e.g. 0/min (no leak)."
    )
    critical: Bool = Field(default=False, description="A failure rolls back at once, whatever the limits.")
    sources: list[Source] = Field(
        default_factory=lambda: list(SOURCES),
        description="Sources judged; default: every source the steps produce.",
    )
    min_evidence: MinEvidence = Field(
        default_factory=MinEvidence, description="Evidence needed for a verdict."
    )
    during: str | None = Field(default=None, description="Judge only while this chaos experiment runs.")
    recover_within: Duration | None = Field(
        default=None,
        description="With `during`: the SLI must be back within bounds this long after the fault.",
    )
    route: Route | None = Field(default=None, description="Only requests of this route (OpenAPI import).")

    @field_validator("sources")
    @classmethod
    def _sources(cls, value: list[Source]) -> list[Source]:
        if not value:
            raise ValueError("list at least one source, or leave sources out for all of them")
        if len(set(value)) != len(value):
            raise ValueError("a source is listed twice")
        return value

    @field_validator("sli")
    @classmethod
    def _sli(cls, value: str) -> str:
        if not SLI_NAME_RE.match(value):
            raise ValueError(f"an SLI name is lowercase letters, digits and dashes, got {short(value)}")
        return value

    @model_validator(mode="after")
    def _bounds(self) -> Objective:
        if all(
            v is None for v in (self.max, self.min, self.max_increase, self.max_decrease, self.max_growth)
        ):
            raise ValueError("an objective needs a bound: max, min, maxIncrease, maxDecrease or maxGrowth")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError("min is above max; nothing could pass")
        if self.recover_within is not None and self.during is None:
            raise ValueError("recoverWithin needs `during` (the chaos experiment to recover from)")
        if not self.key:
            self.key = self.default_key()
        return self

    def default_key(self) -> str:
        """`http-latency-p95`, `http-latency-p99-during-risk-api-slow`, ..."""
        key = self.sli
        if self.quantile is not None:
            key += f"-p{self.quantile * 100:g}"
        if self.route is not None:
            slug = re.sub(r"[^a-z0-9]+", "-", f"{self.route.method or ''} {self.route.path}".lower()).strip(
                "-"
            )
            key += f"-{slug}"
        if self.during:
            key += f"-during-{self.during}"
        return key

    def route_matchers(self, contract: Contract) -> dict[str, str]:
        """Label matchers restricting this objective's queries to its route (empty without a route)."""
        if self.route is None:
            return {}
        traffic = contract.spec.traffic
        out = {traffic.route_label: self.route.path}
        if self.route.method:
            out[traffic.method_label] = self.route.method
        return out


# --- policy --------------------------------------------------------------------------------------


class Secret(Model):
    """Where a credential comes from: a Kubernetes Secret or an environment variable."""

    secret: str | None = Field(default=None, description="Kubernetes Secret name (key: `value`).")
    env: str | None = Field(default=None, description="Environment variable name.")

    @model_validator(mode="after")
    def _one(self) -> Secret:
        if (self.secret is None) == (self.env is None):
            raise ValueError("give exactly one of secret or env")
        return self


class WebhookNotify(Model):
    """POST a JSON summary of each decision to a URL."""

    webhook: HttpUrl = Field(description="URL to POST to.")


class SlackTarget(Model):
    """A Slack incoming webhook."""

    webhook: Secret = Field(description="Where the incoming-webhook URL comes from.")
    channel: str | None = Field(default=None, description="Channel override.")


class SlackNotify(Model):
    """Post decisions to Slack."""

    slack: SlackTarget = Field(description="The Slack destination.")


class PagerDutyTarget(Model):
    """A PagerDuty Events v2 routing key."""

    routing_key: Secret = Field(description="Where the routing key comes from.")


class PagerDutyNotify(Model):
    """Page on rollbacks."""

    pagerduty: PagerDutyTarget = Field(description="The PagerDuty destination.")


_NOTIFY_KINDS = ("webhook", "slack", "pagerduty")


def _notify_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        present = [k for k in _NOTIFY_KINDS if k in value]
        return present[0] if len(present) == 1 else None
    for kind in _NOTIFY_KINDS:
        if hasattr(value, kind):
            return kind
    return None


Notify = Annotated[
    Annotated[WebhookNotify, Tag("webhook")]
    | Annotated[SlackNotify, Tag("slack")]
    | Annotated[PagerDutyNotify, Tag("pagerduty")],
    Discriminator(
        _notify_kind,
        custom_error_type="notify_kind",
        custom_error_message="a notification is one of: webhook, slack, pagerduty",
    ),
]


class Power(Model):
    """The change a step's evidence must be able to catch before a promote at its end counts."""

    detect: Fraction = Field(
        gt=0, le=10, description="Smallest regression to catch, relative, e.g. 10% (more than the tolerance)."
    )
    probability: Fraction = Field(
        default=0.9, ge=0.5, lt=1, description="How often a regression of that size must be caught, e.g. 90%."
    )


class Policy(Model):
    """How verdicts become decisions."""

    confidence: Fraction = Field(default=0.99, gt=0.5, lt=1, description="Statistical confidence, e.g. 99%.")
    tolerance: Fraction = Field(
        default=0.05, ge=0, le=1, description="Relative difference treated as no difference, e.g. 5%."
    )
    on_inconclusive: Literal["hold", "rollback"] = Field(
        default="hold",
        description="What a step ending with too many inconclusive verdicts (or too little evidence) does.",
    )
    failure_limit: Int = Field(
        default=0, ge=0, description="Failed verdicts (objective × source) tolerated; one more rolls back."
    )
    inconclusive_limit: Int = Field(
        default=3,
        ge=0,
        description="Inconclusive verdicts tolerated at a step's end; one more: onInconclusive.",
    )
    error_limit: Int = Field(
        default=3, ge=0, description="Verdicts that could not be measured tolerated; one more rolls back."
    )
    power: Power | None = Field(
        default=None,
        description="Demand power: a step whose evidence could not have caught this change holds at its end.",
    )
    interval: Duration = Field(default=10.0, gt=0, description="Time between analysis ticks.")
    recent_window: Duration | None = Field(
        default=None,
        description="Each look also judges the last this-many seconds, so a regression that starts "
        "mid-step is caught in about two scrapes (it can only roll back; docs/judge.md#recent-window). "
        "Default: twice prometheus.scrapeInterval; 0 turns it off.",
    )
    deadline: Duration = Field(default=3600.0, gt=0, description="The whole rollout must end within this.")
    notify: list[Notify] = Field(default_factory=list, description="Where decisions are announced.")


# --- promotion -----------------------------------------------------------------------------------


class Promotion(Model):
    """What "promoted" hands over once the last step has passed (docs/kubernetes.md#promotion)."""

    mode: Literal["route-only", "copy", "external"] = Field(
        default="route-only",
        description="route-only: the route is left at canary 100 % (you promote the stable Deployment "
        "yourself); copy: gate copies the canary's pod template into the stable Deployment, waits for its "
        "rollout, routes 100 % back to stable and scales the canary to zero (as Flagger does); external: "
        "gate waits until the stable Deployment runs the canary's images (a GitOps tool promotes), then "
        "routes back to stable.",
    )
    timeout: Duration = Field(
        default=600.0,
        gt=0,
        description="How long copy/external wait for the stable Deployment to run the canary's version.",
    )


# --- spec and contract ---------------------------------------------------------------------------


class ObjectivesFrom(Model):
    """Import per-operation objectives from an OpenAPI 3 document's `x-performance-contract`."""

    openapi: str = Field(
        description="Path to an OpenAPI 3 document (YAML or JSON), relative to the contract."
    )


class Spec(Model):
    """What to roll out, how to measure it, what must hold, and how to step."""

    service: str = Field(default="", description="Service name; default metadata.name.")
    target: Target = Field(description="The stable and canary versions and how to reach them.")
    router: Router | None = Field(default=None, description="What moves traffic; empty for `gate check`.")
    prometheus: Prometheus = Field(default_factory=Prometheus, description="Where the SLIs are read.")
    traffic: Traffic = Field(default_factory=Traffic, description="How sources and tracks are told apart.")
    load: Load | None = Field(default=None, description="The synthetic load (Locust).")
    chaos: dict[str, ChaosExperiment] = Field(default_factory=dict, description="Named chaos experiments.")
    objectives: list[Objective] = Field(default_factory=list, description="What must hold.")
    objectives_from: list[ObjectivesFrom] = Field(
        default_factory=list, description="Further objectives imported from OpenAPI documents."
    )
    steps: list[Step] = Field(default_factory=list, description="The rollout ladder.")
    policy: Policy = Field(default_factory=Policy, description="How verdicts become decisions.")
    promotion: Promotion = Field(
        default_factory=Promotion, description="What a promotion hands over to the stable version."
    )
    slis: dict[str, SliTemplate] = Field(
        default_factory=dict, description="The contract's own SLI templates."
    )

    @model_validator(mode="after")
    def _promotion_needs_deployments(self) -> Spec:
        mode = self.promotion.mode
        if mode == "route-only":
            return self
        if isinstance(self.router, NginxRouter):
            raise ValueError(
                f"promotion.mode {mode} hands over Kubernetes Deployments; the nginx router runs outside "
                "Kubernetes: use mode route-only"
            )
        if not self.target.stable.deployment or not self.target.canary.deployment:
            raise ValueError(
                f"promotion.mode {mode} needs target.stable.deployment and target.canary.deployment "
                "(the Deployments whose versions it hands over)"
            )
        return self

    @field_validator("chaos")
    @classmethod
    def _chaos_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            _check_name(name, "a chaos experiment name")
        return value

    @field_validator("slis")
    @classmethod
    def _sli_names(cls, value: dict[str, SliTemplate]) -> dict[str, SliTemplate]:
        out = {}
        for name, template in value.items():
            if not SLI_NAME_RE.match(name):
                raise ValueError(f"an SLI name is lowercase letters, digits and dashes, got {short(name)}")
            if template.name and template.name != name:
                raise ValueError(f"template {name} says its name is {short(template.name)}; drop `name:`")
            out[name] = template if template.name else template.model_copy(update={"name": name})
        return out


class Contract(Model):
    """A performance contract: `apiVersion: perfgate.dev/v1alpha1`, `kind: PerformanceContract`."""

    api_version: Literal["perfgate.dev/v1alpha1"] = Field(description="Always perfgate.dev/v1alpha1.")
    kind: Literal["PerformanceContract"] = Field(description="Always PerformanceContract.")
    metadata: Metadata = Field(description="Name, namespace, labels.")
    spec: Spec = Field(description="The contract itself.")
    status: dict[str, Any] | None = Field(
        default=None, description="Written by the operator in a cluster; ignored when loading."
    )

    _base_dir: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _service_default(self) -> Contract:
        if not self.spec.service:
            self.spec.service = self.metadata.name
        return self

    @property
    def base_dir(self) -> Path | None:
        """Folder of the contract file; relative paths (experiments, locustfiles) resolve from here."""
        return self._base_dir

    def resolve(self, path: str) -> Path:
        """A path written in the contract, resolved against the contract's folder."""
        candidate = Path(path)
        if candidate.is_absolute() or self._base_dir is None:
            return candidate
        return self._base_dir / candidate

    def objective(self, key: str) -> Objective:
        """The objective with this key."""
        for objective in self.spec.objectives:
            if objective.key == key:
                return objective
        raise KeyError(f"no objective {key!r}")
