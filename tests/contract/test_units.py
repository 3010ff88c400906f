"""Human units parse into base units, and everything else is refused with a plain message."""

from __future__ import annotations

import pytest

from gate.contract.units import (
    format_duration,
    format_promql_duration,
    parse_duration,
    parse_fraction,
    parse_quantity_with_dimension,
    parse_rate,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("3m", 180),
        ("1h30m", 5400),
        ("2.5s", 2.5),
        ("1d", 86400),
        (12, 12),
        ("0", 0),
        (" 5s ", 5),
        # Written as people write them: a space before the unit, or the unit as a word.
        ("220 ms", 0.22),
        ("3 min", 180),
        ("3 minutes", 180),
        ("1h 30m", 5400),
        ("1 hour 30 minutes", 5400),
        ("30 sec", 30),
        ("2 days", 172800),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    ["3 fortnights", "3 minutess", "1 h h", "-1s", "5x", "", "1e999", True, None, [1], "nan", "ms", "3 M"],
)
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("text", "value"), [("0.1%", 0.001), ("99%", 0.99), (0.25, 0.25), ("15 %", 0.15)])
def test_fractions(text: object, value: float) -> None:
    assert parse_fraction(text) == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "value"), [("10/s", 10), ("600/min", 10), ("0/min", 0), ("5Mi/h", 5 * 1024**2 / 3600)]
)
def test_rates(text: object, value: float) -> None:
    assert parse_rate(text) == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "value", "dimension"),
    [
        ("220ms", 0.22, "duration"),
        ("2.1s", 2.1, "duration"),
        ("0.1%", 0.001, "fraction"),
        ("512Mi", 512 * 1024**2, "bytes"),
        (100, 100, "number"),
        ("1e3", 1000, "number"),
    ],
)
def test_quantities_know_their_dimension(text: object, value: float, dimension: str) -> None:
    got, dim = parse_quantity_with_dimension(text)
    assert got == pytest.approx(value)
    assert dim == dimension


def test_error_messages_never_echo_huge_values() -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration("x" * 100_000)
    assert len(str(caught.value)) < 200


def test_formatting_round_trips() -> None:
    for seconds in (0.25, 1, 59, 60, 90, 180, 3600, 5400, 86400):
        assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)
    assert format_promql_duration(60) == "1m"
    assert format_promql_duration(0.5) == "500ms"
    assert format_promql_duration(90) == "90s"
    with pytest.raises(ValueError):
        format_promql_duration(0)
