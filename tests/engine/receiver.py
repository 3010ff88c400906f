"""A real HTTP server on loopback that records what it receives and answers from a script."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.ports import free_port


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


# A responder gets the request and answers (status, headers, body); it may sleep.
Responder = Callable[[Received], tuple[int, dict[str, str], bytes]]


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    responders: dict[str, Responder] = field(default_factory=dict)

    def on(self, path: str, responder: Responder) -> None:
        self.responders[path] = responder

    def bodies(self, path: str) -> list[Any]:
        return [r.json() for r in self.requests if r.path == path]


@contextmanager
def receiver() -> Iterator[Receiver]:
    port = free_port()
    rec = Receiver(url=f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            got = Received(self.command, self.path, dict(self.headers.items()), body)
            rec.requests.append(got)
            responder = rec.responders.get(self.path.split("?")[0])
            status, headers, payload = responder(got) if responder else (200, {}, b"ok")
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            with suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(payload)

        do_GET = do_POST = _handle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def slow(seconds: float, status: int = 200, body: bytes = b"late") -> Responder:
    def respond(_r: Received) -> tuple[int, dict[str, str], bytes]:
        time.sleep(seconds)
        return status, {}, body

    return respond
