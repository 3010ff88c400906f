"""Evidence models: strict, bounded, and merged per (sli, source, track)."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from gate.judge.evidence import MAX_SAMPLES, Counts, Evidence, Histogram, Samples, Window


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Evidence.model_validate({"slis": {"x": {"production": {"stable": {"kind": "counts", "errs": 1}}}}})


def test_unknown_source_and_track_are_rejected() -> None:
    with pytest.raises(ValidationError):
        Evidence.model_validate({"slis": {"x": {"prod": {"stable": {"kind": "counts"}}}}})
    with pytest.raises(ValidationError):
        Evidence.model_validate({"slis": {"x": {"production": {"baseline": {"kind": "counts"}}}}})


def test_sizes_are_bounded() -> None:
    with pytest.raises(ValueError, match="exceed"):
        Samples.from_array([0.1] * (MAX_SAMPLES + 1))


def test_histogram_shape_is_checked() -> None:
    with pytest.raises(ValidationError, match=r"\+Inf"):
        Histogram(bounds=[0.1, 0.2], counts=[1, 2])
    with pytest.raises(ValidationError, match="increasing"):
        Histogram(bounds=[0.2, 0.1, math.inf], counts=[1, 2, 3])
    with pytest.raises(ValidationError, match="entries"):
        Histogram(bounds=[0.1, math.inf], counts=[1])


def test_counts_cannot_have_more_errors_than_requests() -> None:
    with pytest.raises(ValidationError, match="exceed"):
        Counts(errors=5, total=4)


def test_window_must_be_ordered() -> None:
    with pytest.raises(ValidationError):
        Window(start=10, end=5)


def test_merge_prefers_usable_later_richer_entries() -> None:
    old = Evidence(
        slis={"e": {"production": {"canary": Counts(errors=1, total=100, window=Window(start=0, end=60))}}}
    )
    new = Evidence(
        slis={"e": {"production": {"canary": Counts(errors=2, total=200, window=Window(start=0, end=120))}}}
    )
    stale = Evidence(slis={"e": {"production": {"canary": Counts(errors=0, total=900, stale=True)}}})
    merged = old.merge(new).merge(stale)
    item = merged.get("e", "production", "canary")
    assert isinstance(item, Counts) and item.total == 200
    other = Evidence(slis={"f": {"shadow": {"stable": Counts(errors=0, total=1)}}})
    assert old.merge(other).get("f", "shadow", "stable") is not None
    assert old.get("e", "production", "canary") is not None  # merge does not mutate


def test_samples_array_is_cached_and_consistent() -> None:
    s = Samples(values=[0.2, 0.1])
    assert s.array().tolist() == [0.2, 0.1]
    assert s.array() is s.array()
