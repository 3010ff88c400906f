"""Preflight: what must hold before a rollout starts, checked against the real cluster and Prometheus.

`preflight(contract, ...)` returns every problem found (empty: ready to go), each naming the object,
what is wrong and what to do; it changes nothing anywhere. `gate preflight CONTRACT` prints them
(exit 0 ready, 1 problems found, 2 the contract is invalid) and `gate run` calls it at start.

1. The router's objects exist: the HTTPRoute / VirtualService / Ingress / Deployments the contract
   names, with a rule that sends to the stable backend, and the Services (backendRefs) they name.
2. gate may do what it will do: a SelfSubjectAccessReview per verb × resource (`permissions()`),
   for the router and for the promotion mode.
3. Prometheus answers, and has every series the objectives' SLIs read, for both tracks.
4. Each analyze step can reach each objective's minimum evidence: long enough (`minEvidence.duration`),
   and, at the production traffic Prometheus shows now, enough requests at the step's weight or mirror.
Plus the contract's own warnings (a ladder reaching 100 % with the mirror on).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from gate.contract import checks, models
from gate.contract.sli import PARTS, SliLibrary
from gate.contract.steps import Analyze, Mirror, SetWeight
from gate.contract.units import format_duration
from gate.drivers import kube as kubedriver
from gate.drivers.kube import KubeOptions
from gate.drivers.prometheus.client import PrometheusClient, PrometheusError
from gate.drivers.routers.base import RouterError
from gate.drivers.routers.factory import namespace_for, service_of

Severity = Literal["error", "warning"]
LOOKBACK = 300.0  # seconds of Prometheus history looked at for series and traffic
MAX_PROBLEMS = 200


@dataclass(frozen=True)
class Problem:
    """One thing in the way of a rollout: which check, on what, what is wrong, what to do."""

    check: str  # contract, cluster, route, rbac, prometheus, series, evidence
    subject: str
    message: str
    fix: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.severity}: [{self.check}] {self.subject}: {self.message} — {self.fix}"


@dataclass(frozen=True)
class Permission:
    """One RBAC permission gate uses: verb on resource in namespace, and what for."""

    verb: str
    resource: kubedriver.Resource
    namespace: str
    why: str
    subresource: str | None = None

    def __str__(self) -> str:
        what = f"{self.resource.plural}/{self.subresource}" if self.subresource else self.resource.plural
        group = self.resource.group or '""'
        return f"{self.verb} {what} (apiGroup {group}) in {self.namespace}: {self.why}"


def router_namespace(contract: models.Contract, default: str | None = None) -> str:
    return namespace_for(contract, getattr(contract.spec.router, "namespace", None), default)


def permissions(contract: models.Contract, namespace: str) -> list[Permission]:
    """Every verb × resource gate needs for this contract's router and promotion mode."""
    router = contract.spec.router
    out: list[Permission] = []
    if isinstance(router, models.GatewayApiRouter):
        out += [
            Permission("get", kubedriver.HTTPROUTE, namespace, "read the route's weights and mirror"),
            Permission("patch", kubedriver.HTTPROUTE, namespace, "set the weights and the mirror filter"),
            Permission("get", kubedriver.SERVICE, namespace, "preflight: the backendRefs' Services exist"),
        ]
    elif isinstance(router, models.IstioRouter):
        out += [
            Permission("get", kubedriver.VIRTUALSERVICE, namespace, "read the route weights and mirror"),
            Permission("patch", kubedriver.VIRTUALSERVICE, namespace, "set the weights and the mirror"),
            Permission("get", kubedriver.SERVICE, namespace, "preflight: the destinations' Services exist"),
        ]
    elif isinstance(router, models.IngressNginxRouter):
        for verb, why in (
            ("get", "read the stable Ingress and the canary Ingress"),
            ("create", "create the canary Ingress"),
            ("patch", "set the canary weight"),
            ("delete", "delete gate's canary Ingress after a rollback"),
        ):
            out.append(Permission(verb, kubedriver.INGRESS, namespace, why))
        out.append(Permission("get", kubedriver.SERVICE, namespace, "preflight: the Services exist"))
    elif isinstance(router, models.DeploymentRouter):
        out += [
            Permission("get", kubedriver.DEPLOYMENT, namespace, "read the replica counts"),
            Permission("patch", kubedriver.DEPLOYMENT, namespace, "scale the stable and canary Deployments"),
        ]
    mode = contract.spec.promotion.mode
    if router is not None and not isinstance(router, models.NginxRouter) and mode != "route-only":
        out.append(
            Permission("get", kubedriver.DEPLOYMENT, namespace, f"promotion {mode}: read both Deployments")
        )
        if mode == "copy":
            out.append(
                Permission(
                    "patch",
                    kubedriver.DEPLOYMENT,
                    namespace,
                    "promotion copy: copy the template, scale the canary",
                )
            )
    seen: set[tuple[str, str]] = set()
    unique = []
    for p in out:
        if (p.verb, p.resource.plural) not in seen:
            seen.add((p.verb, p.resource.plural))
            unique.append(p)
    return unique


def preflight(
    contract: models.Contract,
    *,
    kube_client: kubedriver.KubeClient | None = None,
    kube: KubeOptions | None = None,
    prometheus: PrometheusClient | None = None,
    library: SliLibrary | None = None,
    at: float | None = None,
) -> list[Problem]:
    """Every problem in the way of rolling `contract` out (see the module's docstring); changes nothing.
    `at` evaluates the Prometheus checks at that instant (tests); default: now."""
    problems: list[Problem] = [
        Problem("contract", path, message, "change the steps, or accept the warning", "warning")
        for path, message in checks.warnings(contract.spec.steps)
    ]
    problems += list(_cluster(contract, kube_client, kube))
    problems += list(_prometheus(contract, prometheus, library or SliLibrary.default(), at))
    problems += list(_step_lengths(contract))
    return problems[:MAX_PROBLEMS]


# -- 1 and 2: the cluster ---------------------------------------------------------------------------


def _cluster(
    contract: models.Contract, client: kubedriver.KubeClient | None, options: KubeOptions | None
) -> Iterator[Problem]:
    router = contract.spec.router
    if router is None:
        yield Problem(
            "contract", "spec.router", "this contract names no router", "add spec.router to roll out"
        )
        return
    if isinstance(router, models.NginxRouter):
        return  # gate's own nginx: nothing in a cluster to check
    own = client is None
    try:
        if client is None:
            client = kubedriver.connect(options)
        ns = namespace_for(
            contract,
            getattr(router, "namespace", None),
            client.namespace,
            options.namespace if options else None,
        )
    except (kubedriver.KubeError, RouterError) as exc:
        yield Problem("cluster", "Kubernetes API", exc.message, exc.hint or "see docs/kubernetes.md")
        return
    try:
        try:
            yield from _objects(contract, router, client, ns)
        except kubedriver.KubeTemporaryError as exc:
            yield Problem("cluster", f"API server {client.host}", exc.message, exc.hint)
            return
        yield from _rbac(contract, client, ns)
    finally:
        if own:
            client.close()


def _get(
    client: kubedriver.KubeClient, ref: kubedriver.ObjectRef, field: str
) -> tuple[dict[str, Any] | None, Problem | None]:
    try:
        return client.get(ref), None
    except kubedriver.KubeNotFoundError:
        return None, Problem(
            "route",
            str(ref),
            "does not exist",
            f"create it, or fix {field} in the contract (kubectl get {ref.resource.rbac} -n {ref.namespace})",
        )
    except kubedriver.KubePermanentError as exc:
        return None, Problem("route", str(ref), exc.message, exc.hint)


def _services(client: kubedriver.KubeClient, ns: str, names: dict[str, str]) -> Iterator[Problem]:
    for track, name in names.items():
        ref = kubedriver.ObjectRef(kubedriver.SERVICE, ns, name)
        _, problem = _get(client, ref, f"spec.target.{track}.service")
        if problem is not None:
            yield Problem("route", problem.subject, f"the {track} Service {problem.message}", problem.fix)


def _objects(
    contract: models.Contract, router: Any, client: kubedriver.KubeClient, ns: str
) -> Iterator[Problem]:
    from gate.drivers.routers import gateway_api, istio  # the pure parts: which rules serve stable

    target = contract.spec.target
    try:
        stable = service_of(target.stable, "stable")
        canary = service_of(target.canary, "canary")
    except RouterError as exc:
        if not isinstance(router, models.DeploymentRouter):
            yield Problem("contract", "spec.target", exc.message, "name the Services of both tracks")
            return
        stable = canary = ""
    if isinstance(router, models.GatewayApiRouter):
        ref = kubedriver.ObjectRef(kubedriver.HTTPROUTE, ns, router.http_route)
        route, problem = _get(client, ref, "spec.router.httpRoute")
        if problem is not None:
            yield problem
            return
        assert route is not None
        http_target = gateway_api.HttpRouteTarget(
            ns, router.http_route, gateway_api.BackendRef(stable), gateway_api.BackendRef(canary)
        )
        try:
            gateway_api.managed_rules(route, http_target)
        except RouterError as exc:
            yield Problem(
                "route",
                str(ref),
                exc.message,
                "add a rule with a backendRef to the stable Service, or fix spec.target.stable.service",
            )
        yield from _services(client, ns, {"stable": stable, "canary": canary})
    elif isinstance(router, models.IstioRouter):
        ref = kubedriver.ObjectRef(kubedriver.VIRTUALSERVICE, ns, router.virtual_service)
        vs, problem = _get(client, ref, "spec.router.virtualService")
        if problem is not None:
            yield problem
            return
        assert vs is not None
        if router.destination_rule:
            dests = (istio.Destination(stable, "stable"), istio.Destination(stable, "canary"))
            services = {"stable": stable}
        else:
            dests = (istio.Destination(stable), istio.Destination(canary))
            services = {"stable": stable, "canary": canary}
        try:
            istio.managed_routes(vs, istio.VirtualServiceTarget(ns, router.virtual_service, *dests))
        except RouterError as exc:
            yield Problem(
                "route",
                str(ref),
                exc.message,
                "add a route to the stable destination, or fix spec.target.stable.service",
            )
        yield from _services(client, ns, services)
    elif isinstance(router, models.IngressNginxRouter):
        ref = kubedriver.ObjectRef(kubedriver.INGRESS, ns, router.ingress)
        _, problem = _get(client, ref, "spec.router.ingress")
        if problem is not None:
            yield problem
            return
        yield from _services(client, ns, {"stable": stable, "canary": canary})
    if isinstance(router, models.DeploymentRouter) or contract.spec.promotion.mode != "route-only":
        for track, name in (("stable", target.stable.deployment), ("canary", target.canary.deployment)):
            if not name:
                yield Problem(
                    "contract", f"spec.target.{track}.deployment", "is empty", "name the Deployment"
                )
                continue
            _, problem = _get(
                client,
                kubedriver.ObjectRef(kubedriver.DEPLOYMENT, ns, name),
                f"spec.target.{track}.deployment",
            )
            if problem is not None:
                yield problem


def _rbac(contract: models.Contract, client: kubedriver.KubeClient, ns: str) -> Iterator[Problem]:
    for p in permissions(contract, ns):
        try:
            allowed, reason = client.allowed(p.verb, p.resource, p.namespace, subresource=p.subresource)
        except kubedriver.KubeError as exc:
            yield Problem(
                "rbac",
                str(p),
                f"cannot ask the API server ({exc.message})",
                "gate needs `create selfsubjectaccessreviews` (every authenticated identity has it)",
                "warning",
            )
            return
        if not allowed:
            yield Problem(
                "rbac",
                f"{p.resource.rbac} in {p.namespace}",
                f"gate may not `{p.verb}` {p.resource.plural} (needed to {p.why})"
                + (f": {reason}" if reason else ""),
                f'grant `{p.verb}` on {p.resource.plural} (apiGroups: ["{p.resource.group}"]) in namespace '
                f"{p.namespace} to gate's identity — the Role in docs/kubernetes.md#rbac",
            )


# -- 3 and 4: Prometheus ----------------------------------------------------------------------------


def _selector(matchers: dict[str, str]) -> str:
    from gate.contract import promql

    return ", ".join(
        f"{promql.check_label_name(k)}={promql.string_literal(v)}" for k, v in sorted(matchers.items())
    )


def _prometheus(
    contract: models.Contract, prom: PrometheusClient | None, library: SliLibrary, at: float | None
) -> Iterator[Problem]:
    objectives = contract.spec.objectives
    if not objectives:
        return
    url = contract.spec.prometheus.url
    own = prom is None
    if prom is None:
        if not url:
            yield Problem(
                "prometheus",
                "spec.prometheus.url",
                "is empty: gate cannot measure the objectives",
                "set spec.prometheus.url",
            )
            return
        prom = PrometheusClient(url, timeout=5.0, retries=0)
    try:
        try:
            prom.query("vector(1)", at=at)
        except PrometheusError as exc:
            yield Problem(
                "prometheus",
                prom.url,
                f"does not answer a query: {str(exc)[:300]}",
                "check spec.prometheus.url and that Prometheus is up and reachable from gate",
            )
            return
        library = library.with_extra(contract.spec.slis)
        seen: set[tuple[str, str]] = set()
        production_rate: dict[str, float] = {}
        for objective in objectives:
            try:
                template = library.get(objective.sli)
            except (KeyError, ValueError):
                continue  # the contract's validation reports unknown SLIs
            traffic = contract.spec.traffic
            fixed = traffic.selector_for(template.scope)
            if template.service_label:
                fixed[template.service_label] = contract.spec.service
            if template.scope == "traffic":
                fixed.update(objective.route_matchers(contract))
            for part in PARTS[template.kind]:
                if part == "errors":
                    continue  # a counter of failures may rightly not exist yet
                for track, matchers in traffic.tracks_for(template.scope).items():
                    series = template.part(part).replace("$selector", _selector({**fixed, **matchers}))
                    if (series, track) in seen:
                        continue
                    seen.add((series, track))
                    try:
                        found = prom.query(f"count(last_over_time({series}[{int(LOOKBACK)}s]))", at=at)
                    except PrometheusError as exc:
                        yield Problem(
                            "series",
                            series,
                            f"the query failed: {str(exc)[:300]}",
                            "check the SLI template and traffic matchers",
                        )
                        continue
                    if not found or found[0].value <= 0:
                        yield Problem(
                            "series",
                            f"objective {objective.key}, {track} track",
                            f"Prometheus has no series {series} in the last {format_duration(LOOKBACK)}",
                            f"make sure Prometheus scrapes the {track} pods and that traffic.tracks and "
                            "traffic.selector match their labels (try the selector in Prometheus); "
                            f"the {track} version must have "
                            "served a request for its histogram/counter to exist",
                        )
            if (
                template.kind in ("latency-histogram", "counter-ratio", "rate")
                and template.scope == "traffic"
            ):
                part = {"latency-histogram": "buckets", "counter-ratio": "total", "rate": "counter"}[
                    template.kind
                ]
                production = traffic.sources.get("production", {})
                stable_m = traffic.tracks_for("traffic")["stable"]
                extra = {"le": "+Inf"} if part == "buckets" else {}
                series = template.part(part).replace(
                    "$selector", _selector({**fixed, **stable_m, **production, **extra})
                )
                if series not in production_rate:
                    try:
                        answer = prom.query(f"sum(rate({series}[{int(LOOKBACK)}s]))", at=at)
                        production_rate[series] = answer[0].value if answer else 0.0
                    except PrometheusError:
                        production_rate[series] = -1.0
                yield from _evidence(contract, objective, production_rate[series])
    finally:
        if own:
            prom.close()


def _evidence(contract: models.Contract, objective: models.Objective, rate: float) -> Iterator[Problem]:
    """Whether each analyze step sees the objective's minimum production/shadow requests."""
    if rate < 0 or objective.min_evidence.requests <= 0:
        return
    weight = mirror = 0
    for index, step in enumerate(contract.spec.steps):
        if isinstance(step, SetWeight):
            weight = step.weight
        elif isinstance(step, Mirror):
            mirror = step.percent
        elif isinstance(step, Analyze) and step.duration:
            for source, share in (("production", weight), ("shadow", mirror)):
                if source not in objective.sources or share <= 0:
                    continue
                expected = rate * share / 100.0 * step.duration
                need = objective.min_evidence.requests
                if expected < need:
                    enough = need / (rate * share / 100.0) if rate > 0 else float("inf")
                    longer = (
                        f"lengthen it to at least {format_duration(round(enough + 0.5))}"
                        if rate > 0
                        else "wait for production traffic"
                    )
                    yield Problem(
                        "evidence",
                        f"spec.steps[{index}] (analyze {format_duration(step.duration)} "
                        f"at {share}% {source})",
                        f"at the {rate:.3g} req/s production traffic Prometheus shows now, "
                        "the canary would see about "
                        f"{expected:.0f} {source} requests; objective {objective.key} needs {need}",
                        f"{longer}, raise the step's share, or lower minEvidence.requests",
                    )


def _step_lengths(contract: models.Contract) -> Iterator[Problem]:
    for index, step in enumerate(contract.spec.steps):
        if not isinstance(step, Analyze) or not step.duration:
            continue
        for objective in contract.spec.objectives:
            if step.duration < objective.min_evidence.duration:
                yield Problem(
                    "evidence",
                    f"spec.steps[{index}] (analyze {format_duration(step.duration)})",
                    f"is shorter than objective {objective.key}'s minEvidence.duration "
                    f"({format_duration(objective.min_evidence.duration)}): it can only end Inconclusive",
                    f"lengthen the step to at least {format_duration(objective.min_evidence.duration)}",
                )
