"""kmock's KubernetesEmulator served over real HTTP from a background thread, for the Istio fault tests.

The chaos worker (a separate process) reaches it through chaostoolkit-kubernetes with
``KUBERNETES_HOST`` (and ``KUBECONFIG`` pointing nowhere, so no local config is picked up).
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import kmock

VS = "networking.istio.io/v1beta1/virtualservices"


@dataclass
class Emulator:
    emulator: kmock.KubernetesEmulator
    url: str

    @property
    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": "/nonexistent/kubeconfig", "KUBERNETES_HOST": self.url}

    def seed(self, resource: str, namespace: str, name: str, obj: dict[str, Any]) -> None:
        self.emulator.objects[resource, namespace, name] = copy.deepcopy(obj)

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(dict(self.emulator.objects[resource, namespace, name].raw))


@contextmanager
def serve() -> Iterator[Emulator]:
    loop = asyncio.new_event_loop()
    ready: dict[str, Any] = {}
    started = threading.Event()

    async def main() -> None:
        stop = asyncio.Event()
        try:
            async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
                ready.update(emulator=emulator, url=str(server.url).rstrip("/"), stop=stop)
                started.set()
                await stop.wait()
        except BaseException as exc:
            ready["error"] = exc
            started.set()
            raise

    def run() -> None:
        asyncio.set_event_loop(loop)
        with suppress(BaseException):
            loop.run_until_complete(main())

    thread = threading.Thread(target=run, name="kmock", daemon=True)
    thread.start()
    if not started.wait(20) or "error" in ready:
        raise RuntimeError(f"kmock emulator did not start: {ready.get('error')!r}")
    try:
        yield Emulator(ready["emulator"], ready["url"])
    finally:
        loop.call_soon_threadsafe(ready["stop"].set)
        thread.join(20)
        loop.close()
