"""One root error type for gate, and one retry policy.

Every error a driver raises on purpose is a ``GateError``. It says whether trying again can help:

- ``PermanentError`` — a 404, a 403, an object the API server refuses (422), a contract error, no
  credentials. Retrying changes nothing; the run reports it once, with the object, the verb and the fix.
- ``TemporaryError`` — a timeout, a refused connection, 429, 5xx, a 409 conflict. Retried with
  exponential back-off and jitter, within a bounded number of attempts *and* a bounded total time.

``retry_call`` is the single place that retries (built on tenacity); drivers do not loop by themselves.
Errors that are not ``GateError`` (a bug, an ``OSError`` from a library) are treated as temporary, so a
rollback is never given up on because of an unexpected exception type — but still within the budget.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

log = logging.getLogger(__name__)

T = TypeVar("T")


class GateError(Exception):
    """The root of gate's own errors. ``permanent`` says whether retrying can help; ``retry_after``
    is how long the other side asked to be left alone (an HTTP ``Retry-After``), when it said."""

    permanent: bool = False
    retry_after: float | None = None

    def __init__(self, message: str, *, hint: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint  # what the user can do about it ("grant patch on httproutes …")
        if retry_after is not None:
            self.retry_after = max(0.0, retry_after)

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class PermanentError(GateError):
    """Retrying cannot help: not found, forbidden, invalid, misconfigured."""

    permanent = True


class TemporaryError(GateError):
    """May succeed later: timeouts, refused connections, 429, 5xx, conflicts."""

    permanent = False


def is_permanent(exc: BaseException) -> bool:
    """Whether ``exc`` is known to be permanent (only ``GateError`` subclasses can say so)."""
    return isinstance(exc, GateError) and exc.permanent


def classify_http_status(status: int) -> type[GateError]:
    """The error class an HTTP status means: 408/409/425/429/5xx temporary, other 4xx permanent."""
    if status in (408, 409, 425, 429) or status >= 500:
        return TemporaryError
    return PermanentError


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: at most ``attempts`` calls and ``total`` seconds, back-off with full jitter."""

    attempts: int = 4
    total: float = 30.0
    initial: float = 0.25
    maximum: float = 5.0

    def with_budget(self, *, attempts: int | None = None, total: float | None = None) -> RetryPolicy:
        """A copy with another budget."""
        return RetryPolicy(
            attempts=self.attempts if attempts is None else attempts,
            total=self.total if total is None else total,
            initial=self.initial,
            maximum=self.maximum,
        )


DEFAULT_POLICY = RetryPolicy()


def retry_call(
    call: Callable[[], T],
    *,
    policy: RetryPolicy = DEFAULT_POLICY,
    sleep: Callable[[float], None] | None = None,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    what: str = "",
) -> T:
    """Call ``call`` until it succeeds, a permanent error is raised, or the budget is spent.

    A permanent error is raised at once (one attempt). When the budget is spent the last error is
    raised as it was. An error carrying ``retry_after`` (a 429's or 503's ``Retry-After``) is not tried
    again before that wait (capped by the budget's ``total``). ``on_retry(attempt, error, wait)`` is
    told about each wait (for a live view).
    """
    backoff = tenacity.wait_random_exponential(multiplier=policy.initial, max=policy.maximum)

    def _wait(state: tenacity.RetryCallState) -> float:
        wait = float(backoff(state))
        exc = state.outcome.exception() if state.outcome is not None else None
        asked = getattr(exc, "retry_after", None)
        if isinstance(asked, int | float) and asked > 0:
            wait = max(wait, min(float(asked), policy.total))
        return wait

    def _before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.upcoming_sleep
        if exc is not None:
            log.warning(
                "%s attempt %d failed (%s: %s); again in %.2fs",
                what or "call",
                state.attempt_number,
                type(exc).__name__,
                exc,
                wait,
            )
            if on_retry is not None:
                on_retry(state.attempt_number, exc, wait)

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max(1, policy.attempts)) | tenacity.stop_after_delay(policy.total),
        wait=_wait,
        retry=tenacity.retry_if_exception(lambda e: isinstance(e, Exception) and not is_permanent(e)),
        reraise=True,
        sleep=sleep if sleep is not None else tenacity.nap.sleep,
        before_sleep=_before_sleep,
    )
    return retrying(call)


def jitter(seconds: float, fraction: float = 0.1) -> float:
    """``seconds`` ± ``fraction`` (for timers of many gates that should not fire together)."""
    return max(0.0, seconds * (1.0 + random.uniform(-fraction, fraction)))
