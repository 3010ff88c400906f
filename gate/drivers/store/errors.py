"""What can go wrong with the run store, named so a face can say it and pick its exit code.

Every error says what is wrong, which store (its URL with the userinfo redacted) and what to do.
None of them carries a password: messages are built from the redacted URL, and text taken from the
database driver is cut short and scrubbed of the URL's secret before it is kept.
"""

from __future__ import annotations

from gate.errors import GateError

EXIT_STORE = 5  # the exit code of a command that stopped because its run store is broken or unreachable


class StoreError(GateError):
    """The run store cannot do what was asked (unknown run, a sequence out of order, …)."""

    permanent = True


class StoreURLInvalid(StoreError):
    """The store URL is not one gate can open (bad input: a face exits 2, not ``EXIT_STORE``)."""


class StoreCorrupt(StoreError):
    """The store exists but is not a readable gate run store: truncated, random bytes, another program's."""


class StoreUnavailable(StoreError):
    """The store cannot be reached now (PostgreSQL refusing connections, a locked or unreadable file)."""

    permanent = False


class StoreTooNew(StoreError):
    """The store's schema is newer than this gate: a newer gate wrote it; this one must not touch it."""


class RunFinished(StoreError):
    """A request was made to a run that has already finished (promoted, rolled back, failed)."""

    def __init__(self, run_id: str, status: str) -> None:
        super().__init__(
            f"run {run_id} has already finished: {status}",
            hint="nothing is left to approve or abort; start a new run to try again",
        )
        self.run_id = run_id
        self.status = status


class LeaseHeld(StoreError):
    """Another process drives the run and its lease has not expired."""

    permanent = False

    def __init__(self, run_id: str, holder: str, since: float, expires: float) -> None:
        super().__init__(
            f"run {run_id} is driven by {holder} since {_iso(since)} (its lease runs until {_iso(expires)})",
            hint="use --approve/--abort to act on it, or resume it after that process has stopped",
        )
        self.run_id = run_id
        self.holder = holder
        self.since = since
        self.expires = expires


class LeaseLost(StoreError):
    """A write by a process that no longer holds the run's lease (fencing): it must stop driving the run."""

    def __init__(self, run_id: str, holder: str, current: str | None) -> None:
        now_held = f"it is now held by {current}" if current else "nobody holds it now"
        super().__init__(
            f"run {run_id}: {holder} no longer holds the run's lease ({now_held}); nothing was written",
            hint="this process must stop driving the run; the lease holder carries it on",
        )
        self.run_id = run_id
        self.holder = holder
        self.current = current


def _iso(t: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
