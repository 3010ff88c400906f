"""A minimal keep-alive HTTP/1.1 client: the demo service's call to its dependency, and the demo's
production users.

Why not httpx: in this single-process demo service, an httpx call cost about 2.4 ms of CPU, five
times the rest of the request, and under the demo's load that CPU became the latency being measured.
This client does only what the demo needs — small GETs and JSON POSTs to one loopback host,
answers with Content-Length or chunked bodies, a pool of idle connections, a deadline — in about
a tenth of the CPU.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

MAX_HEADER_BYTES = 16_384
MAX_BODY_BYTES = 1_048_576
MAX_IDLE = 64


_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Http1Error(Exception):
    """The dependency could not be reached or answered something unreadable."""


@dataclass
class Answer:
    """Status and body of one answer."""

    status: int
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


@dataclass
class Http1Client:
    """POSTs JSON to one ``http://host:port``; idle connections are kept for the next call."""

    base_url: str
    _idle: deque[_Conn] = field(default_factory=deque)

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"{self.base_url!r}: a plain http://host:port URL is needed")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")

    async def post_json(self, path: str, payload: Any, headers: dict[str, str], timeout: float) -> Answer:
        """POST ``payload`` as JSON; raises ``TimeoutError`` after ``timeout`` seconds, ``Http1Error``
        when the connection fails or the answer cannot be read."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        return await self.request(
            "POST", path, body, {"Content-Type": "application/json", **headers}, timeout
        )

    async def get(self, path: str, headers: dict[str, str], timeout: float) -> Answer:
        """GET ``path`` (with its query string); errors as ``post_json``."""
        return await self.request("GET", path, None, headers, timeout)

    async def request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], timeout: float
    ) -> Answer:
        """One request on an idle connection (or a new one); the connection is kept when the answer
        allows it."""
        head = [
            f"{method} {self.prefix}{path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            *([f"Content-Length: {len(body)}"] if body is not None else []),
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b"")
        async with asyncio.timeout(timeout):
            conn = self._idle.pop() if self._idle else None
            if conn is not None:
                try:
                    return await self._exchange(conn, request)
                except (Http1Error, ConnectionError, asyncio.IncompleteReadError):
                    pass  # the server closed an idle connection: retry once on a fresh one
            try:
                conn = await asyncio.open_connection(self.host, self.port)
            except OSError as exc:
                raise Http1Error(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
            try:
                return await self._exchange(conn, request)
            except (ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
                raise Http1Error(f"{self.host}:{self.port} broke off the answer: {exc}") from exc

    async def _exchange(
        self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes
    ) -> Answer:
        reader, writer = conn
        keep = False
        try:
            writer.write(request)
            await writer.drain()
            status_line = await reader.readuntil(b"\r\n")
            parts = status_line.split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
                raise Http1Error("not an HTTP/1.x answer")
            status = int(parts[1])
            length: int | None = None
            chunked = False
            close = parts[0] == b"HTTP/1.0"
            seen = len(status_line)
            while True:
                line = await reader.readuntil(b"\r\n")
                seen += len(line)
                if seen > MAX_HEADER_BYTES:
                    raise Http1Error("answer headers too large")
                if line == b"\r\n":
                    break
                name, _, value = line.partition(b":")
                key, val = name.strip().lower(), value.strip().lower()
                if key == b"content-length":
                    length = int(val)
                elif key == b"transfer-encoding" and b"chunked" in val:
                    chunked = True
                elif key == b"connection":
                    close = close or val == b"close"
            if chunked:
                body = await _read_chunked(reader)
            elif length is not None:
                if length > MAX_BODY_BYTES:
                    raise Http1Error("answer body too large")
                body = await reader.readexactly(length)
            else:
                body = await reader.read(MAX_BODY_BYTES)
                close = True
            keep = not close
            return Answer(status, body)
        finally:
            if keep and len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
            else:
                writer.close()

    async def aclose(self) -> None:
        """Close every idle connection."""
        while self._idle:
            _, writer = self._idle.pop()
            writer.close()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers are expected
            return bytes(out)
        if len(out) + size > MAX_BODY_BYTES:
            raise Http1Error("answer body too large")
        out += await reader.readexactly(size)
        await reader.readexactly(2)
