"""Load at scale end to end: the real `gate operator` process (GATE_LOAD_IMAGE set, one local worker)
against the emulated API server, a gate whose load asks for two workers. The operator runs the load as
Jobs; a test-side kubelet (tests/support/kubelet.py) runs their pods as real Locust processes against
real loopback services and serves the master's log."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gate.drivers import kube
from gate.drivers.load.cluster import RUN_LABEL
from gate.drivers.store import RunStore
from tests.drivers.load.conftest import Services, start_service
from tests.operator.conftest import Operators, gate_ref, wait_for
from tests.operator.emulator import EmulatorThread
from tests.support.kubelet import Kubelet
from tests.support.prom import live_prometheus

ROUTE = kube.ObjectRef(kube.HTTPROUTE, "shop", "checkout")
CANARY = kube.ObjectRef(kube.DEPLOYMENT, "shop", "checkout-canary")


@pytest.fixture
def services() -> Iterator[Services]:
    procs: list[subprocess.Popen[bytes]] = []
    urls = {}
    try:
        for track in ("stable", "canary"):
            proc, url = start_service(track)
            procs.append(proc)
            urls[track] = url
        yield Services(urls)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)


LOCUSTFILE = """\
from locust import HttpUser, constant, task


class Shopper(HttpUser):
    wait_time = constant(0.02)  # below saturation on a shared 2-core machine

    @task
    def home(self):
        self.client.get("/")
"""


def _spec(services: Services, prometheus: str, locustfile: Path) -> dict[str, Any]:
    return {
        # An empty real Prometheus: the only evidence is the load's own (the Jobs' Locust).
        "prometheus": {"url": prometheus, "scrapeInterval": "1s"},
        "target": {
            "stable": {
                "service": "checkout-stable",
                "deployment": "checkout",
                "url": services.urls["stable"],
            },
            "canary": {
                "service": "checkout-canary",
                "deployment": "checkout-canary",
                "url": services.urls["canary"],
            },
        },
        "router": {"type": "gateway-api", "httpRoute": "checkout"},
        "load": {
            "users": 4,
            "spawnRate": "100/s",
            "duration": "4s",
            "workers": 2,
            # A user's own locustfile travels to the pods in the plan's ConfigMap.
            "locustfile": str(locustfile),
        },
        "objectives": [
            {
                "sli": "http-error-ratio",
                "max": "5%",
                "sources": ["synthetic"],
                "minEvidence": {"requests": 20, "duration": "2s"},
            }
        ],
        "steps": ["20%", "load 4s", "100%"],
        "policy": {"interval": "1s"},
    }


def _load_objects(emulator: EmulatorThread) -> list[str]:
    em = emulator.emulator
    assert em is not None

    def find() -> list[str]:
        out = []
        for (res, ns, name), obj in list(em.objects.items()):
            if obj.deleted:
                continue
            labels = (obj.raw.get("metadata") or {}).get("labels") or {}
            if RUN_LABEL in labels:
                out.append(f"{res.plural} {ns}/{name}")
        return out

    return emulator.call(find)  # type: ignore[no-any-return]


def test_the_operator_runs_a_gates_load_as_jobs_and_deletes_them(
    emulator: EmulatorThread,
    client: kube.KubeClient,
    operators: Operators,
    services: Services,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client.create(
        ROUTE,
        {"spec": {"rules": [{"backendRefs": [{"name": "checkout-stable", "port": 8080, "weight": 100}]}]}},
    )
    client.create(
        CANARY,
        {"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "app", "image": "c:2"}]}}}},
    )
    monkeypatch.setenv("GATE_LOAD_IMAGE", "gate:test")  # the operator process inherits them
    monkeypatch.setenv("GATE_LOAD_LOCAL_WORKERS", "1")
    with (
        live_prometheus(tmp_path / "prom") as prom,
        Kubelet(emulator, "shop", tmp_path / "kubelet") as kubelet,
    ):
        op = operators.start()
        locustfile = tmp_path / "shop_locust.py"
        locustfile.write_text(LOCUSTFILE)
        client.create(gate_ref(), {"spec": _spec(services, prom.url, locustfile)})

        def said() -> str:
            return f"{op.tail()}\nstatus: {client.get(gate_ref()).get('status')}\nkubelet: {kubelet.errors}"

        wait_for(lambda: len(kubelet.running()) == 3, 60, said)  # the master and two workers
        assert _load_objects(emulator)  # labelled with the run
        status = wait_for(
            lambda: (
                (s := client.get(gate_ref()).get("status") or {}).get("phase")
                in ("Promoted", "RolledBack", "Failed", "Held")
                and s
            ),
            90,
            said,
        )
        assert status["phase"] == "Promoted", status.get("message")
        wait_for(lambda: not _load_objects(emulator), 30, lambda: str(_load_objects(emulator)))
        wait_for(lambda: not kubelet.running(), 30)
        roles = sorted(p.role for p in kubelet.history)
        assert roles == ["master", "worker", "worker"]
        # The decisive look judged the load's own evidence (Prometheus is empty): the Jobs' Locust
        # counted requests the services saw.
        with RunStore(operators.tmp / "runs.sqlite") as store:
            detail = store.run_detail(status["runId"])
        assert detail is not None and detail.looks
        look = detail.looks[-1]
        assert [(v.source, v.status) for v in look.verdicts] == [("synthetic", "pass")]
        for track in ("stable", "canary"):
            counted = look.evidence["http-error-ratio"]["synthetic"][track]
            seen = services.seen(track)["sources"].get("synthetic", 0)
            assert 20 < counted["n"] <= seen and counted["errors"] == 0, (counted, seen)


def test_after_an_operator_restart_the_runs_leftover_jobs_are_deleted(
    emulator: EmulatorThread,
    client: kube.KubeClient,
    operators: Operators,
    services: Services,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The load of a step does not survive its operator (as a local Locust does not): the operator that
    resumes the run finds the Jobs by the run's label and deletes them."""
    client.create(
        ROUTE,
        {"spec": {"rules": [{"backendRefs": [{"name": "checkout-stable", "port": 8080, "weight": 100}]}]}},
    )
    client.create(
        CANARY,
        {"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "app", "image": "c:2"}]}}}},
    )
    monkeypatch.setenv("GATE_LOAD_IMAGE", "gate:test")
    monkeypatch.setenv("GATE_LOAD_LOCAL_WORKERS", "1")
    with (
        live_prometheus(tmp_path / "prom") as prom,
        Kubelet(emulator, "shop", tmp_path / "kubelet") as kubelet,
    ):
        first = operators.start(name="first")
        locustfile = tmp_path / "shop_locust.py"
        locustfile.write_text(LOCUSTFILE)
        spec = _spec(services, prom.url, locustfile)
        spec["load"]["duration"] = "60s"
        spec["steps"] = ["20%", "load 60s", "100%"]
        client.create(gate_ref(), {"spec": spec})
        wait_for(lambda: len(kubelet.running()) == 3, 60, first.tail)
        left = _load_objects(emulator)
        assert left
        run_id = (client.get(gate_ref()).get("status") or {}).get("runId")
        first.kill()  # SIGKILL mid-step: the Jobs stay behind
        assert _load_objects(emulator) == left
        second = operators.start(name="second")
        wait_for(
            lambda: not _load_objects(emulator), 30, lambda: second.tail() + str(_load_objects(emulator))
        )
        wait_for(lambda: not kubelet.running(), 30)
        status = client.get(gate_ref()).get("status") or {}
        # The same run, resumed in its step (not started again, so no new Jobs either).
        assert status.get("runId") == run_id and status.get("stepLabel") == "2/3 load 1m", status
        assert sorted(p.role for p in kubelet.history) == ["master", "worker", "worker"]
