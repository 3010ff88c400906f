"""`gate judge EVIDENCE`: judge an evidence file and say why, in words or as JSON.

Exit codes: 0 promote (everything passes, or within the policy's limits), 1 roll back (a failure), 2 the
input is invalid (every problem printed with file:line and field path), 3 inconclusive (hold: more
evidence, or a human, is needed). Also registers `gate schema evidence`.
"""

from __future__ import annotations

import contextlib
import enum
import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gate.boundedio import FileRefused, read_text_limited
from gate.contract import ContractError, SliLibrary
from gate.contract.schema import register_schema
from gate.judge import Judgement, Status, judge
from gate.judge.evidence import MAX_JSON_BYTES, EvidenceDocument, evidence_json_schema, parse_evidence
from gate.judge.pipeline import describe_evidence

EXIT_PASS, EXIT_FAIL, EXIT_INVALID, EXIT_INCONCLUSIVE = 0, 1, 2, 3
_EXIT = {"promote": EXIT_PASS, "rollback": EXIT_FAIL, "hold": EXIT_INCONCLUSIVE}
_STYLE = {
    Status.PASS: "green",
    Status.FAIL: "bold red",
    Status.INCONCLUSIVE: "yellow",
    Status.ERROR: "magenta",
}


class OutputFormat(enum.StrEnum):
    """How `gate judge` prints the judgement."""

    text = "text"
    json = "json"


def register(app: typer.Typer) -> None:
    """Add `gate judge` to the application and the evidence format to `gate schema`."""
    app.command("judge")(judge_command)
    register_schema("evidence", evidence_json_schema)


def judge_command(
    evidence: Annotated[Path, typer.Argument(metavar="EVIDENCE", help="Evidence file (JSON or YAML).")],
    output: Annotated[
        OutputFormat, typer.Option("--format", help="text (words) or json.")
    ] = OutputFormat.text,
    final: Annotated[
        bool,
        typer.Option("--final", help="Treat this as the last look of a step (the policy's limits apply)."),
    ] = False,
) -> None:
    """Judge an evidence file: verdicts per objective × source and the decision, with their numbers."""
    document = _load(evidence)
    units = _units(document)
    judgement = judge(document.objectives, document, document.policy, final=final, units=units)
    if output == OutputFormat.json:
        payload = {"judgement": judgement.model_dump(mode="json"), "evidence": describe_evidence(document)}
        typer.echo(json.dumps(payload, indent=2, default=_json_default))
    else:
        _print(judgement, Console(highlight=False, soft_wrap=True))
    raise typer.Exit(_EXIT[judgement.decision.action])


def _load(path: Path) -> EvidenceDocument:
    # stat before reading: a FIFO, /dev/zero or a 3 GiB file is refused at once, nothing read.
    try:
        text = read_text_limited(path, MAX_JSON_BYTES, what="evidence")
    except FileRefused as exc:
        advice = "; send histograms instead of raw samples" if "limited to" in exc.reason else ""
        _invalid([f"{exc}{advice}"])
    try:
        document = parse_evidence(text, str(path))
    except ContractError as exc:
        _invalid([str(p) for p in exc.problems])
    if not document.objectives:
        _invalid([f"{path}: objectives: list at least one objective (in the contract's syntax) to judge"])
    return document


def _invalid(lines: list[str]) -> NoReturn:
    for line in lines:
        typer.echo(line, err=True)
    raise typer.Exit(EXIT_INVALID)


def _units(document: EvidenceDocument) -> dict[str, str]:
    """Units per SLI: the file's own, else the SLI library's, so reasons print "212 ms" and "0.1%"."""
    units: dict[str, str] = {}
    try:
        library = SliLibrary.default()
    except ContractError:
        library = None
    for objective in document.objectives:
        if library is not None:
            with contextlib.suppress(KeyError, ContractError):
                units[objective.sli] = str(library.get(objective.sli).unit)
    units.update(document.units)
    return units


def _json_default(value: object) -> object:
    return str(value)


def _print(judgement: Judgement, console: Console) -> None:
    table = Table(show_header=True, header_style="bold", expand=False, show_lines=False)
    table.add_column("verdict")
    table.add_column("objective")
    table.add_column("source")
    table.add_column("why", overflow="fold")
    for v in judgement.verdicts:
        style = _STYLE[v.status]
        name = (
            v.objective
            + (" (critical)" if v.critical else "")
            + (" (down-weighted)" if v.downweighted else "")
        )
        table.add_row(f"[{style}]{v.status.value.upper()}[/]", escape(name), v.source, escape(v.reason))
    console.print(table)
    for row in judgement.comparisons.representativeness:
        console.print(f"[{_STYLE[row.status]}]representativeness[/] {escape(row.sli)}: {escape(row.reason)}")
    d = judgement.decision
    colour = {"promote": "green", "hold": "yellow", "rollback": "bold red"}[d.action]
    console.print(f"[{colour}]decision: {d.action.upper()}[/] — {escape(d.reason)}")
    console.print(
        f"confidence {1 - judgement.alpha:.4g} family-wise; {judgement.alpha_per_verdict:.3g} of alpha "
        "per objective × source; always-valid, so repeated looks do not add false rollbacks"
    )
