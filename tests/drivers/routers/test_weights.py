"""Weight arithmetic (pure): exhaustive over the whole input range."""

from __future__ import annotations

import pytest

from gate.drivers.routers import weights


def test_split_and_upstreams() -> None:
    for p in range(101):
        stable, canary = weights.split(p)
        assert (stable, canary) == (100 - p, p)
        servers = weights.upstream_servers(p)
        assert all(w > 0 for _, w in servers)  # nginx refuses weight=0
        assert sum(w for _, w in servers) == 100
        assert dict(servers).get("canary", 0) == p
    assert weights.upstream_servers(0) == [("stable", 100)]
    assert weights.upstream_servers(100) == [("canary", 100)]


@pytest.mark.parametrize("bad", [-1, 101, 2.5, "20", True, None])
def test_bad_percent_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="canary weight"):
        weights.split(bad)  # type: ignore[arg-type]


def test_replicas_invariants() -> None:
    for total in range(1, 41):
        previous = -1
        for p in range(101):
            stable, canary = weights.replicas(total, p)
            assert stable + canary == total and stable >= 0 and canary >= 0
            assert canary >= previous  # monotone in the requested share
            previous = canary
            if p == 0:
                assert canary == 0
            elif p == 100:
                assert stable == 0
            else:
                assert canary >= 1  # any share reaches the canary
                if total > 1:
                    assert stable >= 1  # below 100 % the stable keeps a pod
                # never less than asked (rounded up), never a whole pod more than needed
                assert canary >= total * p / 100 or canary == total - 1
                assert canary < total * p / 100 + 1 or canary == 1


def test_replicas_examples() -> None:
    assert weights.replicas(4, 20) == (3, 1)
    assert weights.replicas(10, 5) == (9, 1)
    assert weights.replicas(10, 50) == (5, 5)
    assert weights.replicas(1, 50) == (0, 1)
    with pytest.raises(ValueError, match="positive"):
        weights.replicas(0, 10)


def test_effective_percent() -> None:
    assert weights.effective_percent(3, 1) == 25
    assert weights.effective_percent(2, 1) == 33
    assert weights.effective_percent(1, 2) == 67
    assert weights.effective_percent(0, 0) == 0
    assert weights.effective_percent(0, 5) == 100
    for p in range(101):
        assert weights.effective_percent(*weights.split(p)) == p
    with pytest.raises(ValueError):
        weights.effective_percent(-1, 1)
