"""Diagnostics captured from the canary at the moment the evidence fails it.

The contract names what to capture (paths on the canary, e.g. a Go service's
``/debug/pprof/goroutine?debug=2`` and ``/debug/pprof/profile?seconds=5``); this module fetches
them with timeouts and a size bound and hands back bytes for the run store. Only paths on the
canary's own URL are fetched: a contract cannot point gate at another host. Failures are reported
in the result, never raised: diagnostics must not delay or block a rollback.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

DEFAULT_MAX_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Captured:
    """One diagnostic captured from the canary (or the error that stopped it)."""

    name: str
    url: str
    data: bytes
    content_type: str = ""
    truncated: bool = False
    error: str = ""


@dataclass(frozen=True)
class Target:
    """What to fetch: a name, a path on the canary, and how long it may take."""

    name: str
    path: str
    timeout: float = 10.0

    def url(self, base: str) -> str:
        """The absolute URL on the canary; refuses anything that would leave it."""
        if not self.path.startswith("/") or self.path.startswith("//") or "\\" in self.path:
            raise ValueError(
                f"diagnostic {self.name!r}: path must start with '/' on the canary, got {self.path!r}"
            )
        url = urljoin(base.rstrip("/") + "/", self.path.lstrip("/"))
        if urlsplit(url).netloc != urlsplit(base).netloc:
            raise ValueError(f"diagnostic {self.name!r}: {self.path!r} leaves the canary")
        return url


def go_pprof(profile_seconds: int = 5) -> list[Target]:
    """The usual Go set: a goroutine dump (instant) and a CPU profile of ``profile_seconds``."""
    return [
        Target("goroutines", "/debug/pprof/goroutine?debug=2", timeout=10.0),
        Target(
            "cpu-profile", f"/debug/pprof/profile?seconds={profile_seconds}", timeout=profile_seconds + 10.0
        ),
        Target("heap", "/debug/pprof/heap", timeout=10.0),
    ]


class DiagnosticsCapture:
    """Fetches the targets from the canary in parallel, each bounded in time and size."""

    def __init__(
        self,
        canary_url: str,
        targets: list[Target],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.canary_url = canary_url
        self.targets = targets
        self.max_bytes = max_bytes
        self._transport = transport

    def capture(self) -> list[Captured]:
        """Capture every target; errors are in ``Captured.error``."""
        if not self.targets:
            return []
        with ThreadPoolExecutor(max_workers=min(4, len(self.targets))) as pool:
            return list(pool.map(self._one, self.targets))

    def _one(self, target: Target) -> Captured:
        try:
            url = target.url(self.canary_url)
        except ValueError as exc:
            return Captured(target.name, target.path, b"", error=str(exc))
        try:
            with (
                httpx.Client(timeout=target.timeout, transport=self._transport) as client,
                client.stream("GET", url) as response,
            ):
                chunks: list[bytes] = []
                size = 0
                truncated = False
                for chunk in response.iter_bytes():
                    room = self.max_bytes - size
                    if len(chunk) > room:
                        chunks.append(chunk[:room])
                        truncated = True
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                data = b"".join(chunks)
                error = "" if response.status_code < 300 else f"HTTP {response.status_code}"
                return Captured(
                    target.name,
                    url,
                    data,
                    content_type=response.headers.get("content-type", "")[:200],
                    truncated=truncated,
                    error=error,
                )
        except httpx.HTTPError as exc:
            return Captured(target.name, url, b"", error=f"{type(exc).__name__}: {exc}")


ANNOTATION = "perfgate.dev/diagnostics"


def targets_from_spec(spec: str) -> list[Target]:
    """Targets from words: ``pprof`` or ``pprof:SECONDS`` (the Go set), and paths (``/debug/vars``).

    The contract names them in the annotation ``perfgate.dev/diagnostics`` (comma-separated), e.g.
    ``pprof:5, /debug/vars``. Raises ValueError on a word it does not know."""
    targets: list[Target] = []
    for i, raw in enumerate(part.strip() for part in spec.split(",")):
        if not raw:
            continue
        if raw == "pprof" or raw.startswith("pprof:"):
            seconds = raw.partition(":")[2] or "5"
            if not seconds.isdigit() or not 1 <= int(seconds) <= 60:
                raise ValueError(f"{ANNOTATION}: pprof seconds must be 1-60, got {seconds[:20]!r}")
            targets += go_pprof(int(seconds))
        elif raw.startswith("/"):
            targets.append(Target(f"capture-{i}", raw[:512]))
        else:
            raise ValueError(f"{ANNOTATION}: expected pprof, pprof:SECONDS or a /path, got {raw[:40]!r}")
    return targets
