"""What gate's code calls on the Kubernetes API, read from the code itself (AST), as RBAC triples.

A triple is (apiGroup, resource, verb), the resource with its subresource (``deployments/scale``).

- ``KubeClient`` (gate/drivers/kube.py): each public method's verbs come from the generated client calls
  in its body (``get_namespaced_custom_object`` → get, ``patch_namespaced_custom_object_status`` → patch
  on ``…/status``) and from the other methods it calls (``modify`` = read + patch).
- Routers: ``router_for`` (gate/drivers/routers/factory.py) says which class serves each router type;
  that class's calls on its ``client`` (inherited ones too) are the verbs, the ``kube.<Resource>``
  constants its module names are the resources.
- Load at scale (gate/drivers/load/cluster.py): per function, the `kube.<Resource>` constants it names
  × the KubeClient methods it calls on a `client` (`client.list`, `self.options.client.follow_log`,
  `partial(client.create, ...)`), so a function's verbs never leak onto another function's kinds.
- Chaos actions: the chaostoolkit-kubernetes functions a gate module calls, read from chaosk8s' own
  source (the generated-client calls inside, helpers followed); generic custom-object calls take their
  group and plural from gate's call (literals or the module's constants).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import textwrap
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from gate.contract import models
from gate.drivers import kube
from gate.drivers.routers import factory

Triple = tuple[str, str, str]

_GENERATED = re.compile(
    r"^(?P<verb>get|read|list|create|delete|patch|replace)_(?:namespaced_)?(?P<what>[a-z_]+?)"
    r"(?P<sub>_status|_scale)?(?:_for_all_namespaces)?$"
)
_VERB = {"get": "get", "read": "get", "list": "list", "create": "create", "delete": "delete"}
_VERB |= {"patch": "patch", "replace": "update"}
# Generated typed-API calls name the kind in snake case; RBAC names the plural.
_CORE_KINDS = {"pod": ("", "pods"), "deployment": ("apps", "deployments"), "service": ("", "services")}
_CORE_KINDS |= {
    "config_map": ("", "configmaps"),
    "event": ("", "events"),
    "ingress": ("networking.k8s.io", "ingresses"),
}


def _tree(obj: Any) -> ast.AST:
    return ast.parse(textwrap.dedent(inspect.getsource(obj)))


def _generated(name: str) -> tuple[str, str | None, str] | None:
    """`patch_namespaced_custom_object_status` → ("patch", None, "/status"); the kind when typed."""
    m = _GENERATED.match(name)
    if m is None:
        return None
    what, sub = m["what"], (m["sub"] or "").replace("_", "/")
    return _VERB[m["verb"]], (None if what == "custom_object" else what), sub


# ------------------------------------------------------------------------------------- KubeClient


# `allowed` asks a SelfSubjectAccessReview about gate's own identity: every authenticated identity may
# (Kubernetes' default system:basic-user ClusterRole), so it needs no rule and grants none.
NOT_CALLS = frozenset({"allowed"})


def kube_client_verbs() -> dict[str, set[tuple[str, str]]]:
    """Each KubeClient method → {(verb, subresource suffix)} it sends, following self-calls."""
    cls = next(n for n in ast.walk(_tree(kube)) if isinstance(n, ast.ClassDef) and n.name == "KubeClient")
    direct: dict[str, set[tuple[str, str]]] = {}
    calls: dict[str, set[str]] = {}
    aliases: dict[str, str] = {}
    for node in cls.body:  # `read = get`
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name):
            aliases |= {t.id: node.value.id for t in node.targets if isinstance(t, ast.Name)}
    for fn in cls.body:
        if not isinstance(fn, ast.FunctionDef) or fn.name in NOT_CALLS:
            continue
        direct[fn.name], calls[fn.name] = set(), set()
        for node in ast.walk(fn):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "_api"
                and (g := _generated(node.attr)) is not None
            ):
                direct[fn.name].add((g[0], g[2]))
            if (  # self._send("patch", ref, "PATCH", path, ..., sub="status")
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "_send"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                sub = next((k.value for k in node.keywords if k.arg == "sub"), None)
                suffix = f"/{sub.value}" if isinstance(sub, ast.Constant) and sub.value else ""
                direct[fn.name].add((str(node.args[0].value), suffix))
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
            ):
                calls[fn.name].add(node.attr)

    def close(name: str, seen: frozenset[str] = frozenset()) -> set[tuple[str, str]]:
        out = set(direct.get(name, set()))
        for other in calls.get(name, set()) - seen - {name}:
            if other in direct:
                out |= close(other, seen | {name})
        return out

    out = {name: close(name) for name in direct if not name.startswith("_") and name != "close"}
    return out | {alias: out[target] for alias, target in aliases.items() if target in out}


# ---------------------------------------------------------------------------------------- routers


def router_classes() -> dict[str, type]:
    """Router type (`spec.router.type`) → the class `router_for` builds for it, read from its branches
    (`isinstance(spec, models.X)` → `return Y(...)`)."""
    found: dict[str, type] = {}
    for node in ast.walk(_tree(factory)):
        if not (isinstance(node, ast.If) and isinstance(node.test, ast.Call)):
            continue
        test = node.test
        if not (isinstance(test.func, ast.Name) and test.func.id == "isinstance" and len(test.args) == 2):
            continue
        model = test.args[1]
        if not (isinstance(model, ast.Attribute) and isinstance(model.value, ast.Name)):
            continue
        rtype = models.__dict__[model.attr].model_fields["type"].annotation.__args__[0]
        for ret in ast.walk(ast.Module(body=node.body, type_ignores=[])):
            if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Call):
                func = ret.value.func
                if isinstance(func, ast.Name):
                    found[rtype] = getattr(factory, func.id)
                    break
    return found


def _client_calls(cls: type, methods: dict[str, set[tuple[str, str]]]) -> set[tuple[str, str]]:
    """(verb, subresource) of every `<x>.client.<method>(...)` in `cls` and its bases from gate."""
    out: set[tuple[str, str]] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("gate."):
            continue
        for node in ast.walk(_tree(klass)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "client"
                and node.func.attr in methods
            ):
                out |= methods[node.func.attr]
    return out


def _resources_named(module: ModuleType) -> set[kube.Resource]:
    out: set[kube.Resource] = set()
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "kube":
            value = getattr(kube, node.attr, None)
            if isinstance(value, kube.Resource):
                out.add(value)
    return out


def router_triples() -> dict[str, set[Triple]]:
    """Router type → the RBAC triples its code sends."""
    methods = kube_client_verbs()
    out: dict[str, set[Triple]] = {}
    for rtype, cls in router_classes().items():
        resources = _resources_named(importlib.import_module(cls.__module__))
        verbs = _client_calls(cls, methods)
        out[rtype] = {(r.group, r.plural + sub, verb) for r in resources for verb, sub in verbs}
    return out


def promotion_triples() -> set[Triple]:
    """What the promotion hand-over (modes copy and external) sends, read from its class."""
    from gate.drivers.routers import promotion

    resources = _resources_named(promotion)
    verbs = _client_calls(promotion.HandOver, kube_client_verbs())
    return {(r.group, r.plural + sub, verb) for r in resources for verb, sub in verbs}


def _is_client(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "client") or (
        isinstance(node, ast.Attribute) and node.attr == "client"
    )


def load_triples() -> set[Triple]:
    """What load at scale sends (gate.drivers.load.cluster), function by function."""
    from gate.drivers.load import cluster

    methods = kube_client_verbs()
    out: set[Triple] = set()
    for fn in ast.walk(_tree(cluster)):
        if not isinstance(fn, ast.FunctionDef):
            continue
        resources: set[kube.Resource] = set()
        verbs: set[tuple[str, str]] = set()
        for node in ast.walk(fn):
            if not isinstance(node, ast.Attribute):
                continue
            if isinstance(node.value, ast.Name) and node.value.id == "kube":
                value = getattr(kube, node.attr, None)
                if isinstance(value, kube.Resource):
                    resources.add(value)
            if node.attr in methods and _is_client(node.value):
                verbs |= methods[node.attr]
        out |= {(r.group, r.plural + sub, verb) for r in resources for verb, sub in verbs}
    return out


def _stub_contract(router: Any, mode: str) -> Any:
    """Just what `preflight.permissions` reads of a contract: the router and the promotion mode."""
    from types import SimpleNamespace

    return SimpleNamespace(spec=SimpleNamespace(router=router, promotion=SimpleNamespace(mode=mode)))


def preflight_triples(router_type: str | None, mode: str = "route-only") -> set[Triple]:
    """The permissions `gate.drivers.preflight.permissions` declares for a router type and promotion mode
    (preflight also reads the Services the route names)."""
    from gate.drivers import preflight

    model = None
    if router_type is not None:
        model = next(
            m.model_construct(type=router_type)
            for m in vars(models).values()
            if isinstance(m, type)
            and "type" in getattr(m, "model_fields", {})
            and getattr(m.model_fields["type"].annotation, "__args__", (None,)) == (router_type,)
        )
    perms = preflight.permissions(_stub_contract(model, mode), "ns")
    return {
        (p.resource.group, p.resource.plural + (f"/{p.subresource}" if p.subresource else ""), p.verb)
        for p in perms
    }


# ------------------------------------------------------------------------------------------ chaos


def _module_constants(tree: ast.AST) -> dict[str, str]:
    out: dict[str, str] = {}
    for node in getattr(tree, "body", []):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value.value
    return out


def _api_group_of(constants: dict[str, str]) -> str | None:
    """The group of the module's default apiVersion constant (`networking.istio.io/v1beta1`)."""
    for value in constants.values():
        if re.fullmatch(r"[a-z0-9.-]+\.[a-z]+/v[0-9a-z]+", value):
            return value.split("/")[0]
    return None


def chaosk8s_function_calls(qualname: str) -> set[tuple[str, str | None, str]]:
    """(verb, kind or None for custom objects, subresource) a chaosk8s function sends, helpers followed."""
    module_name, func_name = qualname.rsplit(".", 1)
    module = importlib.import_module(module_name)
    tree = ast.parse(inspect.getsource(module))
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    seen: set[str] = set()
    out: set[tuple[str, str | None, str]] = set()
    todo = [func_name]
    while todo:
        name = todo.pop()
        if name in seen or name not in funcs:
            continue
        seen.add(name)
        for node in ast.walk(funcs[name]):
            # v1.list_namespaced_pod(...), api.get_namespaced_custom_object(...)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                g = _generated(node.attr)
                if g is not None:
                    out.add(g)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                todo.append(node.func.id)
    return out


def _triples_of(
    calls: Iterable[tuple[str, str | None, str]], group: str | None, plural: str | None
) -> set[Triple]:
    out: set[Triple] = set()
    for verb, kind, sub in calls:
        if kind is None:
            if group is None or plural is None:
                raise AssertionError(
                    "a custom-object call whose group or plural cannot be read from gate's code"
                )
            out.add((group, plural + sub, verb))
        else:
            g, p = _CORE_KINDS[kind]
            out.add((g, p + sub, verb))
    return out


def module_chaos_triples(module_name: str) -> set[Triple]:
    """The triples of every chaosk8s function a gate module imports and calls."""
    module = importlib.import_module(module_name)
    tree = ast.parse(inspect.getsource(module))
    constants = _module_constants(tree)
    imported: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("chaosk8s"):
            for alias in node.names:
                imported[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    out: set[Triple] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in imported):
            continue
        calls = chaosk8s_function_calls(imported[node.func.id])
        group = plural = None
        if any(kind is None for _, kind, _ in calls) and len(node.args) >= 3:
            g, p = node.args[0], node.args[2]
            group = g.value if isinstance(g, ast.Constant) else constants.get(getattr(g, "id", ""))
            group = group or _api_group_of(constants)
            plural = p.value if isinstance(p, ast.Constant) else constants.get(getattr(p, "id", ""))
        out |= _triples_of(calls, group, plural)
    return out


# What each of the chart's chaos actions is in code: a gate module, or a chaosk8s function used as it is.
CHAOS_ACTIONS = {
    "istio-fault": ("module", "gate.drivers.chaos.istio"),
    "deployment-scale": ("module", "gate.drivers.chaos.scale"),
    "pod-kill": ("chaosk8s", "chaosk8s.pod.actions.terminate_pods"),
}


def chaos_triples() -> dict[str, set[Triple]]:
    """Chaos action (rbac.chaos) → the RBAC triples its code sends."""
    out: dict[str, set[Triple]] = {}
    for name, (kind, where) in CHAOS_ACTIONS.items():
        if kind == "module":
            out[name] = module_chaos_triples(where)
        else:
            out[name] = _triples_of(chaosk8s_function_calls(where), None, None)
    return out


def rules_triples(rules: Iterable[dict[str, Any]]) -> set[Triple]:
    """The triples a list of RBAC PolicyRules grants."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def gate_drivers_files() -> list[Path]:
    """Every module under gate/drivers (for the check that nothing else calls the client)."""
    return sorted(Path(kube.__file__).parent.rglob("*.py"))
