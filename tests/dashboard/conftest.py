"""The dashboard under test: the real app served by uvicorn on loopback, over a run store that the
real demo (`gate demo --quick`, its own process) writes while the tests read it, and headless
Debian Chromium driven by Playwright.

One demo run per session (about a minute); the tests that need it finished wait for it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from gate.dashboard.app import create_app
from gate.dashboard.settings import DashboardSettings
from gate.drivers.store import RunStore, RunSummary
from tests.support.ports import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def output_dir() -> Path:
    """Where the tests leave screenshots (GATE_TEST_OUTPUT, default test-output/ in the checkout)."""
    out = Path(os.environ.get("GATE_TEST_OUTPUT", ROOT / "test-output")) / "dashboard"
    out.mkdir(parents=True, exist_ok=True)
    return out


@dataclass
class Demo:
    """`gate demo --quick` running in its own process, recording into ``store``."""

    store: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def run_id(self, timeout: float = 60) -> str:
        """The demo's run id, as soon as the demo has recorded it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.store.exists():
                with RunStore(self.store) as s:
                    runs = [r for r in s.list_runs(limit=5) if r.contract_name == "checkout-local"]
                if runs:
                    return runs[-1].id
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"the demo recorded no run: {self.log.read_text()[-2000:]}")

    def wait(self, timeout: float = 240) -> str:
        """Wait for the demo to finish; its run id."""
        rid = self.run_id()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()  # the demo aborts its rollout and stops its processes on SIGTERM
            self.proc.wait(60)
            raise
        # 0 promoted as the scenario expects; 1 when a loaded machine made the good canary look worse
        # (the demo's own tests judge that): either way the run is recorded to the end.
        assert self.proc.returncode in (0, 1), self.log.read_text()[-3000:]
        return rid

    def final(self) -> RunSummary:
        """The demo run's last recorded summary (after ``wait``)."""
        with RunStore(self.store) as s:
            detail = s.run_detail(self.wait())
        assert detail is not None
        return detail.summary


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    work = tmp_path_factory.mktemp("dashboard-demo")
    store = work / "runs.sqlite"
    log = work / "demo.log"
    gate_bin = Path(sys.executable).with_name("gate")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(gate_bin), "demo", "--quick", "--store", str(store)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=work,
            env={**os.environ, "COLUMNS": "120"},
        )
    try:
        yield Demo(store, proc, log)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@dataclass
class Served:
    """A dashboard served by uvicorn in a thread."""

    url: str
    app: Any
    token: str
    reviewer: str


def serve(store: RunStore, tokens: Path, **settings: Any) -> Iterator[Served]:
    token = secrets.token_urlsafe(24)
    tokens.write_text(f"# reviewers\n{token} alice@example.com\n")
    port = free_port()
    app = create_app(
        DashboardSettings(
            store=f"sqlite:///{store.path}",
            dashboard_tokens_file=tokens,
            dashboard_poll_interval=0.3,
            **{"dashboard_public_read": True, **settings},
        ),
        store=store,
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    try:
        wait_port(port)
        yield Served(f"http://127.0.0.1:{port}", app, token, "alice@example.com")
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def dashboard(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The dashboard over the demo's store (opened while the demo writes it)."""
    demo.run_id()
    store = RunStore(demo.store)
    try:
        yield from serve(store, tmp_path_factory.mktemp("tokens") / "tokens")
    finally:
        store.close()


# Package scope, not session: Playwright's sync API keeps an event loop running on this thread
# while it is open, so every later test calling asyncio.run() would fail ("cannot be called from a
# running event loop"). It is closed when the last dashboard test is done.
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (/usr/bin/chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
    pg.errors = errors
    try:
        yield pg
    finally:
        context.close()
    assert not errors, errors  # no script error, and no script from a record ever ran


def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout:g}s: {what}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "dashboard_live: watches the demo while it runs (ordered first)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The live test must see the demo running: it goes before every other test that uses the demo.
    live = [i for i in items if i.get_closest_marker("dashboard_live")]
    if live:
        first = min(items.index(i) for i in items if "tests/dashboard" in str(i.fspath))
        rest = [i for i in items if i not in live]
        items[:] = rest[:first] + live + rest[first:]


@pytest.fixture(scope="session")
def reviews(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, RunStore]]:
    """A dashboard over a store of its own, where the tests start runs of the real engine (the
    demo's store is only read: the demo process is its one writer)."""
    work = tmp_path_factory.mktemp("dashboard-reviews")
    store = RunStore(work / "runs.sqlite")
    try:
        for served in serve(store, work / "tokens"):
            yield served, store
    finally:
        store.close()
