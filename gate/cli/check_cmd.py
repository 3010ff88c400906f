"""`gate check`: the CI step — the contract's load and chaos against two running versions, judged.

Exit codes: 0 pass, 1 fail, 2 invalid input, 3 inconclusive, 4 infrastructure error.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gate.compose import reports
from gate.compose.check import EXIT_INFRA, EXIT_INVALID, CheckOptions, CheckReport, run_check
from gate.contract import ContractError, SliLibrary, load_contract
from gate.settings import Settings

_STYLE = {"pass": "green", "fail": "red", "inconclusive": "yellow", "error": "magenta", "skipped": "dim"}


def register(app: typer.Typer) -> None:
    """Add `gate check` to the `gate` application."""
    app.command("check")(check)


def check(
    contract_path: Annotated[Path, typer.Argument(metavar="CONTRACT", help="The performance contract.")],
    *,
    stable_url: Annotated[str, typer.Option("--stable-url", help="Base URL of the running stable version.")],
    canary_url: Annotated[str, typer.Option("--canary-url", help="Base URL of the running canary version.")],
    prometheus: Annotated[
        str | None,
        typer.Option(
            "--prometheus",
            help="Prometheus that scrapes both versions [env GATE_PROMETHEUS_URL; default: none].",
        ),
    ] = None,
    fault_proxy: Annotated[
        str | None,
        typer.Option("--fault-proxy", help="Admin URL of the fault proxy (for built-in faults)."),
    ] = None,
    no_chaos: Annotated[
        bool, typer.Option("--no-chaos", help="Skip chaos (its objectives are skipped).")
    ] = False,
    json_report: Annotated[
        Path | None, typer.Option("--json-report", help="Write the JSON report here.")
    ] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write a JUnit XML report here.")] = None,
    markdown: Annotated[
        Path | None, typer.Option("--markdown", help="Write a Markdown summary here.")
    ] = None,
    workdir: Annotated[
        Path | None, typer.Option("--workdir", help="Keep Locust and chaos files here (default: temporary).")
    ] = None,
) -> None:
    """Run the contract's load (and chaos) against two running versions and judge them.

    Exit 0 pass, 1 fail, 2 invalid input, 3 inconclusive, 4 infrastructure error. The Markdown
    summary is also appended to $GITHUB_STEP_SUMMARY when that is set."""
    err = Console(stderr=True, highlight=False)
    written = {"json_report": json_report, "junit": junit, "markdown": markdown}
    try:
        settings = Settings.from_flags(prometheus_url=prometheus, fault_proxy=fault_proxy)
    except ValidationError as exc:
        for detail in exc.errors():
            name = ".".join(str(p) for p in detail["loc"]) or "settings"
            err.print(f"GATE_{escape(name.upper())}: {escape(str(detail['msg']))}")
        raise typer.Exit(EXIT_INVALID) from None
    prometheus, fault_proxy = settings.prometheus_url, settings.fault_proxy
    try:
        contract = load_contract(contract_path, library=SliLibrary.default())
        library = SliLibrary.default(extra=contract.spec.slis)
    except (ContractError, OSError) as exc:
        problems = [str(p) for p in exc.problems] if isinstance(exc, ContractError) else [str(exc)]
        for problem in problems:
            err.print(escape(problem))
        # CI still gets its reports: an invalid contract is a red build with the reasons in it.
        invalid = CheckReport(
            contract=contract_path.stem,
            service="",
            stable_url=stable_url,
            canary_url=canary_url,
            prometheus_url=prometheus,
            started_at=time.time(),
            ended_at=time.time(),
            status="invalid",
            reason=f"{contract_path}: the contract is not valid ({len(problems)} problems)",
            problems=problems,
        )
        _write(invalid, **written, err=err)
        raise typer.Exit(EXIT_INVALID) from None
    options = CheckOptions(
        stable_url=stable_url,
        canary_url=canary_url,
        # Only when asked: the contract's Prometheus is often the cluster's, out of a CI job's reach.
        prometheus_url=prometheus,
        chaos=not no_chaos,
        fault_context={"fault_proxy": fault_proxy} if fault_proxy else None,
        workdir=workdir,
    )
    try:
        report = run_check(
            contract, library, options, progress=lambda msg: err.print(f"[dim]·[/] {escape(msg)}")
        )
    except Exception as exc:  # gate itself failed: say so, and never report a pass
        where = traceback.extract_tb(exc.__traceback__)[-1]
        err.print(
            f"[magenta]gate check failed:[/] {escape(type(exc).__name__)}: {escape(str(exc))} "
            f"({escape(Path(where.filename).name)}:{where.lineno} in {escape(where.name)})"
        )
        raise typer.Exit(EXIT_INFRA) from None
    _print(Console(highlight=False), report)
    _write(report, **written, err=err)
    raise typer.Exit(report.exit_code)


def _print(console: Console, report: CheckReport) -> None:
    table = Table(title=f"gate check {report.contract}", show_lines=False)
    for column in ("objective", "source", "phase", "verdict", "reason"):
        table.add_column(column, overflow="fold")
    for c in report.cases:
        style = _STYLE.get(c.status, "")
        table.add_row(
            escape(c.objective) + (" *" if c.critical else ""),
            c.source,
            c.phase,
            f"[{style}]{c.status}[/]",
            escape(c.reason),
        )
    if report.cases:
        console.print(table)
    style = _STYLE.get(report.status, "")
    console.print(f"[bold {style}]{report.status}[/] (exit {report.exit_code}): {escape(report.reason)}")


def _write(
    report: CheckReport, *, json_report: Path | None, junit: Path | None, markdown: Path | None, err: Console
) -> None:
    md = reports.to_markdown(report)
    for path, text in (
        (json_report, reports.json_text(report) if json_report else ""),
        (junit, reports.to_junit(report) if junit else ""),
        (markdown, md if markdown else ""),
    ):
        if path is None:
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            err.print(f"[yellow]could not write {escape(str(path))}: {escape(str(exc))}[/]")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as out:
                out.write(md + "\n")
        except OSError as exc:
            err.print(f"[yellow]could not append to $GITHUB_STEP_SUMMARY: {escape(str(exc))}[/]")
