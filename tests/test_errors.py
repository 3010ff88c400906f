"""The one retry policy: permanent errors fail in one attempt, temporary ones within their budget."""

from __future__ import annotations

import pytest

from gate.errors import PermanentError, RetryPolicy, TemporaryError, classify_http_status, retry_call


def test_permanent_error_is_raised_after_one_attempt() -> None:
    calls: list[int] = []

    def call() -> None:
        calls.append(1)
        raise PermanentError("httproutes/web not found", hint="check spec.router.httpRoute")

    with pytest.raises(PermanentError, match="not found — check"):
        retry_call(call, policy=RetryPolicy(attempts=5, total=10), sleep=lambda _s: None)
    assert len(calls) == 1


def test_temporary_error_is_retried_until_it_succeeds() -> None:
    calls: list[int] = []
    waits: list[float] = []

    def call() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TemporaryError("503 from the API server")
        return "ok"

    out = retry_call(
        call,
        policy=RetryPolicy(attempts=5, total=10),
        sleep=lambda _s: None,
        on_retry=lambda _n, _e, w: waits.append(w),
    )
    assert out == "ok" and len(calls) == 3 and len(waits) == 2


def test_temporary_error_stops_at_the_attempt_budget() -> None:
    calls: list[int] = []

    def call() -> None:
        calls.append(1)
        raise TemporaryError("timeout")

    with pytest.raises(TemporaryError):
        retry_call(call, policy=RetryPolicy(attempts=3, total=10), sleep=lambda _s: None)
    assert len(calls) == 3


def test_unknown_exceptions_count_as_temporary() -> None:
    calls: list[int] = []

    def call() -> None:
        calls.append(1)
        raise ConnectionResetError("reset")

    with pytest.raises(ConnectionResetError):
        retry_call(call, policy=RetryPolicy(attempts=2, total=10), sleep=lambda _s: None)
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (403, PermanentError),
        (404, PermanentError),
        (422, PermanentError),
        (409, TemporaryError),
        (429, TemporaryError),
        (503, TemporaryError),
        (500, TemporaryError),
    ],
)
def test_http_status_classification(status: int, kind: type) -> None:
    assert classify_http_status(status) is kind


def test_a_retry_after_is_honoured_within_the_budget() -> None:
    waits: list[float] = []
    told: list[float] = []
    calls = {"n": 0}

    def throttled() -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise TemporaryError("429 TooManyRequests", retry_after=3.0)
        if calls["n"] == 2:
            raise TemporaryError("429 TooManyRequests", retry_after=500.0)  # more than the whole budget
        return "ok"

    policy = RetryPolicy(attempts=4, total=20.0, initial=0.01, maximum=0.05)
    result = retry_call(
        throttled, policy=policy, sleep=waits.append, on_retry=lambda _a, _e, w: told.append(w)
    )
    assert result == "ok"
    assert waits == told  # the wait shown is the wait taken
    assert waits[0] >= 3.0  # not before the server's Retry-After, although the back-off says 0.05 s
    assert waits[1] == 20.0  # capped by the budget's total
