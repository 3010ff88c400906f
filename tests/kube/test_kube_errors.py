"""The kube driver against the emulator over real HTTP: every failure is gate's PermanentError or
TemporaryError naming the verb, the object and the fix; the driver makes one attempt per call, and
the one retry policy (gate.errors.retry_call) decides what is tried again."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from gate.drivers import kube
from gate.drivers.routers import RouterMisconfigured, RouterUnavailable
from gate.drivers.routers.gateway_api import BackendRef, GatewayApiRouter, HttpRouteTarget
from gate.errors import PermanentError, RetryPolicy, TemporaryError, retry_call
from tests.support.kube import RunningKube
from tests.support.ports import free_port

R = "gateway.networking.k8s.io/v1/httproutes"
REF = kube.ObjectRef(kube.HTTPROUTE, "shop", "checkout")
TARGET = HttpRouteTarget("shop", "checkout", BackendRef("checkout"), BackendRef("checkout-canary"))
ROUTE: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "checkout", "namespace": "shop"},
    "spec": {"rules": [{"backendRefs": [{"name": "checkout", "port": 8080}]}]},
}
FAST = RetryPolicy(attempts=4, total=10, initial=0.001, maximum=0.01)


@pytest.fixture
def client(kube_api: RunningKube) -> kube.KubeClient:
    kube_api.seed(R, "shop", "checkout", ROUTE)
    return kube.connect(host=kube_api.url, timeout=2)


@pytest.mark.parametrize(
    ("status", "error", "permanent", "fix"),
    [
        (
            403,
            kube.KubeForbiddenError,
            True,
            r"grant gate's identity `patch` on httproutes .*docs/kubernetes\.md#rbac",
        ),
        (404, kube.KubeNotFoundError, True, r"create HTTPRoute shop/checkout, or fix its name"),
        (422, kube.KubeInvalidError, True, r"refused the HTTPRoute"),
        (409, kube.KubeConflictError, False, r"reads it again"),
        (429, kube.KubeUnavailableError, False, r"throttling"),
        (503, kube.KubeUnavailableError, False, r"retries"),
    ],
)
def test_each_answer_is_permanent_or_temporary_with_verb_object_and_fix(
    kube_api: RunningKube, client: kube.KubeClient, status: int, error: type, permanent: bool, fix: str
) -> None:
    kube_api.emulator.fail(status, verb="patch", times=100, retry_after=1 if status == 429 else None)
    with pytest.raises(error) as info:
        client.patch(REF, {"metadata": {"labels": {"a": "b"}}})
    exc = info.value
    assert isinstance(exc, PermanentError if permanent else TemporaryError)
    assert exc.status == status
    assert str(exc).startswith(f"cannot patch HTTPRoute shop/checkout: {status} ")
    assert re.search(fix, exc.hint), exc.hint
    if status == 429:
        assert exc.delay == 1.0
    # Through the one retry policy: a permanent error is tried once, a temporary one to the budget.
    before = len(kube_api.emulator.calls_of("patch"))
    with pytest.raises(error):
        retry_call(lambda: client.patch(REF, {"metadata": {"labels": {"a": "b"}}}), policy=FAST)
    attempts = len(kube_api.emulator.calls_of("patch")) - before
    assert attempts == (1 if permanent else FAST.attempts)
    assert "labels" not in kube_api.stored(R, "shop", "checkout")["metadata"]  # nothing applied


def test_router_errors_keep_the_kind_and_the_fix(kube_api: RunningKube, client: kube.KubeClient) -> None:
    router = GatewayApiRouter(client, TARGET)
    kube_api.emulator.deny("patch", "httproutes", group="gateway.networking.k8s.io")
    with pytest.raises(RouterMisconfigured) as info:
        router.set_weight(20)
    assert info.value.permanent
    assert "403" in str(info.value) and "grant gate's identity `patch` on httproutes" in str(info.value)
    kube_api.emulator.denied.clear()
    kube_api.emulator.fail(503, verb="get")
    with pytest.raises(RouterUnavailable) as tmp:
        router.set_weight(20)
    assert not tmp.value.permanent
    assert retry_call(lambda: router.set_weight(20), policy=FAST).canary_weight == 20


def test_a_frozen_api_server_is_a_timeout_then_works_again(
    kube_api: RunningKube, client: kube.KubeClient
) -> None:
    router = GatewayApiRouter(client, TARGET)
    kube_api.freeze(30)
    started = time.monotonic()
    with pytest.raises(RouterUnavailable, match=r"did not answer within 2s") as info:
        router.set_weight(20)
    assert isinstance(info.value.__cause__, kube.KubeUnavailableError)
    assert time.monotonic() - started < 10  # bounded by the request timeout, not by the freeze
    kube_api.thaw()
    assert retry_call(lambda: router.set_weight(20), policy=FAST).canary_weight == 20


def test_unreachable_api_server_is_temporary_and_tried_once_per_call() -> None:
    client = kube.connect(host=f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(kube.KubeUnavailableError, match="did not answer") as info:
        client.get(REF)
    assert not info.value.permanent
    with pytest.raises(RouterUnavailable):
        GatewayApiRouter(client, TARGET).set_weight(0)


def test_no_configuration_names_every_way_to_give_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(kube.KubeConfigError) as info:
        kube.connect()
    assert info.value.permanent
    text = str(info.value)
    for way in ("--kubeconfig", "KUBECONFIG", "in-cluster"):
        assert way in text
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(kube.KubeConfigError, match=r"missing \(KUBECONFIG\) does not exist"):
        kube.connect()
    with pytest.raises(kube.KubeConfigError, match=r"\(--kubeconfig\) does not exist"):
        kube.connect(kube.KubeOptions(kubeconfig=str(tmp_path / "nope")))


def test_kubeconfig_context_and_namespace(
    kube_api: RunningKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    kube_api.seed(R, "shop", "checkout", ROUTE)
    config = kube_api.kubeconfig(tmp_path / "config", context="emu", namespace="shop")
    client = kube.connect(kube.KubeOptions(kubeconfig=str(config), context="emu"))
    assert client.namespace == "shop"  # the context's namespace is the default
    assert client.get(REF)["metadata"]["name"] == "checkout"
    assert kube.connect(kube.KubeOptions(kubeconfig=str(config), namespace="other")).namespace == "other"
    with pytest.raises(kube.KubeConfigError, match=r"context 'nope'") as info:
        kube.connect(kube.KubeOptions(kubeconfig=str(config), context="nope"))
    assert "--context" in info.value.hint
    monkeypatch.setenv("KUBECONFIG", str(config))
    assert kube.connect().get(REF)["metadata"]["namespace"] == "shop"


def test_access_review(kube_api: RunningKube, client: kube.KubeClient) -> None:
    kube_api.emulator.deny("patch", "httproutes", group="gateway.networking.k8s.io", namespace="shop")
    assert client.allowed("get", kube.HTTPROUTE, "shop")[0]
    allowed, reason = client.allowed("patch", kube.HTTPROUTE, "shop")
    assert not allowed and reason


def test_rate_limit_paces_requests() -> None:
    now = [0.0]
    rate = kube.RateLimit(10, 2, clock=lambda: now[0])
    assert [rate.wait_time() for _ in range(2)] == [0.0, 0.0]  # the burst
    assert rate.wait_time() == pytest.approx(0.1)
    now[0] += 1.0
    assert rate.wait_time() == 0.0
    assert kube.RateLimit(0, 1).wait_time() == 0.0  # 0 qps: unlimited


def test_nothing_is_written_when_nothing_changes(kube_api: RunningKube, client: kube.KubeClient) -> None:
    client.modify(REF, lambda obj: obj)
    assert kube_api.emulator.calls_of("patch") == []


def test_only_the_kube_driver_imports_the_kubernetes_client() -> None:
    # import-linter's forbidden contract cannot cover gate.drivers.routers (they reach the client
    # through gate.drivers.kube, an allowed indirect import); this checks the direct imports.
    root = Path(__file__).resolve().parents[2] / "gate"
    pattern = re.compile(r"^\s*(import kubernetes|from kubernetes\b)", re.MULTILINE)
    offenders = [
        str(p.relative_to(root.parent))
        for p in root.rglob("*.py")
        if p != root / "drivers" / "kube.py" and pattern.search(p.read_text())
    ]
    assert offenders == []


def test_retry_inside_the_driver_is_gone() -> None:
    source = (Path(__file__).resolve().parents[2] / "gate" / "drivers" / "kube.py").read_text()
    assert "time.sleep(" not in source.replace("sleep: Callable[[float], None] = time.sleep", "")
    assert "for n in range" not in source


def test_router_for_without_credentials_is_a_permanent_router_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from gate.contract import parse_contract
    from gate.drivers.routers import RouterError, router_for

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    contract = parse_contract(
        "apiVersion: perfgate.dev/v1alpha1\nkind: PerformanceContract\nmetadata: {name: c, namespace: shop}\n"
        "spec:\n  target: {stable: {service: a}, canary: {service: b}}\n"
        "  router: {type: gateway-api, httpRoute: r}\n"
    )
    with pytest.raises(RouterError) as info:  # what `gate run` catches today: exit 2, no traceback
        router_for(contract)
    assert info.value.permanent and "--kubeconfig" in str(info.value)
    assert isinstance(info.value.__cause__, kube.KubeConfigError)
