"""Every Prometheus request attempt has a total wall-clock deadline, against a real drip-feeding server.

On main, a server that answered headers and then one byte every few seconds kept `gate learn` (and the
looks of `gate check` and `gate run`) waiting forever: the read timeout restarted on every byte.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from gate import errors
from gate.drivers.prometheus import PermanentError, PrometheusClient, TemporaryError
from gate.drivers.prometheus.client import DeadlineExceeded
from tests.support.ports import free_port

BODY = b'{"status": "success", "data": {"resultType": "vector", "result": []}}'


@dataclass
class Server:
    """A raw HTTP/1.1 server on loopback: answers headers at once, then drips the body."""

    status: int = 200
    drip: float = 0.3  # seconds between two bytes of the body; 0 answers at once
    port: int = field(default_factory=free_port)
    connections: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, listener: socket.socket) -> None:
        listener.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                request = b""
                while b"\r\n\r\n" not in request:  # the whole request, so closing sends no RST
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    request += chunk
                head_part, _, body = request.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head_part.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                while len(body) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    body += chunk
                head = (
                    f"HTTP/1.1 {self.status} X\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(BODY)}\r\n\r\n"
                ).encode()
                conn.sendall(head)
                for i in range(len(BODY)):
                    if self.drip and self.stop.wait(self.drip):
                        return
                    conn.sendall(BODY[i : i + 1])
            except OSError:
                return  # the client hung up: what the deadline is for


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    listener = socket.create_server(("127.0.0.1", srv.port))
    thread = threading.Thread(target=srv.serve, args=(listener,), daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.stop.set()
        thread.join(timeout=5)
        listener.close()


@pytest.mark.timeout(60)
def test_a_dripping_answer_is_cut_at_the_deadline(server: Server) -> None:
    # Each byte comes well within the 2 s timeout; the whole body would take 70 x 0.3 = 21 s.
    with PrometheusClient(server.url, timeout=2.0, retries=0) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded) as caught:
            client.query("up")
        took = time.monotonic() - started
    assert isinstance(caught.value, errors.TemporaryError) and not errors.is_permanent(caught.value)
    assert "did not finish its answer within 2s in all" in str(caught.value)
    assert 1.9 <= took < 5.0, took  # the deadline, not 21 s


@pytest.mark.timeout(60)
def test_each_retry_gets_its_own_deadline_and_the_look_fails_temporarily(server: Server) -> None:
    with PrometheusClient(server.url, timeout=1.0, retries=1, sleep=lambda _s: None) as client:
        with pytest.raises(TemporaryError, match=r"after 2 attempts"):
            client.query("up")
        assert client.attempts == 2
    assert server.connections >= 2


@pytest.mark.timeout(60)
def test_a_prompt_answer_is_read(server: Server) -> None:
    server.drip = 0
    with PrometheusClient(server.url, timeout=2.0, retries=0) as client:
        assert client.query("up") == []


@pytest.mark.timeout(60)
def test_a_server_that_accepts_and_never_answers_is_cut_too() -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)) as listener:
        with PrometheusClient(f"http://127.0.0.1:{port}", timeout=1.0, retries=0) as client:
            started = time.monotonic()
            with pytest.raises(TemporaryError):
                client.query("up")
            assert time.monotonic() - started < 4.0
        del listener


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("status", "permanent"), [(400, True), (401, True), (403, True), (404, True), (429, False), (503, False)]
)
def test_4xx_other_than_429_is_permanent(server: Server, status: int, permanent: bool) -> None:
    server.drip = 0
    server.status = status
    with (
        PrometheusClient(server.url, timeout=2.0, retries=0) as client,
        pytest.raises(errors.GateError) as caught,
    ):
        client.query("up")
    assert errors.is_permanent(caught.value) is permanent
    assert isinstance(caught.value, PermanentError if permanent else TemporaryError)
