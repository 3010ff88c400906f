"""What a reviewer sees, computed from a run's records: pure functions, no I/O.

The pages and the JSON API both render these dictionaries (the API returns them as they are), so
what a page shows is exactly what ``/api/v1`` serves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

from gate.drivers.store import LookRecord, RunDetail, RunSummary, TransitionRecord, VerdictRecord

SOURCES = ("synthetic", "shadow", "production")
TRACKS = ("stable", "canary")
OUTCOMES = ("running", "held", "promoted", "rolled_back", "failed")


def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def age(seconds: float) -> str:
    """A duration in the largest sensible unit: 42s, 7m, 3h, 2d."""
    s = max(0.0, seconds)
    if s < 90:
        return f"{s:.0f}s"
    if s < 90 * 60:
        return f"{s / 60:.0f}m"
    if s < 36 * 3600:
        return f"{s / 3600:.0f}h"
    return f"{s / 86400:.0f}d"


def step_label(step: dict[str, Any]) -> str:
    kind = str(step.get("kind", "?"))
    dur = _finite(step.get("duration"))
    secs = "until approved" if dur is None else f"{dur:g}s"
    if kind == "setWeight":
        return f"setWeight {step.get('weight')}%"
    if kind == "mirror":
        return f"mirror {step.get('percent')}%"
    if kind == "chaos":
        return f"chaos {step.get('experiment')} for {secs}"
    return f"{kind} {secs}"


def run_row(
    summary: RunSummary, *, last: LookRecord | None = None, now: float | None = None
) -> dict[str, Any]:
    """One line of the runs list."""
    now = time.time() if now is None else now
    return {
        "id": summary.id,
        "contract": summary.contract_name,
        "service": summary.service,
        "status": summary.status,
        "phase": summary.phase,
        "step": summary.step,
        "steps": summary.steps,
        "weight": summary.weight,
        "reason": summary.reason,
        "created_at": summary.created_at,
        "updated_at": summary.updated_at,
        "finished_at": summary.finished_at,
        "age": age(now - summary.created_at),
        "last_decision": None if last is None else last.action,
    }


def last_decision(summary: RunSummary) -> str:
    """The last decision in words, as far as the summary row knows it."""
    if summary.status == "promoted":
        return "promote"
    if summary.status in ("rolled_back", "failed"):
        return "rollback"
    if summary.status == "held":
        return "hold (waiting for a person)"
    return "—"


# ------------------------------------------------------------------------------------- a run


def steps_timeline(
    detail: RunDetail, step_decisions: dict[int, dict[str, int]] | None = None
) -> list[dict[str, Any]]:
    """Each step: what it did, when it began and ended, the weight, and the looks' decisions in it."""
    steps = list(detail.plan.get("steps", [])) if isinstance(detail.plan, dict) else []
    started = list(detail.state.get("step_started_at", []) or [])
    current = detail.summary.step
    finished = detail.summary.phase == "finished"
    weight = 0
    out: list[dict[str, Any]] = []
    by_step: dict[int, list[LookRecord]] = {}
    for lk in detail.looks:
        by_step.setdefault(lk.step, []).append(lk)
    for i, step in enumerate(steps):
        if step.get("kind") == "setWeight" and isinstance(step.get("weight"), int):
            weight = int(step["weight"])
        begin = _finite(started[i]) if i < len(started) else None
        end = _finite(started[i + 1]) if i + 1 < len(started) else None
        looks = by_step.get(i, [])
        counts: dict[str, int] = {}
        if step_decisions is not None:  # exact counts from the store (the looks may be thinned)
            counts = dict(step_decisions.get(i, {}))
        else:
            for lk in looks:
                counts[lk.action] = counts.get(lk.action, 0) + 1
        if i < current or (finished and detail.summary.status == "promoted"):
            state = "done"
        elif i == current and not finished:
            state = "held" if detail.summary.status == "held" else "current"
        elif i == current and finished:
            state = "stopped"
        else:
            state = "to do"
        out.append(
            {
                "index": i,
                "label": step_label(step),
                "kind": step.get("kind"),
                "weight": weight,
                "started_at": begin,
                "ended_at": end if end is not None else (detail.summary.finished_at if begin else None),
                "state": state,
                "looks": sum(counts.values()),
                "decisions": counts,
                "last_reason": looks[-1].reason if looks else "",
            }
        )
    return out


def _effect_windows(
    timeline: Sequence[TransitionRecord], start: str, stop: str, key: str
) -> list[dict[str, Any]]:
    """Windows from an effect that starts something to the one that stops it (or a rollback)."""
    windows: list[dict[str, Any]] = []
    open_: dict[str, dict[str, Any]] = {}
    for t in timeline:
        for e in t.effects:
            at = e.done_at if e.done_at is not None else t.at
            name = str(e.effect.get(key, "") or e.kind)
            if e.kind == start:
                w = {
                    "name": name,
                    "start": at,
                    "end": None,
                    "step": e.effect.get("step"),
                    "duration": e.effect.get("duration"),
                    "ok": e.ok,
                    "error": e.error,
                }
                open_[name] = w
                windows.append(w)
            elif e.kind in {stop, "rollback"}:
                targets = [open_.pop(name)] if name in open_ else []
                if e.kind == "rollback" or (stop == "stop_load" and not targets):
                    targets = list(open_.values())
                    open_.clear()
                for w in targets:
                    w["end"] = at
    return windows


def chaos_windows(detail: RunDetail) -> list[dict[str, Any]]:
    return _effect_windows(detail.timeline, "start_chaos", "stop_chaos", "experiment")


def load_windows(detail: RunDetail) -> list[dict[str, Any]]:
    return _effect_windows(detail.timeline, "start_load", "stop_load", "step")


def transitions(detail: RunDetail, *, limit: int = 200) -> list[dict[str, Any]]:
    """The last transitions in words: input, weight, status, effects and whether they were carried out."""
    rows = []
    for t in detail.timeline[-limit:]:
        rows.append(
            {
                "seq": t.seq,
                "at": t.at,
                "input": t.input_kind,
                "by": str(t.input.get("by", "")),
                "reason": str(t.input.get("reason", "") or t.state.get("reason", ""))[:500]
                if t.input_kind in ("judged", "abort", "resume", "look_failed", "effect_failed")
                else "",
                "weight": t.state.get("weight"),
                "status": t.state.get("status"),
                "step": t.state.get("step"),
                "effects": [
                    {"kind": e.kind, "done": e.done, "ok": e.ok, "error": e.error[:300]} for e in t.effects
                ],
            }
        )
    return rows


def _stat_key(verdict_numbers: dict[str, Any]) -> str | None:
    q = _finite(verdict_numbers.get("quantile"))
    if q is not None and 0 < q < 1:
        return f"p{round(q * 100):d}"
    return None


def objectives(
    detail: RunDetail, verdict_counts: dict[tuple[str, str], dict[str, int]] | None = None
) -> list[dict[str, Any]]:
    """Per objective × source: the SLI over the looks for stable and canary, the bound or tolerance
    drawn, and the latest verdict in words (difference, interval, sample sizes, boundary).

    A verdict may come without its numbers and reason (the store's fast path loads those only for the
    latest looks): the statistic and the bounds are taken from the verdicts that have them."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    latest: dict[tuple[str, str], tuple[LookRecord, VerdictRecord]] = {}
    for lk in detail.looks:  # first pass: which statistic each objective charts, and its bounds
        for v in lk.verdicts:
            k = (v.objective, v.source)
            entry = found.get(k)
            if entry is None:
                entry = found[k] = {
                    "objective": v.objective,
                    "sli": v.sli,
                    "source": v.source,
                    "stat": None,
                    "bound_max": None,
                    "bound_min": None,
                    "tolerance": None,
                    "x": [],
                    "stable": [],
                    "canary": [],
                    "verdicts": {},
                    "latest": None,
                }
            if not v.numbers:
                continue
            entry["stat"] = entry["stat"] or _stat_key(v.numbers)
            for name, key in (("max", "bound_max"), ("min", "bound_min"), ("tolerance", "tolerance")):
                val = _finite(v.numbers.get(name))
                if val is not None:
                    entry[key] = val
    for lk in detail.looks:  # second pass: the series
        evidence = lk.evidence if isinstance(lk.evidence, dict) else {}
        for v in lk.verdicts:
            k = (v.objective, v.source)
            entry = found[k]
            per_source = evidence.get(v.sli)
            ev = per_source.get(v.source, {}) if isinstance(per_source, dict) else {}
            entry["x"].append(lk.at)
            for track in TRACKS:
                row = ev.get(track, {}) if isinstance(ev, dict) else {}
                entry[track].append(_pick(row, entry["stat"]))
            entry["verdicts"][v.status] = entry["verdicts"].get(v.status, 0) + 1
            latest[k] = (lk, v)
    out = []
    for k, entry in found.items():
        if k in latest:
            lk, v = latest[k]
            entry["latest"] = {
                "look": lk.look,
                "at": lk.at,
                "status": v.status,
                "reason": v.reason,
                "numbers": {k2: _json_number(n) for k2, n in v.numbers.items()},
                "words": evidence_words(v.status, v.reason, v.numbers),
            }
        entry["unit"] = "s" if (entry["stat"] or "").startswith("p") else ""
        if verdict_counts is not None and k in verdict_counts:
            entry["verdicts"] = dict(verdict_counts[k])
        entry["last_stable"] = next((x for x in reversed(entry["stable"]) if x is not None), None)
        entry["last_canary"] = next((x for x in reversed(entry["canary"]) if x is not None), None)
        out.append(entry)
    out.sort(key=lambda e: (e["objective"], SOURCES.index(e["source"]) if e["source"] in SOURCES else 9))
    return out


def _pick(row: Any, stat: str | None) -> float | None:
    if not isinstance(row, dict):
        return None
    for key in ([stat] if stat else []) + ["p95", "ratio", "level", "mean"]:
        v = _finite(row.get(key))
        if v is not None:
            return v
    return None


def _json_number(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, int | float | str | bool) or x is None:
        return x
    return str(x)[:200]


def _fmt(x: Any) -> str:
    v = _finite(x)
    if v is None:
        return "—"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.4g}"


def _pct(x: Any) -> str:
    v = _finite(x)
    return "—" if v is None else f"{v * 100:+.1f}%"


def evidence_words(status: str, reason: str, numbers: dict[str, Any]) -> list[str]:
    """The judge's evidence in a reviewer's words: what was compared, on how much, where it stopped."""
    words = [f"{status}: {reason}" if reason else status]
    n_c, n_s = numbers.get("n_canary"), numbers.get("n_stable")
    if n_c is not None or n_s is not None:
        words.append(f"samples: canary {_fmt(n_c)}, stable {_fmt(n_s)}")
    check = numbers.get("check")
    if check == "bound" and "canary" in numbers:
        words.append(
            f"canary estimate {_fmt(numbers['canary'])}, "
            f"interval [{_fmt(numbers.get('lower'))}, {_fmt(numbers.get('upper'))}]"
        )
    elif "difference" in numbers:
        words.append(
            f"difference canary vs stable {_pct(numbers['difference'])}, "
            f"interval [{_pct(numbers.get('lower'))}, {_pct(numbers.get('upper'))}]"
        )
    elif "canary_lower" in numbers and "stable_lower" in numbers:
        words.append(
            f"canary in [{_fmt(numbers['canary_lower'])}, {_fmt(numbers.get('canary_upper'))}], "
            f"stable in [{_fmt(numbers['stable_lower'])}, {_fmt(numbers.get('stable_upper'))}]"
        )
    if "tolerance" in numbers:
        tol = _finite(numbers["tolerance"])
        if tol is not None:
            words.append(f"tolerance {tol * 100:.0f}% of stable")
    if "max" in numbers and _finite(numbers["max"]) is not None:
        words.append(f"bound ≤ {_fmt(numbers['max'])}")
    if "min" in numbers and _finite(numbers["min"]) is not None:
        words.append(f"bound ≥ {_fmt(numbers['min'])}")
    if "statistic" in numbers and "boundary" in numbers:
        words.append(
            f"sequential test: statistic {_fmt(numbers['statistic'])} "
            f"against boundary {_fmt(numbers['boundary'])}"
        )
    if status.lower() == "inconclusive" and not reason:
        words.append("not enough evidence yet to decide either way")
    return words


def load_summary(detail: RunDetail) -> dict[str, Any]:
    """Synthetic load: when it ran, and requests per second measured from the looks' sample counts."""
    windows = load_windows(detail)
    rps: list[dict[str, Any]] = []
    for lk in detail.looks[-500:]:
        span = lk.at - lk.since
        if span <= 0 or not isinstance(lk.evidence, dict):
            continue
        for sli, per_source in lk.evidence.items():
            syn = per_source.get("synthetic") if isinstance(per_source, dict) else None
            if not isinstance(syn, dict):
                continue
            for track in TRACKS:
                n = _finite((syn.get(track) or {}).get("n")) if isinstance(syn.get(track), dict) else None
                if n is not None:
                    rps.append({"look": lk.look, "sli": sli, "track": track, "rps": n / span})
            break
    peak = max((r["rps"] for r in rps), default=None)
    return {"windows": windows, "rps": rps[-50:], "peak_rps": peak}


def representativeness(detail: RunDetail) -> list[dict[str, Any]]:
    """Synthetic vs production on the stable track, per SLI, at the last look that saw both."""
    rows: dict[str, dict[str, Any]] = {}
    for lk in detail.looks:
        if not isinstance(lk.evidence, dict):
            continue
        for sli, per_source in lk.evidence.items():
            if not isinstance(per_source, dict):
                continue
            syn = (per_source.get("synthetic") or {}).get("stable")
            prod = (per_source.get("production") or {}).get("stable")
            usable = (
                isinstance(syn, dict) and syn.get("usable") is not False and (_finite(syn.get("n")) or 0) > 0
            )
            if usable and isinstance(syn, dict) and isinstance(prod, dict):
                keys = [k for k in ("p50", "p95", "p99", "ratio", "level", "n") if k in syn or k in prod]
                rows[sli] = {
                    "sli": sli,
                    "look": lk.look,
                    "at": lk.at,
                    "rows": [
                        {
                            "stat": k,
                            "synthetic": _json_number(syn.get(k)),
                            "production": _json_number(prod.get(k)),
                            "ratio": _ratio(syn.get(k), prod.get(k)) if k != "n" else None,
                        }
                        for k in keys
                    ],
                }
    return list(rows.values())


def _ratio(a: Any, b: Any) -> float | None:
    x, y = _finite(a), _finite(b)
    if x is None or y is None or y == 0:
        return None
    return x / y


def look_row(lk: LookRecord) -> dict[str, Any]:
    return {
        "look": lk.look,
        "step": lk.step,
        "at": lk.at,
        "since": lk.since,
        "action": lk.action,
        "reason": lk.reason,
        "verdicts": [
            {
                "objective": v.objective,
                "sli": v.sli,
                "source": v.source,
                "status": v.status,
                "reason": v.reason,
            }
            for v in lk.verdicts
        ],
    }


def run_view(
    detail: RunDetail,
    *,
    audit: Iterable[dict[str, Any]] = (),
    now: float | None = None,
    looks_total: int | None = None,
    step_decisions: dict[int, dict[str, int]] | None = None,
    verdict_counts: dict[tuple[str, str], dict[str, int]] | None = None,
) -> dict[str, Any]:
    """Everything the run page shows (``detail.looks`` may be thinned: the counts say how many)."""
    last = detail.looks[-1] if detail.looks else None
    row = run_row(detail.summary, last=last, now=now)
    row["last_decision"] = last.action if last else last_decision(detail.summary)
    row["face"] = str(detail.meta.get("face", ""))
    row["namespace"] = ""
    return {
        "run": row,
        "meta": {k: _json_number(v) for k, v in detail.meta.items()},
        "policy": detail.plan.get("policy", {}) if isinstance(detail.plan, dict) else {},
        "steps": steps_timeline(detail, step_decisions),
        "chaos": chaos_windows(detail),
        "load": load_summary(detail),
        "objectives": objectives(detail, verdict_counts),
        "representativeness": representativeness(detail),
        "looks": [look_row(lk) for lk in detail.looks[-30:]][::-1],
        "looks_total": len(detail.looks) if looks_total is None else looks_total,
        "transitions": transitions(detail, limit=60)[::-1],
        "diagnostics": [
            {
                "id": d.id,
                "name": d.name,
                "url": d.url,
                "content_type": d.content_type,
                "size": d.size,
                "truncated": d.truncated,
                "error": d.error,
                "at": d.at,
            }
            for d in detail.diagnostics
        ],
        "notifications": [
            {"channel": n.channel, "event": n.event, "ok": n.ok, "error": n.error, "at": n.at}
            for n in detail.notifications
        ],
        "audit": list(audit),
    }


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Two runs' objectives side by side: the latest verdict and last canary/stable values of each."""

    def index(view: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
        return {(o["objective"], o["source"]): o for o in view["objectives"]}

    ia, ib = index(a), index(b)
    keys = sorted(set(ia) | set(ib))
    rows = []
    for k in keys:
        rows.append(
            {
                "objective": k[0],
                "source": k[1],
                "a": _brief(ia.get(k)),
                "b": _brief(ib.get(k)),
            }
        )
    return rows


def _brief(o: dict[str, Any] | None) -> dict[str, Any] | None:
    if o is None:
        return None
    latest = o.get("latest") or {}
    canary = next((v for v in reversed(o["canary"]) if v is not None), None)
    stable = next((v for v in reversed(o["stable"]) if v is not None), None)
    return {
        "status": latest.get("status"),
        "reason": latest.get("reason"),
        "canary": canary,
        "stable": stable,
    }
