"""The judge: pure statistics from evidence to verdicts and decisions.

No I/O, no clock, no Kubernetes, no Locust. It is handed evidence; it never runs a query. A pipeline
of named stages, one module each: `transform` (NaN, no data, outliers) → `describe` → `classify`
(conformance and regression checks) → `decide` (the policy), plus `represent` (synthetic vs
production). `judge()` in `pipeline` runs them per objective × source.
"""

from gate.judge.evidence import Counts, Evidence, FaultWindow, GaugeSeries, Histogram, Samples, Window
from gate.judge.pipeline import judge
from gate.judge.spec import JudgePolicy, ObjectiveSpec
from gate.judge.verdict import Check, Comparison, Comparisons, Decision, Judgement, Status, Verdict

__all__ = [
    "Check",
    "Comparison",
    "Comparisons",
    "Counts",
    "Decision",
    "Evidence",
    "FaultWindow",
    "GaugeSeries",
    "Histogram",
    "JudgePolicy",
    "Judgement",
    "ObjectiveSpec",
    "Samples",
    "Status",
    "Verdict",
    "Window",
    "judge",
]
