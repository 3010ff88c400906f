"""Numbers in words: how the judge prints values, ratios and intervals in its reasons."""

from __future__ import annotations

import math


def value(x: float, unit: str) -> str:
    """A value in human units: seconds as ms/s, ratios as percent."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if unit == "seconds":
        return f"{x * 1000:.3g} ms" if abs(x) < 1 else f"{x:.3g} s"
    if unit == "ratio":
        return f"{x * 100:.3g}%"
    return f"{x:.4g}"


def interval(lo: float, hi: float, unit: str) -> str:
    """[lo, hi] in human units."""
    return f"[{value(lo, unit)}, {value(hi, unit)}]"


def factor(x: float) -> str:
    """A multiplicative change: ×1.083."""
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "×∞"
    return f"×{x:.3f}"


def pct(x: float) -> str:
    """A fraction as a percentage: 0.1 -> 10%."""
    if math.isinf(x):
        return "∞"
    return f"{x * 100:.3g}%"


def confidence(alpha: float) -> str:
    """The confidence level of an interval, e.g. 99.9%."""
    return f"{(1 - alpha) * 100:.4g}%"
