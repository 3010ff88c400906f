"""Weight arithmetic for routers: pure functions, no I/O.

Kept apart from the calls that change routing (as Flagger does), so the numbers a router writes can be
tested exhaustively without a proxy or an API server.
"""

from __future__ import annotations

import math

PERCENT_MAX = 100


def check_percent(value: int, what: str = "canary weight") -> int:
    """Return `value` when it is a whole percentage 0..100, else raise ValueError saying what was wrong."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be a whole number of percent, got {value!r}")
    if not 0 <= value <= PERCENT_MAX:
        raise ValueError(f"{what} must be between 0 and 100 percent, got {value}")
    return value


def split(canary_percent: int) -> tuple[int, int]:
    """(stable, canary) weights out of 100 for a canary share."""
    canary = check_percent(canary_percent)
    return PERCENT_MAX - canary, canary


def upstream_servers(canary_percent: int) -> list[tuple[str, int]]:
    """The (track, weight) pairs of an nginx weighted upstream.

    nginx refuses `weight=0`, so a track with no share is left out rather than weighted zero: 0 % is
    stable alone, 100 % is canary alone."""
    stable, canary = split(canary_percent)
    return [(track, weight) for track, weight in (("stable", stable), ("canary", canary)) if weight > 0]


def replicas(total: int, canary_percent: int) -> tuple[int, int]:
    """(stable, canary) replica counts for a canary share of `total` pods.

    Any share above 0 gets at least one canary pod (rounding up, like Argo Rollouts' basic canary), so
    a 5 % step on 4 pods still sends the canary some traffic; any share below 100 keeps at least one
    stable pod. The effective share is what `effective_percent` reports, not the requested one."""
    check_percent(canary_percent)
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise ValueError(f"total replicas must be a positive whole number, got {total!r}")
    if canary_percent == 0:
        return total, 0
    if canary_percent == PERCENT_MAX:
        return 0, total
    canary = math.ceil(total * canary_percent / PERCENT_MAX)
    canary = min(max(canary, 1), total - 1) if total > 1 else 1
    return total - canary, canary


def effective_percent(stable: int, canary: int) -> int:
    """The canary's share, in whole percent, of traffic split by `stable`:`canary` weights or replicas.

    Rounded half up; both zero means nothing is served, reported as 0."""
    if stable < 0 or canary < 0:
        raise ValueError(f"weights cannot be negative: stable {stable}, canary {canary}")
    total = stable + canary
    if total == 0:
        return 0
    return math.floor(canary * PERCENT_MAX / total + 0.5)


def mirror_fraction(percent: int) -> float:
    """A mirror percentage as a fraction 0..1 (for Istio's `mirrorPercentage.value` it stays percent)."""
    return check_percent(percent, "mirror percentage") / PERCENT_MAX
