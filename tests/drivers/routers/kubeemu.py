"""kmock's KubernetesEmulator served over real HTTP from a background thread, so the official (blocking)
kubernetes client can talk to it from the test's own thread.

kmock merges patches as plain JSON and keeps no resourceVersion. `VersionedEmulator` adds what gate's
optimistic concurrency relies on, the way the API server does it: every write gets a new
resourceVersion, and a patch carrying a stale `metadata.resourceVersion` is refused with 409 Conflict
without being applied. `interfere(...)` queues a foreign write that lands just before gate's next
patch of an object — the race that optimistic concurrency exists for.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import rendering

JSON = dict[str, Any]


@attrs.define(kw_only=True)
class VersionedEmulator(kmock.KubernetesEmulator):
    """KubernetesEmulator with resourceVersion bumps and preconditions on patches."""

    _versions: Iterator[int] = attrs.field(factory=lambda: itertools.count(1000), init=False)
    _interference: dict[tuple[str, str, str], list[Callable[[JSON], None]]] = attrs.field(
        factory=dict, init=False
    )
    conflicts: int = attrs.field(default=0, init=False)
    _rejections: int = attrs.field(default=0, init=False)
    # Every patch body exactly as the client sent it (before this emulator stamps a new version).
    patches: list[tuple[str, JSON]] = attrs.field(factory=list, init=False)

    def next_version(self) -> str:
        return str(next(self._versions))

    def seed(self, resource: str, namespace: str, name: str, obj: JSON) -> None:
        """Store an object as if created: with a resourceVersion."""
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {})["resourceVersion"] = self.next_version()
        self.objects[resource, namespace, name] = obj

    def stored(self, resource: str, namespace: str, name: str) -> JSON:
        return copy.deepcopy(self.objects[resource, namespace, name].raw)

    def reject_patches(self, count: int) -> None:
        """Answer the next `count` patches with 409 Conflict without applying them. (A plain kmock
        reaction answering 409 is not enough: the emulator applies the patch before reactions run.)"""
        self._rejections += count

    def interfere(self, resource: str, namespace: str, name: str, change: Callable[[JSON], None]) -> None:
        """Queue `change` to be applied (as another writer would) right before the next patch."""
        self._interference.setdefault((resource, namespace, name), []).append(change)

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        res = request.resource
        if res is not None and request.action == kmock.action.UPDATE and isinstance(request.data, dict):
            name = (f"{res.group}/{res.version}/{res.plural}".lstrip("/"), request.namespace, request.name)
            key = (res, request.namespace, request.name)  # ObjectsArray's `in` takes parsed keys only
            self.patches.append((str(request.name), copy.deepcopy(request.data)))
            pending = self._interference.get(name) or []
            if pending:
                change = pending.pop(0)
                obj = self.objects[key]
                new = copy.deepcopy(obj.raw)
                change(new)
                new["metadata"]["resourceVersion"] = self.next_version()
                obj.history.append(kmock.ObjectVersion(new))
            if self._rejections > 0:
                self._rejections -= 1
                self.conflicts += 1
                return await self._render_error(_conflict())
            wanted = (request.data.get("metadata") or {}).get("resourceVersion")
            if key in self.objects and not self.objects[key].deleted:
                current = self.objects[key].raw.get("metadata", {}).get("resourceVersion")
                if wanted is not None and wanted != current:
                    self.conflicts += 1
                    return await self._render_error(_conflict())
            request.data.setdefault("metadata", {})["resourceVersion"] = self.next_version()
        elif res is not None and request.action == kmock.action.CREATE and isinstance(request.data, dict):
            request.data.setdefault("metadata", {})["resourceVersion"] = self.next_version()
        return await super()._handle(request)


def _conflict() -> kmock.KubernetesError:
    return kmock.KubernetesError(
        status=409,
        reason="Conflict",
        message="the object has been modified; please apply your changes to the latest version and try again",
        details={},
    )


@dataclass
class RunningEmulator:
    emulator: VersionedEmulator
    url: str
    loop: asyncio.AbstractEventLoop
    _stop: asyncio.Event | None = field(default=None, repr=False)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the emulator's loop (e.g. to add a reaction) and return its result."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)


@contextmanager
def serve_emulator() -> Iterator[RunningEmulator]:
    """Start a VersionedEmulator on 127.0.0.1 (a free port) in a thread; stop it on exit."""
    loop = asyncio.new_event_loop()
    ready: dict[str, Any] = {}
    started = threading.Event()

    async def main() -> None:
        stop = asyncio.Event()
        try:
            async with VersionedEmulator() as emulator, kmock.Server(emulator) as server:
                ready.update(emulator=emulator, url=str(server.url).rstrip("/"), stop=stop)
                started.set()
                await stop.wait()
        except BaseException as exc:  # report start failures to the waiting test
            ready["error"] = exc
            started.set()
            raise

    def run() -> None:
        asyncio.set_event_loop(loop)
        with suppress(BaseException):
            loop.run_until_complete(main())

    thread = threading.Thread(target=run, name="kmock", daemon=True)
    thread.start()
    if not started.wait(20):
        raise TimeoutError("kmock emulator did not start within 20 s")
    if "error" in ready:
        raise RuntimeError(f"kmock emulator failed to start: {ready['error']!r}")
    running = RunningEmulator(ready["emulator"], ready["url"], loop, ready["stop"])
    try:
        yield running
    finally:
        loop.call_soon_threadsafe(ready["stop"].set)
        thread.join(20)
        loop.close()
