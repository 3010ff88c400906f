"""A stand-in Gateway API data plane for tests: real HTTP requests split by an HTTPRoute's weights.

`StandInGateway(kube, namespace, route, backends)` listens on loopback and, for every request, reads
the HTTPRoute from the emulator (tests/support/kube.py; the route as the API server has it now, no
cache), picks the rule whose PathPrefix matches best, sends the request to one of the rule's
backendRefs by weight (smooth weighted round robin: exact shares, no randomness), and — when the
rule has a `RequestMirror` filter — sends a copy to the mirror backend with `X-Traffic-Source: shadow`
(its `percent` sampled by a counter), dropping the copy's answer, as a gateway does. Every answer
carries `X-Canary-Track: <backend Service name>`.

`Backend` is a loopback HTTP server standing for one Service's pods: it answers its name and records
(method, path, X-Traffic-Source) of each request.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.kube import RunningKube

ROUTE = "gateway.networking.k8s.io/v1/httproutes"


class Backend:
    """One Service's pods: answers its name, records every request."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[tuple[str, str, str | None]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with outer._lock:
                    outer.seen.append((self.command, self.path, self.headers.get("X-Traffic-Source")))
                payload = outer.name.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, source: str | None = None) -> int:
        with self._lock:
            return sum(1 for _, _, s in self.seen if s == source)

    def clear(self) -> None:
        with self._lock:
            self.seen.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class StandInGateway:
    """Routes real requests by the HTTPRoute the emulator holds (see the module's docstring)."""

    def __init__(self, kube: RunningKube, namespace: str, route: str, backends: dict[str, Backend]) -> None:
        self.kube, self.namespace, self.route, self.backends = kube, namespace, route, backends
        self._current: dict[str, int] = {}
        self._mirror_count = 0
        self._lock = threading.Lock()
        self.copies: list[threading.Thread] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                try:
                    name, mirror = outer.pick(self.path)
                except (
                    KeyError,
                    LookupError,
                ) as exc:  # no route (deleted by a test) or no rule: as a gateway does
                    answer = str(exc).encode()
                    self.send_response(404)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                    return
                kind = self.headers.get("Content-Type")
                if mirror is not None:
                    outer.copy(mirror, self.command, self.path, body, kind)
                status, answer = outer.relay(
                    name, self.command, self.path, body, self.headers.get("X-Traffic-Source"), kind
                )
                self.send_response(status)
                self.send_header("X-Canary-Track", name)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _rule(self, path: str) -> dict[str, Any]:
        route = self.kube.stored(ROUTE, self.namespace, self.route)
        best: tuple[int, dict[str, Any]] | None = None
        for rule in route.get("spec", {}).get("rules") or []:
            for match in rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]:
                prefix = (match.get("path") or {}).get("value", "/")
                if path.startswith(prefix) and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), rule)
        if best is None:
            raise LookupError(f"no rule of HTTPRoute {self.route} matches {path}")
        return best[1]

    def pick(self, path: str) -> tuple[str, str | None]:
        """(backend for this request, mirror backend or None), by the route as it is now."""
        rule = self._rule(path)
        refs = [(str(b["name"]), int(b.get("weight", 1))) for b in rule.get("backendRefs") or []]
        mirror = next(
            (f["requestMirror"] for f in rule.get("filters") or [] if f.get("type") == "RequestMirror"), None
        )
        with self._lock:
            total = sum(w for _, w in refs)
            for name, w in refs:  # smooth weighted round robin (nginx's): exact shares
                self._current[name] = self._current.get(name, 0) + w
            chosen = max((n for n, w in refs if w > 0), key=lambda n: self._current[n])
            self._current[chosen] -= total
            copy_to = None
            if mirror is not None:
                self._mirror_count += 1
                percent = int(mirror.get("percent", 100))
                if (self._mirror_count * percent) // 100 > ((self._mirror_count - 1) * percent) // 100:
                    copy_to = str(mirror["backendRef"]["name"])
        return chosen, copy_to

    def forward(
        self,
        name: str,
        method: str,
        path: str,
        body: bytes | None,
        source: str | None,
        content_type: str | None = None,
    ) -> bytes:
        return self.relay(name, method, path, body, source, content_type)[1]

    def relay(
        self,
        name: str,
        method: str,
        path: str,
        body: bytes | None,
        source: str | None,
        content_type: str | None = None,
    ) -> tuple[int, bytes]:
        """Send one request to a backend as the gateway does (its Content-Type kept); (status, body),
        an error status passed through as it came."""
        headers = {"X-Traffic-Source": source} if source else {}
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(
            self.backends[name].url + path, data=body, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, bytes(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, bytes(exc.read())

    def copy(
        self, name: str, method: str, path: str, body: bytes | None, content_type: str | None = None
    ) -> None:
        thread = threading.Thread(
            target=self.forward, args=(name, method, path, body, "shadow", content_type), daemon=True
        )
        thread.start()
        self.copies.append(thread)

    def send(self, count: int, path: str = "/orders", *, post: bool = False) -> dict[str, int]:
        """Send `count` production requests; how many each backend answered."""
        answered: dict[str, int] = {}
        for i in range(count):
            data = b"order" if post else None
            req = urllib.request.Request(f"{self.url}{path}/{i}", data=data, method="POST" if post else "GET")
            with urllib.request.urlopen(req, timeout=10) as answer:
                track = answer.headers["X-Canary-Track"]
                answered[track] = answered.get(track, 0) + 1
        for thread in self.copies:
            thread.join(10)
        self.copies.clear()
        return answered

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def stand_in(
    kube: RunningKube, namespace: str, route: str, names: list[str]
) -> Iterator[tuple[StandInGateway, dict[str, Backend]]]:
    """Backends named like the Services, and a gateway in front of them; all stopped on exit."""
    backends = {n: Backend(n) for n in names}
    gateway = StandInGateway(kube, namespace, route, backends)
    try:
        yield gateway, backends
    finally:
        gateway.stop()
        for b in backends.values():
            b.stop()
