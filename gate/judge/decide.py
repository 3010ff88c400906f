"""Stage 4 — score and decide: from verdicts to one decision for the step, following the policy.

* a critical objective that fails (on a source not down-weighted) rolls back at once;
* more failures than `failure_limit`, or more errors than `error_limit`, roll back (fail safe:
  a judge that cannot judge never promotes);
* anything inconclusive holds while the step collects evidence; at the end of the step (`final`),
  more than `inconclusive_limit` inconclusive verdicts do what `on_inconclusive` says (hold or roll back),
  and so does a single verdict that lacked evidence (missing, stale, too little, buckets that cannot
  resolve the tolerance, less power than the policy demands): never promote on it.
  A verdict left undecided on sufficient evidence is tolerated within the limit, critical or not:
  no regression was shown where the evidence could have shown one (as Kayenta passes "no
  significant difference"); requiring every critical objective to *prove* its pass held 100 % of
  the benchmark's good canaries for a human (docs/benchmarks.md);
* only when every verdict passes (tolerated failures and errors aside) is the step promoted.
"""

from __future__ import annotations

from gate.judge.spec import JudgePolicy
from gate.judge.verdict import Decision, Status, Verdict


def decide(verdicts: list[Verdict], policy: JudgePolicy, final: bool = False) -> Decision:
    """The step's decision: promote, hold or rollback, with the reason."""
    fails = [v for v in verdicts if v.status == Status.FAIL]
    critical = [v for v in fails if v.critical and not v.downweighted]
    errors = [v for v in verdicts if v.status == Status.ERROR]
    pending = [v for v in verdicts if v.status == Status.INCONCLUSIVE]
    passes = [v for v in verdicts if v.status == Status.PASS]
    counts = {
        "pass": len(passes),
        "fail": len(fails),
        "inconclusive": len(pending),
        "error": len(errors),
        "critical_fail": len(critical),
    }
    if critical:
        v = critical[0]
        return Decision(
            action="rollback",
            counts=counts,
            reason=f"critical objective {v.objective} failed on {v.source}: {v.reason}",
        )
    if len(fails) > policy.failure_limit:
        names = ", ".join(f"{v.objective}@{v.source}" for v in fails[:5])
        return Decision(
            action="rollback",
            counts=counts,
            reason=f"{len(fails)} failed (limit {policy.failure_limit}): {names}; first: {fails[0].reason}",
        )
    if len(errors) > policy.error_limit:
        names = ", ".join(f"{v.objective}@{v.source}" for v in errors[:5])
        return Decision(
            action="rollback",
            counts=counts,
            reason=f"{len(errors)} could not be judged (limit {policy.error_limit}): {names}; fail safe",
        )
    if not verdicts:
        return Decision(action="hold", counts=counts, reason="no objectives to judge")
    if pending:
        names = ", ".join(f"{v.objective}@{v.source}" for v in pending[:5])
        if not final:
            return Decision(
                action="hold",
                counts=counts,
                reason=f"collecting evidence: {len(pending)} of {len(verdicts)} inconclusive ({names})",
            )
        starved = [v for v in pending if v.insufficient]
        if starved:
            names = ", ".join(f"{v.objective}@{v.source}" for v in starved[:5])
            return Decision(
                action=policy.on_inconclusive,
                counts=counts,
                reason=f"step ended without enough evidence for {names}: {starved[0].reason}; "
                "never promoted on evidence that could not have shown a regression (missing, stale, too "
                f"little, unresolvable by its buckets, or without the demanded power); policy says "
                f"{policy.on_inconclusive}",
            )
        if len(pending) > policy.inconclusive_limit:
            return Decision(
                action=policy.on_inconclusive,
                counts=counts,
                reason=f"step ended with {len(pending)} inconclusive (limit {policy.inconclusive_limit}): "
                f"{names}; policy says {policy.on_inconclusive}",
            )
    if not passes:
        return Decision(action="hold", counts=counts, reason="no verdict passed")
    tolerated = len(fails) + len(errors) + len(pending)
    note = f" ({tolerated} tolerated by the policy's limits)" if tolerated else ""
    return Decision(
        action="promote", counts=counts, reason=f"{len(passes)} of {len(verdicts)} verdicts pass{note}"
    )
