"""Clocks for the runner: the system's, and a manual one whose time moves only when slept on.

The engine never reads the time itself; it is handed a clock, so tests (and the kill-and-resume
test in particular) run a whole rollout of many minutes in milliseconds.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """What the runner needs of time."""

    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        ...


class SystemClock:
    """Wall-clock time; ``sleep`` wakes early when ``wake()`` is called (e.g. a person's request)."""

    def __init__(self) -> None:
        self._wake = threading.Event()

    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds``, or until woken."""
        if seconds > 0:
            self._wake.wait(seconds)
        self._wake.clear()

    def wake(self) -> None:
        """End the current sleep now."""
        self._wake.set()


class ManualClock:
    """Time that moves only when slept on: ``sleep(5)`` advances it by 5 s at once."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        """The current manual time."""
        return self._now

    def sleep(self, seconds: float) -> None:
        """Advance the time."""
        self._now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        """Advance the time (same as ``sleep``)."""
        self.sleep(seconds)
