"""The nginx router with a real nginx on loopback, in front of two tiny loopback upstreams that answer
with their track name and record every request they see (path and X-Traffic-Source)."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gate.drivers.nginx import NginxError, nginx_binary
from gate.drivers.routers import Router, RouterMisconfigured, RouterUnavailable, RouteState
from gate.drivers.routers.nginx import NginxRouter
from tests.support.ports import free_port, wait_port


def _have_nginx() -> bool:
    try:
        nginx_binary()
    except NginxError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _have_nginx(), reason="nginx is not installed (Debian package nginx)")


class Upstream:
    """A loopback HTTP server answering `track` and recording (method, path, X-Traffic-Source, body)."""

    def __init__(self, track: str) -> None:
        self.track = track
        self.seen: list[tuple[str, str, str | None, bytes]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in separate writes; without this, Nagle + delayed ACK add 40 ms.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with outer._lock:
                    outer.seen.append((self.command, self.path, self.headers.get("X-Traffic-Source"), body))
                payload = outer.track.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _answer
            do_POST = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, source: str | None = None, *, any_source: bool = False) -> int:
        with self._lock:
            return sum(1 for _, _, s, _ in self.seen if any_source or s == source)

    def clear(self) -> None:
        with self._lock:
            self.seen.clear()


@pytest.fixture
def upstreams() -> Iterator[tuple[Upstream, Upstream]]:
    stable, canary = Upstream("stable"), Upstream("canary")
    stable.thread.start()
    canary.thread.start()
    try:
        yield stable, canary
    finally:
        for u in (stable, canary):
            u.server.shutdown()
            u.server.server_close()


@pytest.fixture
def router(tmp_path: Path, upstreams: tuple[Upstream, Upstream]) -> Iterator[NginxRouter]:
    stable, canary = upstreams
    r = NginxRouter(tmp_path / "router", free_port(), stable.url, canary.url)
    try:
        r.start()
        wait_port(r.config.listen_port)
        yield r
    finally:
        r.stop()


def _get(url: str, path: str = "/", data: bytes | None = None) -> tuple[str, str]:
    """(body, X-Canary-Track) of one request on a fresh connection."""
    req = urllib.request.Request(url + path, data=data)
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.read().decode(), resp.headers.get("X-Canary-Track", "")


def _wait_for(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return bool(predicate())  # type: ignore[operator]


def test_is_a_router(router: NginxRouter) -> None:
    assert isinstance(router, Router)
    assert router.read() == RouteState(0, 0)


@pytest.mark.parametrize("weight", [0, 20, 100])
def test_weights_split_production_traffic(
    router: NginxRouter, upstreams: tuple[Upstream, Upstream], weight: int
) -> None:
    stable, canary = upstreams
    assert router.set_weight(weight) == RouteState(weight, 0)
    assert router.read() == RouteState(weight, 0)
    n = 200
    answers = [_get(router.url, f"/item/{i}") for i in range(n)]
    to_canary = sum(1 for body, _ in answers if body == "canary")
    # The body says who answered, the header says where nginx sent it: they must agree.
    assert all(body == track for body, track in answers)
    assert abs(to_canary - n * weight / 100) <= 0.05 * n, (weight, to_canary)
    if weight == 0:
        assert canary.count(any_source=True) == 0
    if weight == 100:
        assert stable.count(any_source=True) == 0
    # Production requests are not marked: only mirrored copies carry the shadow header.
    assert stable.count(None) + canary.count(None) == n
    log = router.access_log.read_text().splitlines()
    assert sum(1 for line in log if " canary " in line) == to_canary


def test_mirror_copies_to_canary_with_shadow_header(
    router: NginxRouter, upstreams: tuple[Upstream, Upstream]
) -> None:
    stable, canary = upstreams
    assert router.set_mirror(100) == RouteState(0, 100)
    n = 60
    for i in range(n):
        assert _get(router.url, f"/m/{i}", data=b"order=%d" % i)[0] == "stable"
    assert _wait_for(lambda: canary.count("shadow") >= n)
    assert canary.count("shadow") == n and canary.count(None) == 0
    assert stable.count(None) == n and stable.count("shadow") == 0
    # The copy is the same request: method, path and body.
    copies = sorted((m, p, b) for m, p, s, b in canary.seen)
    originals = sorted((m, p, b) for m, p, s, b in stable.seen)
    assert copies == originals
    assert router.read() == RouteState(0, 100)

    # A weight change keeps the mirror; a mirror change keeps the weight.
    assert router.set_weight(20) == RouteState(20, 100)
    assert router.set_mirror(0) == RouteState(20, 0)
    stable.clear()
    canary.clear()
    for i in range(50):
        _get(router.url, f"/off/{i}")
    time.sleep(0.3)  # copies arrive asynchronously; give any stray one time to show up
    assert canary.count("shadow") == 0
    assert canary.count(None) == 10  # 20 % of 50, nginx's weighted round robin is exact


def test_partial_mirror(router: NginxRouter, upstreams: tuple[Upstream, Upstream]) -> None:
    _, canary = upstreams
    router.set_mirror(30)
    n = 300
    for i in range(n):
        _get(router.url, f"/p/{i}")
    time.sleep(0.3)
    copies = canary.count("shadow")
    # Binomial(300, 0.3): mean 90, sd ~8; the bound is over 5 sd wide.
    assert 50 <= copies <= 130, copies
    assert router.read() == RouteState(0, 30)


def test_bad_config_is_rejected_and_changes_nothing(
    router: NginxRouter, upstreams: tuple[Upstream, Upstream], tmp_path: Path
) -> None:
    stable, _ = upstreams
    router.set_weight(20)
    before = router.server.conf_path.read_text()
    # Someone points the canary at a host nginx cannot resolve: `nginx -t` refuses the config.
    broken = NginxRouter(
        tmp_path / "router", router.config.listen_port, stable.url, "http://no-such-host.invalid:8080"
    )
    with pytest.raises(RouterMisconfigured, match="nginx -t rejected"):
        broken.set_weight(50)
    assert router.server.conf_path.read_text() == before
    assert router.read() == RouteState(20, 0)
    answers = [_get(router.url)[0] for _ in range(50)]
    assert answers.count("canary") == 10


def test_remove_sends_everything_to_stable(router: NginxRouter, upstreams: tuple[Upstream, Upstream]) -> None:
    _stable, canary = upstreams
    router.set_weight(50)
    router.set_mirror(100)
    router.remove()
    assert router.read() == RouteState(0, 0)
    canary.clear()
    for _ in range(30):
        assert _get(router.url)[0] == "stable"
    time.sleep(0.2)
    assert canary.count(any_source=True) == 0
    assert router.server.running()  # production traffic still flows through it


def test_finish_promoted_turns_the_mirror_off(
    router: NginxRouter, upstreams: tuple[Upstream, Upstream]
) -> None:
    stable, canary = upstreams
    router.set_mirror(100)
    router.set_weight(100)
    done = router.finish("promoted")
    assert done.done and done.state == RouteState(100, 0)
    assert "mirror /_gate_mirror" not in router.server.conf_path.read_text()
    stable.clear()
    canary.clear()
    for i in range(20):
        assert _get(router.url, f"/after/{i}", data=b"x")[0] == "canary"
    time.sleep(0.3)  # copies arrive asynchronously; give any stray one time to show up
    assert canary.count("shadow") == 0 and canary.count(None) == 20  # each request ran once
    conf = router.server.conf_path.stat().st_mtime_ns
    router.finish("promoted")  # idempotent: the config in effect is not rewritten
    assert router.server.conf_path.stat().st_mtime_ns == conf
    assert router.finish("rolled_back").state == RouteState(0, 0)
    assert _get(router.url)[0] == "stable"


def test_restart_resumes_the_recorded_state(
    router: NginxRouter, upstreams: tuple[Upstream, Upstream], tmp_path: Path
) -> None:
    stable, canary = upstreams
    router.set_weight(20)
    router.set_mirror(50)
    router.stop()
    with pytest.raises(RouterUnavailable, match="not running"):
        router.read()
    again = NginxRouter(tmp_path / "router", router.config.listen_port, stable.url, canary.url)
    try:
        assert again.start() == RouteState(20, 50)
        wait_port(again.config.listen_port)
        assert again.read() == RouteState(20, 50)
    finally:
        again.stop()


def test_refuses_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="plain http"):
        NginxRouter(tmp_path, free_port(), "https://127.0.0.1:1", "http://127.0.0.1:2")
    with pytest.raises(ValueError, match="no path"):
        NginxRouter(tmp_path, free_port(), "http://127.0.0.1:1/api", "http://127.0.0.1:2")
    with pytest.raises(ValueError, match="same address"):
        NginxRouter(tmp_path, free_port(), "http://127.0.0.1:1", "http://127.0.0.1:1/")
    with pytest.raises(ValueError, match="header name"):
        NginxRouter(tmp_path, free_port(), "http://127.0.0.1:1", "http://127.0.0.1:2", shadow_header="X;evil")
    r = NginxRouter(tmp_path, free_port(), "http://127.0.0.1:1", "http://127.0.0.1:2")
    for bad in (-1, 101, 2.5, True):
        with pytest.raises(ValueError):
            r.set_weight(bad)  # type: ignore[arg-type]
    assert not r.server.running()


def test_a_config_refused_at_reload_changes_nothing(
    router: NginxRouter, upstreams: tuple[Upstream, Upstream], tmp_path: Path
) -> None:
    stable, canary = upstreams
    router.set_weight(20)
    before = router.server.conf_path.read_text()
    # `nginx -t` does not bind ports, so a taken port only shows when nginx reloads.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        moved = NginxRouter(tmp_path / "router", taken.getsockname()[1], stable.url, canary.url)
        with pytest.raises(RouterMisconfigured, match="rejected the config at reload"):
            moved.set_weight(50)
    assert router.server.conf_path.read_text() == before
    assert router.read() == RouteState(20, 0)
    assert [_get(router.url)[0] for _ in range(10)].count("canary") == 2
