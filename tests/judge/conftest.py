"""Builders for judge tests: evidence from numpy draws, objectives, a fixed random generator."""

from __future__ import annotations

import numpy as np
import pytest

from gate.judge import Counts, Evidence, Histogram, Samples


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


def samples_evidence(
    stable: np.ndarray, canary: np.ndarray, sli: str = "latency", source: str = "production"
) -> Evidence:
    return Evidence(
        slis={sli: {source: {"stable": Samples.from_array(stable), "canary": Samples.from_array(canary)}}}
    )


def counts_evidence(
    stable: tuple[int, int], canary: tuple[int, int], sli: str = "errors", source: str = "production"
) -> Evidence:
    return Evidence(
        slis={
            sli: {
                source: {
                    "stable": Counts(errors=stable[0], total=stable[1]),
                    "canary": Counts(errors=canary[0], total=canary[1]),
                }
            }
        }
    )


def to_histogram(values: np.ndarray, bounds: list[float]) -> Histogram:
    edges = np.array(bounds, dtype=float)
    cumulative = [float(np.sum(values <= b)) for b in edges]
    return Histogram(bounds=bounds, counts=cumulative)
