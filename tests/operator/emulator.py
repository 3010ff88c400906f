"""The shared Kubernetes emulator (``tests.support.kube``) with what the operator's tests add:

- the operator's resources (PerformanceGate with its status subresource, PerformanceContract,
  ConfigMap for contractRef) and
  kopf's peering resources in discovery;
- ``metadata.generateName`` on create (kopf names its Events that way; without it every Event after
  the first would be refused as already existing).

``EmulatorThread`` serves it on loopback from its own event loop in a thread, so sync tests and
separate processes (the real ``gate operator``) reach it over real HTTP.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import uuid
from typing import Any

import aiohttp.web
import kmock

from gate.operator import resource
from tests.support.kube import KubeEmulator, _key

GATES = f"{resource.GROUP}/{resource.VERSION}/{resource.PLURAL}"
CONTRACTS = f"{resource.GROUP}/{resource.VERSION}/{resource.CONTRACT_PLURAL}"
VERBS = {"list", "watch", "get", "patch", "create", "update", "delete"}
KEEP_REQUESTS = 256


class Emulator(KubeEmulator):  # type: ignore[misc]
    """The shared emulator, with generateName and the operator's resources."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.resources[GATES] = kmock.ResourceInfo(
            kind="PerformanceGate",
            singular="performancegate",
            namespaced=True,
            verbs=VERBS,
            subresources={"status"},
            shortnames={"pgate"},
        )
        self.resources[CONTRACTS] = kmock.ResourceInfo(
            kind="PerformanceContract", singular="performancecontract", namespaced=True, verbs=VERBS
        )
        self.resources["v1/configmaps"] = kmock.ResourceInfo(  # contractRef kind ConfigMap
            kind="ConfigMap", singular="configmap", namespaced=True, verbs=VERBS
        )
        self.resources["kopf.dev/v1/clusterkopfpeerings"] = kmock.ResourceInfo(
            kind="ClusterKopfPeering", singular="clusterkopfpeering", namespaced=False, verbs=VERBS
        )
        self.resources["kopf.dev/v1/kopfpeerings"] = kmock.ResourceInfo(
            kind="KopfPeering", singular="kopfpeering", namespaced=True, verbs=VERBS
        )

    async def _handle(self, request: Any) -> aiohttp.web.StreamResponse:
        # kmock keeps every request it served, and routes each new one by re-filtering that whole
        # history (`request in payload._source`): quadratic in the requests served, which made the
        # emulator the bottleneck of the capacity benchmark (py-spy: 85 % of its CPU in filtering).
        # The tests read our own record of calls (tests.support.kube), not kmock's; keep its recent
        # part (the requests in flight are among the last ones, so their routing is unchanged).
        if len(self._requests) > 2 * KEEP_REQUESTS:
            del self._requests[:-KEEP_REQUESTS]
            for payload in self._payloads:
                del payload._requests[:-KEEP_REQUESTS]
        data = request.data
        if str(request.method).upper().endswith("POST") and isinstance(data, dict):
            meta = data.get("metadata")
            if isinstance(meta, dict) and not meta.get("name") and meta.get("generateName"):
                meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:8]}"
        return await super()._handle(request)

    def _KubernetesEmulator__get_objs(self, request: Any, strict: bool) -> list[Any]:
        """kmock finds the object of a get, patch, create or delete by scanning every stored object
        (thousands of Events after a few minutes of hundreds of gates), which made the emulator, not
        the operator, the bottleneck of the capacity benchmark. A request that names its object is a
        key lookup here, as in a real API server; lists and watches keep kmock's scan."""
        if request.resource is not None and request.name is not None and (strict or request.namespace):
            key = (request.resource, request.namespace, request.name)
            return [self._objects[key]] if key in self._objects else []
        return list(super()._KubernetesEmulator__get_objs(request, strict))  # type: ignore[misc]

    def versions(self, plural_key: str, namespace: str, name: str) -> list[dict[str, Any]]:
        """Every stored version of an object, oldest first."""
        key = _key(plural_key, namespace, name)
        if key not in self.objects:
            return []
        return [copy.deepcopy(dict(v)) for v in self.objects[key].history if v is not None]


class EmulatorThread:
    """The emulator served on loopback from its own event loop in a thread; ``url`` to reach it."""

    def __init__(self) -> None:
        self.url = ""
        self.emulator: Emulator | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="kube-emulator", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        try:
            self._stop = asyncio.Event()
            async with Emulator() as k, kmock.Server(k, host="127.0.0.1") as srv:
                self.emulator = k
                self.url = str(srv.url).rstrip("/")
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    def start(self) -> EmulatorThread:
        self._thread.start()
        self._ready.wait(20)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def call(self, fn: Any) -> Any:
        """Run ``fn()`` (sync, touching the emulator's objects) on the emulator's loop."""

        async def wrapped() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(10)


def main() -> None:
    """Serve the emulator in this process until SIGTERM or stdin closes; its URL is the first line out.

    ``python -m tests.operator.emulator``: the benchmark runs it in a process of its own, so the API
    server's work is neither in the measured operator nor competing with the benchmark's own loop."""
    import signal
    import sys

    server = EmulatorThread().start()
    print(server.url, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())

    def until_stdin_closes() -> None:
        sys.stdin.read()
        done.set()

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
