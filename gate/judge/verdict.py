"""The judge's output vocabulary: statuses, verdicts, comparisons, the decision and the whole judgement.

One closed set of statuses with a ranking (as Argo Rollouts and Kayenta do): a combination of several
outcomes is the worst of them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Number = float | int | str | bool | None
Numbers = dict[str, Number]


class Status(StrEnum):
    """Outcome of one check or verdict."""

    PASS = "pass"  # noqa: S105 — a status, not a password
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        """Higher is worse: pass < inconclusive < error < fail."""
        return _RANK[self]


_RANK = {Status.PASS: 0, Status.INCONCLUSIVE: 1, Status.ERROR: 2, Status.FAIL: 3}


def worst(*statuses: Status) -> Status:
    """The worst of several statuses (PASS for none)."""
    return max(statuses, key=lambda s: s.rank, default=Status.PASS)


class _Out(BaseModel):
    # inf and nan occur legitimately (an unbounded interval); JSON carries them as strings.
    model_config = ConfigDict(frozen=True, ser_json_inf_nan="strings")


ComparisonKind = Literal["regression", "conformance", "representativeness"]


class Check(_Out):
    """One statistical check inside a verdict (e.g. the location test, or the p99 tail test)."""

    name: str
    kind: ComparisonKind
    status: Status
    reason: str
    numbers: Numbers = Field(default_factory=dict)
    insufficient: bool = False
    """Inconclusive for want of evidence (missing, stale, too little, saturated), not of certainty."""


class Verdict(_Out):
    """Per objective × source: the status, a reason in words, and the numbers behind it."""

    objective: str
    sli: str
    source: str
    status: Status
    reason: str
    critical: bool = False
    numbers: Numbers = Field(default_factory=dict)
    checks: list[Check] = Field(default_factory=list)
    downweighted: bool = False
    """Synthetic evidence that does not resemble production: counted, but not as critical."""
    insufficient: bool = False
    """Some check lacked evidence; such a verdict never lets a step promote, whatever the limits."""


class Comparison(_Out):
    """A row of one of the three comparisons (regression, conformance, representativeness)."""

    kind: ComparisonKind
    sli: str
    source: str
    objective: str | None = None
    status: Status
    reason: str
    numbers: Numbers = Field(default_factory=dict)


class Comparisons(_Out):
    """The three comparisons, each reported on its own."""

    regression: list[Comparison] = Field(default_factory=list)
    conformance: list[Comparison] = Field(default_factory=list)
    representativeness: list[Comparison] = Field(default_factory=list)


Action = Literal["promote", "hold", "rollback"]


class Decision(_Out):
    """What to do with the step: promote, hold (keep collecting / wait for a human) or roll back."""

    action: Action
    reason: str
    counts: dict[str, int] = Field(default_factory=dict)


class Judgement(_Out):
    """Everything one call of `judge` concluded."""

    verdicts: list[Verdict]
    comparisons: Comparisons
    decision: Decision
    alpha: float
    """Family-wise error budget (1 - confidence)."""
    alpha_per_verdict: float
    """Its Bonferroni share per objective × source."""

    @property
    def status(self) -> Status:
        """The worst verdict (PASS when there are none)."""
        return worst(*(v.status for v in self.verdicts))
