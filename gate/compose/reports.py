"""Reports of ``gate check``: JSON (everything), JUnit XML (one test case per objective × source)
and Markdown (for people, and for ``$GITHUB_STEP_SUMMARY``)."""

from __future__ import annotations

import json
import math
import time
import xml.etree.ElementTree as ET
from typing import Any

from gate import redact
from gate.compose.check import Case, CheckReport

_ICON = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️", "error": "💥", "invalid": "⛔", "skipped": "⏭️"}


def to_json(report: CheckReport) -> dict[str, Any]:
    """The whole report as JSON-ready data (stable keys, documented in docs/ci.md)."""
    data: dict[str, Any] = _clean(
        {
            "gate": "check",
            "version": 1,
            "contract": report.contract,
            "service": report.service,
            "status": report.status,
            "exit_code": report.exit_code,
            "reason": report.reason,
            "stable_url": report.stable_url,
            "canary_url": report.canary_url,
            "prometheus_url": report.prometheus_url,
            "started_at": report.started_at,
            "ended_at": report.ended_at,
            "problems": report.problems,
            "cases": [
                {
                    "objective": c.objective,
                    "sli": c.sli,
                    "source": c.source,
                    "phase": c.phase,
                    "status": c.status,
                    "critical": c.critical,
                    "reason": c.reason,
                    "numbers": c.numbers,
                }
                for c in report.cases
            ],
            "phases": [
                {
                    "name": p.name,
                    "chaos": p.chaos,
                    "started_at": p.started_at,
                    "ended_at": p.ended_at,
                    "fault": None if p.fault is None else p.fault.model_dump(mode="json"),
                    "decision": None if p.judgement is None else p.judgement.decision.model_dump(mode="json"),
                    "comparisons": None
                    if p.judgement is None
                    else p.judgement.comparisons.model_dump(mode="json"),
                    "evidence": p.evidence,
                    "load": p.load,
                    "problems": p.problems,
                }
                for p in report.phases
            ],
        }
    )
    return data


def json_text(report: CheckReport) -> str:
    """The JSON report as text."""
    return redact.redact_text(json.dumps(to_json(report), indent=2, sort_keys=False, default=str) + "\n")


def to_junit(report: CheckReport) -> str:
    """JUnit XML: one suite for the check, one test case per objective × source.

    Fail → ``<failure>``, Error → ``<error>``, Inconclusive and not judged → ``<skipped>``; an
    infrastructure problem or invalid input is one more ``<error>`` case, named ``gate check``, so
    a JUnit view is never green when the exit code is not."""
    cases = list(report.cases)
    extra = report.status in {"error", "invalid"}
    suite = ET.Element(
        "testsuite",
        {
            "name": f"gate check {report.contract}",
            "tests": str(len(cases) + int(extra)),
            "failures": str(sum(c.status == "fail" for c in cases)),
            "errors": str(sum(c.status == "error" for c in cases) + int(extra)),
            "skipped": str(sum(c.status in {"inconclusive", "skipped"} for c in cases)),
            "time": f"{max(0.0, report.ended_at - report.started_at):.3f}",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(report.started_at)),
        },
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("status", report.status),
        ("exit_code", str(report.exit_code)),
        ("reason", report.reason),
        ("stable_url", report.stable_url),
        ("canary_url", report.canary_url),
    ):
        ET.SubElement(props, "property", {"name": name, "value": value})
    for c in cases:
        _case(suite, report, c)
    if extra:
        tc = ET.SubElement(suite, "testcase", {"name": "gate check", "classname": f"gate.{report.contract}"})
        message = clip(report.reason, 500)
        error = ET.SubElement(tc, "error", {"message": message, "type": report.status})
        error.text = "\n".join(report.problems or [report.reason])
    suites = ET.Element("testsuites", {"name": "gate"})
    suites.append(suite)
    ET.indent(suites)
    xml = ET.tostring(suites, encoding="unicode")
    return redact.redact_text('<?xml version="1.0" encoding="UTF-8"?>\n' + xml + "\n")


def _case(suite: ET.Element, report: CheckReport, c: Case) -> None:
    tc = ET.SubElement(
        suite,
        "testcase",
        {
            "name": f"{c.objective} [{c.source}]",
            "classname": f"gate.{report.contract}.{c.phase.replace(' ', '-')}",
        },
    )
    detail = "\n".join(f"{k} = {v}" for k, v in c.numbers.items())
    message = clip(c.reason, 500)
    if c.status == "fail":
        ET.SubElement(
            tc, "failure", {"message": message, "type": "critical" if c.critical else "fail"}
        ).text = c.reason + ("\n" + detail if detail else "")
    elif c.status == "error":
        ET.SubElement(tc, "error", {"message": message, "type": "error"}).text = c.reason
    elif c.status in {"inconclusive", "skipped"}:
        ET.SubElement(tc, "skipped", {"message": f"{c.status}: {message}"})
    if detail and c.status != "fail":
        ET.SubElement(tc, "system-out").text = detail


def to_markdown(report: CheckReport) -> str:
    """A summary for people: the outcome, then a table of objective × source."""
    icon = _ICON.get(report.status, "")
    lines = [
        f"## {icon} gate check `{report.contract}`: **{report.status}** (exit {report.exit_code})",
        "",
        _md(report.reason) or "",
        "",
        f"stable `{report.stable_url}` · canary `{report.canary_url}`"
        + (f" · Prometheus `{report.prometheus_url}`" if report.prometheus_url else ""),
        "",
    ]
    if report.cases:
        lines += ["| objective | source | phase | verdict | reason |", "|---|---|---|---|---|"]
        for c in report.cases:
            crit = " (critical)" if c.critical else ""
            lines.append(
                f"| `{c.objective}`{crit} | {c.source} | {c.phase} | {_ICON.get(c.status, '')} {c.status} "
                f"| {_md(c.reason)} |"
            )
        lines.append("")
    for p in report.phases:
        if p.load:
            tracks = p.load.get("tracks", {}) if isinstance(p.load, dict) else {}
            bits = []
            for track, t in tracks.items() if isinstance(tracks, dict) else []:
                if isinstance(t, dict):
                    bits.append(f"{track}: {t.get('requests', '?')} requests, {t.get('errors', '?')} errors")
            if bits:
                lines.append(f"- **{p.name}** load: " + "; ".join(bits))
    if report.problems:
        lines += ["", "**Problems**", ""] + [f"- {_md(p)}" for p in report.problems]
    return redact.redact_text("\n".join(lines).rstrip() + "\n")


def _md(text: str, limit: int = 400) -> str:
    # Table cells must stay on one line and must not close the cell early; long text ends on a word.
    return clip(text.replace("\n", " "), limit).replace("|", "\\|")


def clip(text: str, limit: int) -> str:
    """``text`` at most ``limit`` characters, cut at a word boundary and marked with "…" when cut."""
    if len(text) <= limit:
        return text
    head = text[: max(1, limit - 1)]
    space = head.rfind(" ")
    if space >= limit // 2:
        head = head[:space]
    return head.rstrip(" ,;:") + "…"


def _clean(value: Any) -> Any:
    """JSON has no inf/nan: carry them as strings, like the judge does."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value
