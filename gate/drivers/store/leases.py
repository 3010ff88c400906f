"""Keeping a run's lease while a process drives it: a heartbeat thread.

``LeaseKeeper`` renews the lease every third of its time to live with the wall clock. When the lease
is lost (taken over after it expired, e.g. because this process was paused) it stops and says so
through ``lost``; the store's fencing has by then refused this process's writes anyway. A store that
cannot be reached for a moment is tried again on the next beat, until the lease would have expired.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gate.drivers.store.errors import LeaseHeld, LeaseLost, StoreError
from gate.drivers.store.records import Lease

if TYPE_CHECKING:
    from gate.drivers.store.runstore import RunStore

log = logging.getLogger(__name__)


def holder_is_gone(holder: str) -> bool:
    """Whether ``holder`` (a ``new_holder()`` id: host/pid/random) names a process of this machine that
    no longer exists. Unknown forms and other machines' holders are never gone: their leases expire."""
    host, _, rest = holder.partition("/")
    pid_text = rest.partition("/")[0]
    if host != socket.gethostname()[:100] or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid <= 1 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class LeaseKeeper:
    """Acquire a run's lease and renew it in the background until ``stop`` (or the ``with`` block ends)."""

    def __init__(
        self,
        store: RunStore,
        run_id: str,
        holder: str,
        *,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.holder = holder
        self.ttl = ttl
        self._clock = clock
        self._stop = threading.Event()
        self.lost = threading.Event()
        self.error: StoreError | None = None
        self._thread: threading.Thread | None = None
        self.lease: Lease | None = None

    def start(self) -> Lease:
        """Acquire the lease and start the heartbeat.

        ``LeaseHeld`` when another process holds it — unless that holder was a process of this machine
        that is gone (killed): its lease is taken over at once rather than after it expires.
        """
        try:
            self.lease = self.store.acquire_lease(self.run_id, self.holder, ttl=self.ttl, now=self._clock())
        except LeaseHeld as exc:
            if not holder_is_gone(exc.holder):
                raise
            self.lease = self.store.acquire_lease(
                self.run_id, self.holder, ttl=self.ttl, now=self._clock(), replace=exc.holder
            )
        self._thread = threading.Thread(target=self._beat, name=f"lease {self.run_id}", daemon=True)
        self._thread.start()
        return self.lease

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            now = self._clock()
            try:
                self.lease = self.store.renew_lease(self.run_id, self.holder, ttl=self.ttl, now=now)
            except LeaseLost as exc:
                self.error = exc
                self.lost.set()
                return
            except StoreError as exc:  # unreachable for a moment: the next beat tries again
                log.warning("run %s: lease not renewed: %s", self.run_id, exc)
                if self.lease is not None and now >= self.lease.expires_at:
                    self.error = exc
                    self.lost.set()
                    return

    def stop(self, *, release: bool = True) -> None:
        """Stop the heartbeat and (by default) release the lease so another process may resume at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ttl)
        if release and not self.lost.is_set():
            try:
                self.store.release_lease(self.run_id, self.holder)
            except StoreError as exc:
                log.warning("run %s: lease not released (it expires by itself): %s", self.run_id, exc)

    def __enter__(self) -> LeaseKeeper:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
