"""Reading Prometheus: a bounded, retrying HTTP client and `measure`, which turns a contract's
objectives into evidence for the judge with one query per SLI and form, and refuses stale or
missing data as evidence."""

from gate.drivers.prometheus.client import (
    PermanentError,
    PrometheusClient,
    PrometheusError,
    Sample,
    Series,
    Target,
    TemporaryError,
)
from gate.drivers.prometheus.measure import evidence_key, measure, recovery_key

__all__ = [
    "PermanentError",
    "PrometheusClient",
    "PrometheusError",
    "Sample",
    "Series",
    "Target",
    "TemporaryError",
    "evidence_key",
    "measure",
    "recovery_key",
]
