"""The demo topology on loopback: everything `gate demo` needs, started and stopped by pid.

    production users ──► nginx router ──(weight)──► checkout stable ──┐
                              │  └─────(weight)──► checkout canary ──┤──► fault proxy ──► risk-api
                              └──(mirror, shadow)──► checkout canary ─┘
    Locust (gate's synthetic load) ──► stable and canary directly
    Prometheus ──(every 1 s)──► stable, canary, risk-api

`Topology` is a context manager: on leaving it — normally, on an error or on Ctrl-C — every process
it started is stopped, in reverse order, each by its own pid. A half-started topology is taken down
before the error propagates.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

import httpx

from gate.demo.procs import ChildProcess, DemoProcessError, free_port
from gate.drivers.chaos.faultproxy import FaultProxy
from gate.drivers.nginx import NginxError
from gate.drivers.process import tied_tree
from gate.drivers.promserver import PrometheusServer, PromServerError, ScrapeJob, scrape_config
from gate.drivers.routers.base import RouterError
from gate.drivers.routers.nginx import NginxRouter

Scenario = Literal["good", "regression", "leak"]
SCENARIOS: tuple[Scenario, ...] = ("good", "regression", "leak")
DEPENDENCY = "risk-api"

# How each scenario's canary differs from stable (the version's behaviour, set at start).
CANARY_FLAGS: dict[Scenario, list[str]] = {
    "good": [],
    "regression": ["--latency-factor", "1.25"],
    "leak": ["--leak"],
}


@dataclass
class TopologyConfig:
    """What to bring up. Defaults suit the demo; tests shorten nothing here but the users' rate."""

    scenario: Scenario = "good"
    workdir: Path | None = None
    scrape_interval: float = 1.0
    users_rate: float = 100.0
    users_duration: float = 900.0
    seed: int | None = None
    keep_workdir: bool = False


@dataclass
class Topology:
    """The running demo: URLs of every part, and `stop()` that always takes all of it down."""

    config: TopologyConfig = field(default_factory=TopologyConfig)
    workdir: Path = field(init=False)
    prometheus: PrometheusServer | None = field(default=None, init=False)
    proxy: FaultProxy | None = field(default=None, init=False)
    router: NginxRouter | None = field(default=None, init=False)
    children: dict[str, ChildProcess] = field(default_factory=dict, init=False)
    ports: dict[str, int] = field(default_factory=dict, init=False)
    _own_workdir: bool = field(default=False, init=False)
    _stops: list[tuple[str, Callable[[], None]]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if self.config.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="gate-demo-"))
            self._own_workdir = not self.config.keep_workdir
        else:
            self.workdir = Path(self.config.workdir)
            self.workdir.mkdir(parents=True, exist_ok=True)

    # -- addresses ---------------------------------------------------------------------------------

    def url(self, part: str) -> str:
        """Base URL of a part: prometheus, stable, canary, dependency, proxy, proxy_admin, router."""
        return f"http://127.0.0.1:{self.ports[part]}"

    @property
    def stable_url(self) -> str:
        return self.url("stable")

    @property
    def canary_url(self) -> str:
        return self.url("canary")

    @property
    def router_url(self) -> str:
        return self.url("router")

    @property
    def prometheus_url(self) -> str:
        return self.url("prometheus")

    @property
    def fault_admin_url(self) -> str:
        return self.url("proxy_admin")

    # -- life cycle ---------------------------------------------------------------------------------

    def start(self, on_step: Callable[[str], None] | None = None) -> Topology:
        """Bring every part up, in dependency order; on any failure take down what started, then raise."""
        if self._stops:
            return self  # already up (``with topology.start(...):`` enters a started topology)
        say = on_step or (lambda _msg: None)
        try:
            with tied_tree():  # every process of the demo dies with it, even on SIGKILL
                self._start_parts(say)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_parts(self, say: Callable[[str], None]) -> None:
        self._on_free_ports(("prometheus",), self._start_prometheus)
        say(f"prometheus      {self.prometheus_url}  (scrapes every {self.config.scrape_interval:g}s)")
        self._on_free_ports(
            ("dependency",), lambda: self._start_service("dependency", ["--role", "risk-api"])
        )
        self._on_free_ports(("proxy", "proxy_admin"), self._start_proxy)
        say(f"{DEPENDENCY:<15} {self.url('dependency')}  behind the fault proxy {self.url('proxy')}")
        stable_args = ["--track", "stable", "--downstream", self.url("proxy")]
        self._on_free_ports(("stable",), lambda: self._start_service("stable", stable_args))
        canary_flags = CANARY_FLAGS[self.config.scenario]
        canary_args = ["--track", "canary", "--downstream", self.url("proxy"), *canary_flags]
        self._on_free_ports(("canary",), lambda: self._start_service("canary", canary_args))
        say(f"checkout stable {self.stable_url}")
        say(f"checkout canary {self.canary_url}  {' '.join(canary_flags) or '(same as stable)'}")
        # Prometheus learns the services' addresses only now that they are known and bound.
        self._scrape_services()
        self._on_free_ports(("router",), self._start_router)
        say(f"nginx router    {self.router_url}  (canary weight 0, mirror off)")
        self._start_users()
        say(f"production      {self.config.users_rate:g} requests/s through the router")

    def _on_free_ports(self, names: tuple[str, ...], start: Callable[[], None], attempts: int = 4) -> None:
        """Pick free ports and start a part on them; when another program took a port in between
        (this machine runs many tests at once), pick new ports and try again."""
        for attempt in range(attempts):
            for name in names:
                self.ports[name] = free_port()
            try:
                start()
                return
            except (DemoProcessError, PromServerError, NginxError, RouterError, TimeoutError):
                if attempt == attempts - 1:
                    raise

    def _scrape_jobs(self) -> list[ScrapeJob]:
        jobs = [ScrapeJob("gate-demo-prometheus", [f"127.0.0.1:{self.ports['prometheus']}"])]
        if "canary" in self.ports:
            # One job per track, as a Deployment per track would give: process_* series (which carry
            # no track label of their own) are told apart by `job`.
            jobs += [
                ScrapeJob(f"checkout-{track}", [f"127.0.0.1:{self.ports[track]}"])
                for track in ("stable", "canary")
            ]
            jobs.append(ScrapeJob(DEPENDENCY, [f"127.0.0.1:{self.ports['dependency']}"]))
        return jobs

    def _start_prometheus(self) -> None:
        server = PrometheusServer(
            data_dir=self.workdir / "prometheus",
            port=self.ports["prometheus"],
            config=scrape_config(self._scrape_jobs(), scrape_interval=self.config.scrape_interval),
        )
        self._stops.append(("prometheus", server.stop))
        server.start()
        self.prometheus = server

    def _scrape_services(self) -> None:
        assert self.prometheus is not None
        self.prometheus.reload(
            scrape_config(self._scrape_jobs(), scrape_interval=self.config.scrape_interval)
        )

    def _start_service(self, name: str, args: list[str]) -> None:
        seed = [] if self.config.seed is None else ["--seed", str(self.config.seed + len(self.children))]
        child = ChildProcess(
            name=name,
            module="gate.demo.service",
            args=["--port", str(self.ports[name]), *args, *seed],
            log_path=self.workdir / f"{name}.log",
            health_url=f"{self.url(name)}/healthz",
        )
        self._stops.append((name, child.stop))
        self.children[name] = child
        child.start()

    def _start_proxy(self) -> None:
        proxy = FaultProxy(
            self.workdir / "fault-proxy",
            listen_port=self.ports["proxy"],
            upstream_url=self.url("dependency"),
            admin_port=self.ports["proxy_admin"],
            target=DEPENDENCY,
        )
        self._stops.append(("fault proxy", proxy.stop))
        proxy.start()
        self.proxy = proxy
        _wait_http(f"{self.url('proxy')}/healthz")

    def _start_router(self) -> None:
        router = NginxRouter(
            self.workdir / "router",
            listen_port=self.ports["router"],
            stable_url=self.stable_url,
            canary_url=self.canary_url,
        )
        self._stops.append(("router", router.stop))
        router.start()
        self.router = router
        _wait_http(f"{self.router_url}/healthz")

    def _start_users(self) -> None:
        seed = [] if self.config.seed is None else ["--seed", str(self.config.seed)]
        child = ChildProcess(
            name="users",
            module="gate.demo.users",
            args=[
                "--url",
                self.router_url,
                "--rate",
                str(self.config.users_rate),
                "--duration",
                str(self.config.users_duration),
                *seed,
            ],
            log_path=self.workdir / "users.log",
        )
        self._stops.append(("users", child.stop))
        self.children["users"] = child
        child.start()

    def stop(self) -> list[str]:
        """Stop everything started, newest first; every stop is attempted. Returns what failed to stop."""
        problems: list[str] = []
        while self._stops:
            name, stop = self._stops.pop()
            try:
                stop()
            except Exception as exc:  # one part refusing to stop must not leave the others running
                problems.append(f"{name}: {exc}")
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return problems

    def pids(self) -> dict[str, int]:
        """Pids of the parts that run now (for the demo's closing check that nothing is left)."""
        found: dict[str, int] = {}
        if self.prometheus is not None and (pid := self.prometheus.pid()) is not None:
            found["prometheus"] = pid
        if self.proxy is not None and (pid := self.proxy.pid()) is not None:
            found["fault proxy"] = pid
        if self.router is not None and (pid := self.router.server.pid()) is not None:
            found["router"] = pid
        for name, child in self.children.items():
            if child.pid is not None:
                found[name] = child.pid
        return found

    def __enter__(self) -> Topology:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- switches --------------------------------------------------------------------------------------

    def set_switch(self, track: str, **values: float | bool) -> dict[str, object]:
        """Turn a fault switch of one track's service on (``latency_factor=2`` etc.)."""
        resp = httpx.post(f"{self.url(track)}/__switch", json=values, timeout=5.0)
        resp.raise_for_status()
        result: dict[str, object] = resp.json()
        return result

    def clear_switch(self, track: str) -> None:
        """Clear every fault switch of one track's service."""
        with contextlib.suppress(httpx.HTTPError):
            httpx.delete(f"{self.url(track)}/__switch", timeout=5.0)


def _wait_http(url: str, timeout: float = 10.0) -> None:
    """Wait until something answers HTTP at `url` (any status: the listener is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing answered {url} within {timeout:g}s")
