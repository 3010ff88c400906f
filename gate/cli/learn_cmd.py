"""`gate learn CONTRACT`: compare the contract's load scenario with the stable track's production
traffic in Prometheus, propose task weights that match it, and with `--write` put them in the file.

Exit codes: 0 learned (and written with --write), 2 invalid input, 3 nothing to learn from
(no production traffic, no covered route, no tasks), 4 Prometheus could not be read.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from gate.drivers.learn import LearnReport

EXIT_INVALID = 2
EXIT_NOTHING = 3
EXIT_PROMETHEUS = 4


def _parse_at(value: str | None) -> float:
    if value is None or value == "now":
        return time.time()
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return number
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            "give unix seconds, an ISO 8601 time (2026-01-01T10:00:00Z) or `now`"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.0f} ms"


def learn_command(
    contract_path: Annotated[Path, typer.Argument(metavar="CONTRACT", help="The contract YAML file.")],
    *,
    prometheus: Annotated[
        str | None, typer.Option("--prometheus", help="Prometheus URL (default: spec.prometheus.url).")
    ] = None,
    window: Annotated[str, typer.Option(help="How much production to learn from, e.g. 1h, 30m.")] = "1h",
    at: Annotated[
        str | None, typer.Option(help="End of the window: unix seconds, ISO 8601 or `now` (default).")
    ] = None,
    sli: Annotated[
        str, typer.Option(help="Latency-histogram SLI with route and method labels.")
    ] = "http-latency",
    write: Annotated[bool, typer.Option("--write", help="Write the learned weights into CONTRACT.")] = False,
    output: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
) -> None:
    """Learn the load mix from production: coverage, untouched routes, slowest routes, new weights."""
    from gate.contract import ContractError, load_contract
    from gate.contract.sli import SliLibrary
    from gate.contract.units import parse_duration
    from gate.drivers.learn import LearnError, learn, write_weights
    from gate.drivers.prometheus import PrometheusError
    from gate.drivers.prometheus.auth import client_for

    console = Console(stderr=False, highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if output not in ("text", "json"):
        err.print("--format is text or json")
        raise typer.Exit(EXIT_INVALID)
    try:
        contract = load_contract(contract_path)
        library = SliLibrary.default(extra=contract.spec.slis)
    except ContractError as exc:
        for problem in exc.problems:
            err.print(str(problem), markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    except OSError as exc:
        err.print(f"{contract_path}: cannot read it: {exc.strerror or exc}", markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    try:
        span = parse_duration(window)
    except ValueError as exc:
        err.print(f"--window: {exc}", markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    end = _parse_at(at)
    url = prometheus or contract.spec.prometheus.url
    if not url:
        err.print("no Prometheus to read: pass --prometheus URL or set spec.prometheus.url")
        raise typer.Exit(EXIT_INVALID)
    try:
        with client_for(contract.spec.prometheus, url=url, base_dir=contract.base_dir) as client:
            report = learn(contract, library, client, end - span, end, sli=sli)
    except LearnError as exc:
        err.print(f"{contract_path}: {exc}", markup=False)
        raise typer.Exit(EXIT_NOTHING) from None
    except KeyError as exc:  # unknown SLI name
        err.print(f"--sli: {exc.args[0] if exc.args else exc}", markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    except PrometheusError as exc:
        err.print(f"cannot read Prometheus: {exc}", markup=False)
        raise typer.Exit(EXIT_PROMETHEUS) from None

    if report.coverage == 0:
        if output == "json":
            console.print_json(json.dumps(report.as_dict()))
        else:
            err.print(
                "the scenario touches none of production's routes: nothing to learn; see the routes below"
            )
            _print_routes(console, report)
        raise typer.Exit(EXIT_NOTHING)

    written = False
    if write:
        try:
            write_weights(contract_path, report.weights())
            written = True
        except (LearnError, OSError) as exc:
            err.print(f"{contract_path}: weights not written: {exc}", markup=False)
            raise typer.Exit(EXIT_INVALID) from None

    if output == "json":
        console.print_json(json.dumps({**report.as_dict(), "written": written}))
        return
    _print_text(console, report, written, contract_path)


def _print_routes(console: Console, report: LearnReport) -> None:
    table = Table(title="Production routes (stable track)", title_justify="left")
    for column in ("method", "route", "share", "p50", "p95", "covered by"):
        table.add_column(column, justify="right" if column in ("share", "p50", "p95") else "left")
    for route in report.routes:
        table.add_row(
            route.method,
            route.route,
            f"{route.share:.1%}",
            _ms(route.p50),
            _ms(route.p95),
            ", ".join(route.covered_by) or "[yellow]not covered[/]",
        )
    console.print(table)


def _print_text(console: Console, report: LearnReport, written: bool, path: Path) -> None:
    console.print(
        f"Production on the stable track: {report.total_requests:,.0f} requests over "
        f"{report.end - report.start:,.0f}s, {len(report.routes)} routes ({report.queries} Prometheus query)."
    )
    console.print(f"The scenario covers [bold]{report.coverage:.1%}[/] of production requests.")
    _print_routes(console, report)
    if report.uncovered:
        console.print(
            "Routes the scenario never touches: "
            + ", ".join(f"{r.method} {r.route} ({r.share:.1%})" for r in report.uncovered),
            markup=False,
        )
    if report.slowest:
        console.print(
            "Slowest production routes (p95): "
            + ", ".join(f"{r.method} {r.route} {_ms(r.p95)}" for r in report.slowest),
            markup=False,
        )
    tasks = Table(title="Load tasks", title_justify="left")
    for column in ("task", "request", "route", "weight", "learned", "share now", "production"):
        tasks.add_column(column, justify="right" if column not in ("task", "request", "route") else "left")
    for task in report.tasks:
        tasks.add_row(
            task.name,
            f"{task.method} {task.path}",
            task.route or "[yellow]no production route[/]",
            f"{task.weight:g}",
            str(task.learned),
            f"{task.share_now:.1%}",
            f"{task.share_production:.1%}",
        )
    console.print(tasks)
    console.print(
        f"Mix distance to production (covered routes): {report.mix_distance_before:.1%} now, "
        f"{report.mix_distance_after:.1%} with the learned weights."
    )
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    if written:
        console.print(f"Wrote the learned weights into {path} (comments and layout kept).", markup=False)
    else:
        console.print("Run with --write to put the learned weights into the contract.")


def register(app: typer.Typer) -> None:
    """Add `gate learn` to the CLI."""
    app.command("learn")(learn_command)
