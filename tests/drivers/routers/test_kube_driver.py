"""The kube driver against kmock's emulator over real HTTP: errors become gate's hierarchy (cause
chained), temporary ones are retried within bounds, permanent ones are not."""

from __future__ import annotations

import kmock
import pytest

from gate.drivers import kube
from gate.drivers.routers import RouterMisconfigured, RouterUnavailable
from gate.drivers.routers.gateway_api import GatewayApiRouter
from tests.drivers.routers import test_gateway_api
from tests.drivers.routers.kubeemu import RunningEmulator
from tests.support.ports import free_port

REF = kube.ObjectRef(kube.HTTPROUTE, "shop", "checkout")


def _error(status: int, reason: str) -> kmock.KubernetesError:
    return kmock.KubernetesError(
        status=status, reason=reason, message=f"{reason} (from the test)", details={}
    )


def test_temporary_failures_are_retried(env: RunningEmulator, client: kube.KubeClient) -> None:
    env.emulator.seed(test_gateway_api.R, "shop", "checkout", test_gateway_api.SEED)
    env.call(lambda: env.emulator["get"][:2] << _error(503, "ServiceUnavailable"))
    assert client.read(REF)["metadata"]["name"] == "checkout"
    assert len(env.emulator["get"]) == 3


def test_permanent_failures_are_not_retried(env: RunningEmulator, client: kube.KubeClient) -> None:
    env.emulator.seed(test_gateway_api.R, "shop", "checkout", test_gateway_api.SEED)
    env.call(lambda: env.emulator["get"] << _error(403, "Forbidden"))
    with pytest.raises(kube.KubeForbiddenError, match="403 Forbidden") as info:
        client.read(REF)
    assert info.value.status == 403
    assert len(env.emulator["get"]) == 1
    router = GatewayApiRouter(client, test_gateway_api.TARGET)
    with pytest.raises(RouterMisconfigured, match=r"RBAC rules in docs/routers\.md"):
        router.read()


def test_not_found_and_already_exists(env: RunningEmulator, client: kube.KubeClient) -> None:
    with pytest.raises(kube.KubeNotFoundError):
        client.get(REF)
    client.create(REF, {"spec": {"rules": []}})
    with pytest.raises(kube.KubeAlreadyExistsError):
        client.create(REF, {"spec": {"rules": []}})
    client.delete(REF)
    with pytest.raises(kube.KubeNotFoundError):
        client.get(REF)


def test_unreachable_api_server_is_temporary() -> None:
    client = kube.connect(
        host=f"http://127.0.0.1:{free_port()}", timeout=2, retry=kube.Retry(attempts=3, base_delay=0.01)
    )
    with pytest.raises(kube.KubeUnavailableError, match="gave up after 3 attempts") as info:
        client.read(REF)
    assert isinstance(info.value.__cause__, kube.KubeUnavailableError)
    router = GatewayApiRouter(client, test_gateway_api.TARGET)
    with pytest.raises(RouterUnavailable):
        router.set_weight(0)


def test_no_configuration_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(kube.KubePermanentError, match="no usable Kubernetes configuration"):
        kube.connect()


def test_only_the_kube_driver_imports_the_kubernetes_client() -> None:
    # import-linter's forbidden contract cannot cover gate.drivers.routers (they reach the client
    # through gate.drivers.kube, an allowed indirect import); this checks the direct imports.
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "gate"
    pattern = re.compile(r"^\s*(import kubernetes|from kubernetes\b)", re.MULTILINE)
    offenders = [
        str(p.relative_to(root.parent))
        for p in root.rglob("*.py")
        if p != root / "drivers" / "kube.py" and pattern.search(p.read_text())
    ]
    assert offenders == []


def test_a_plain_kmock_409_reaction_is_retried(env: RunningEmulator, client: kube.KubeClient) -> None:
    # kmock applies a patch before its reactions answer: the 409 comes back although the write went
    # through. Gate reads again, finds its edit in place and sends nothing more (its edits are
    # idempotent). reject_patches() and interfere() test real refusals and lost-update safety.
    env.emulator.seed(test_gateway_api.R, "shop", "checkout", test_gateway_api.SEED)
    env.call(lambda: env.emulator["patch"][:1] << _error(409, "Conflict"))
    router = GatewayApiRouter(client, test_gateway_api.TARGET)
    assert router.set_weight(35).canary_weight == 35
    assert len(env.emulator["patch"]) == 1
    assert len(env.emulator["get"]) == 2  # read, 409, read again: nothing left to change
    assert router.read().canary_weight == 35


def test_list_and_status(env: RunningEmulator, client: kube.KubeClient) -> None:
    for name, team in (("a", "x"), ("b", "y")):
        obj = {"metadata": {"name": name, "namespace": "shop", "labels": {"team": team}}, "spec": {}}
        env.emulator.seed(test_gateway_api.R, "shop", name, obj)
    names = sorted(o["metadata"]["name"] for o in client.list(kube.HTTPROUTE, "shop"))
    assert names == ["a", "b"]
    ref = kube.ObjectRef(kube.HTTPROUTE, "shop", "a")
    client.patch_status(ref, {"status": {"phase": "Promoting"}})
    assert client.get(ref)["status"] == {"phase": "Promoting"}
