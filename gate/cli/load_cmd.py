"""`gate load CONTRACT`: run the contract's synthetic load against stable and canary, live.

A rich progress bar with requests/s, p95 and errors per track while Locust runs (in its own
processes), then a summary. `--events FILE` (or `-` for stdout) writes the structured progress events
as JSON lines; `--format json` prints the result as JSON.

When one machine is not enough: `--kube NAME --namespace NS --image IMAGE --workers N` prints the
Kubernetes objects that run the same load with its Locust workers as pods (for `kubectl apply -f -`),
and `--from-log FILE` (`-`: stdin, e.g. `kubectl logs -f job/NAME-master`) summarises a run from its
master's output, exactly as a local run is summarised.

Exit codes: 0 done; 2 invalid input; 3 the load generator was saturated (its numbers measure itself:
add workers or lower users); 4 the load could not run (Locust failed, the run ended early); 130
interrupted (Ctrl-C: every Locust process is stopped and the partial result is shown).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from gate.drivers.load import LoadPlan, LoadProgress, LoadResult

EXIT_INVALID = 2
EXIT_SATURATED = 3
EXIT_FAILED = 4
EXIT_INTERRUPTED = 130


def register(app: typer.Typer) -> None:
    """Add `gate load` to the `gate` application."""
    app.command("load")(load_command)


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.1f} ms"


def _progress_table(event: LoadProgress | None) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("track", "requests", "req/s", "p95", "errors"):
        table.add_column(column, justify="left" if column == "track" else "right")
    if event is not None:
        for track, p in event.tracks.items():
            errors = f"[red]{p.errors}[/red]" if p.errors else "0"
            table.add_row(track, f"{p.requests:,}", f"{p.rps:,.0f}", _ms(p.p95), errors)
        caption = f"{event.users} users · generator CPU {event.cpu:.0%} of a core (needs {event.demand:.0%})"
        table.caption = caption + (" · [red]saturated[/red]" if event.saturated else "")
    return table


def _summary(result: LoadResult) -> Table:
    table = Table(title="synthetic load", title_justify="left")
    for column in ("track", "requests", "req/s", "errors", "p50", "p95", "p99", "failures"):
        table.add_column(column, justify="left" if column in ("track", "failures") else "right")
    for track, r in result.tracks.items():
        failures = ", ".join(f"{escape(k)}: {v}" for k, v in sorted(r.failures.items())) or "—"
        ratio = f" ({r.error_ratio:.2%})" if r.error_ratio else ""
        table.add_row(
            track,
            f"{r.requests:,}",
            f"{r.rps:,.1f}",
            f"{r.errors}{ratio}",
            _ms(r.quantile(0.50)),
            _ms(r.quantile(0.95)),
            _ms(r.quantile(0.99)),
            failures,
        )
    return table


def _plan(
    contract_path: Path,
    *,
    stable_url: str | None,
    canary_url: str | None,
    duration: str | None,
    users: int | None,
    workers: str | None,
    err: Console,
) -> LoadPlan:
    from dataclasses import replace

    from gate.contract import ContractError, load_contract
    from gate.contract.units import parse_duration
    from gate.drivers.load import LoadPlan, PlanError

    try:
        contract = load_contract(contract_path)
    except ContractError as exc:
        for problem in exc.problems:
            err.print(escape(str(problem)))
        raise typer.Exit(EXIT_INVALID) from None
    try:
        seconds = parse_duration(duration) if duration is not None else None
        count: int | Literal["auto"] | None = None
        if workers is not None:
            count = "auto" if workers == "auto" else int(workers)
        plan = LoadPlan.from_contract(
            contract, stable_url=stable_url, canary_url=canary_url, duration=seconds, workers=count
        )
        return replace(plan, users=users) if users is not None else plan
    except (PlanError, ValueError) as exc:
        err.print(f"{escape(str(contract_path))}: {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None


def load_command(
    contract_path: Annotated[Path, typer.Argument(metavar="CONTRACT", help="The contract YAML file.")],
    *,
    stable_url: Annotated[
        str | None, typer.Option("--stable-url", help="Stable track URL (default: spec.target.stable.url).")
    ] = None,
    canary_url: Annotated[
        str | None, typer.Option("--canary-url", help="Canary track URL (default: spec.target.canary.url).")
    ] = None,
    duration: Annotated[
        str | None, typer.Option(help="How long, e.g. 30s or 2m (default: spec.load.duration).")
    ] = None,
    users: Annotated[int | None, typer.Option(help="Users per track (default: spec.load.users).")] = None,
    workers: Annotated[
        str | None, typer.Option(help="Locust workers: a number or `auto` (default: spec.load.workers).")
    ] = None,
    events: Annotated[
        str | None, typer.Option(help="Write progress events as JSON lines to this file (`-`: stdout).")
    ] = None,
    output: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    kube: Annotated[
        str | None,
        typer.Option(
            help="Print the Kubernetes objects for this load, named NAME (workers as pods); run nothing."
        ),
    ] = None,
    namespace: Annotated[str, typer.Option(help="With --kube: the namespace.")] = "default",
    image: Annotated[
        str | None, typer.Option(help="With --kube: a container image with gate installed.")
    ] = None,
    from_log: Annotated[
        str | None,
        typer.Option(
            help="Summarise a run from its master's output (a pod log) in FILE (`-`: stdin); run nothing."
        ),
    ] = None,
) -> None:
    """Run the contract's synthetic load on both tracks at once, with live progress and a summary."""
    from gate.drivers.load import LoadDriver

    console = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if output not in ("text", "json"):
        err.print("--format is text or json")
        raise typer.Exit(EXIT_INVALID)
    plan = _plan(
        contract_path,
        stable_url=stable_url,
        canary_url=canary_url,
        duration=duration,
        users=users,
        workers=workers,
        err=err,
    )
    if kube is not None:
        _print_manifests(plan, kube, namespace, image, workers, err=err)
        return
    if from_log is not None:
        _report_log(plan, from_log, console, err, output)
        return

    sink: IO[str] | None = None
    if events == "-":
        sink = sys.stdout
    elif events:
        sink = Path(events).open("w")  # noqa: SIM115 - closed in the finally below
    show_live = output == "text" and events != "-"
    bar = Progress(
        TextColumn("[bold]load[/bold]"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
    )
    task = bar.add_task("load", total=plan.duration)
    interrupted = False
    live = Live(Group(bar, _progress_table(None)), console=console, auto_refresh=False)
    try:
        with LoadDriver(plan) as run, live if show_live else contextlib.nullcontext():
            try:
                for event in run.progress():
                    if sink is not None:
                        sink.write(json.dumps({"type": "progress", **event.to_dict()}) + "\n")
                        sink.flush()
                    if show_live:
                        bar.update(task, completed=min(event.elapsed, plan.duration))
                        live.update(Group(bar, _progress_table(event)), refresh=True)
            except KeyboardInterrupt:
                interrupted = True
                if show_live:
                    live.stop()  # the message goes below the live display, not into it
                err.print("interrupted: stopping the load (the partial result follows)")
                run.stop()
            result = run.result()
    finally:
        if sink is not None and sink is not sys.stdout:
            sink.close()
    if show_live:
        console.line()
    _report(result, console, err, output, interrupted=interrupted)


def _report(result: LoadResult, console: Console, err: Console, output: str, *, interrupted: bool) -> None:
    if output == "json":
        console.print_json(json.dumps(result.summary()))
    else:
        console.print(_summary(result))
        nodes = ", ".join(
            f"{escape(k)} {v.peak:.0%} (needed {v.demand:.0%})" for k, v in result.nodes.items()
        )
        console.print(f"load generator CPU, peak share of a core: {nodes or '—'}")
        if result.saturated:
            err.print(f"[red]saturated:[/red] {escape(result.saturation_reason)}")
        for problem in result.problems:
            err.print(f"[red]problem:[/red] {escape(problem)}")
    if interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.problems or not result.complete:
        raise typer.Exit(EXIT_FAILED)
    if result.saturated:
        raise typer.Exit(EXIT_SATURATED)


def _print_manifests(
    plan: LoadPlan, name: str, namespace: str, image: str | None, workers: str | None, *, err: Console
) -> None:
    import io

    from ruamel.yaml import YAML

    from gate.drivers.load.kube import job_manifests

    if image is None:
        err.print(
            "--kube needs --image: a container image with gate installed (python -m gate.drivers.load.worker)"
        )
        raise typer.Exit(EXIT_INVALID)
    count = plan.workers if workers is None else workers
    if not isinstance(count, int) and not (isinstance(count, str) and count.isdigit()):
        # `auto` counts this machine's cores, which says nothing about a cluster.
        err.print("--kube needs a number of worker pods: --workers N")
        raise typer.Exit(EXIT_INVALID)
    try:
        objects = job_manifests(plan, name=name, namespace=namespace, image=image, workers=int(count))
    except ValueError as exc:
        err.print(f"--kube: {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    yaml = YAML()
    yaml.default_flow_style = False
    out = io.StringIO()
    yaml.dump_all(objects, out)
    sys.stdout.write(out.getvalue())


def _bounded_lines(stream: IO[bytes], limit: int) -> Iterator[bytes]:
    """Lines of at most `limit` + 1 bytes: a log without newlines cannot fill the memory (longer lines
    arrive in pieces, which are not records and are skipped)."""
    while line := stream.readline(limit + 1):
        yield line


def _report_log(plan: LoadPlan, source: str, console: Console, err: Console, output: str) -> None:
    from gate import boundedio
    from gate.drivers.load.protocol import MAX_LINE
    from gate.drivers.load.result import aggregate

    try:
        if source == "-":
            result = aggregate(plan, _bounded_lines(sys.stdin.buffer, MAX_LINE))
        else:
            boundedio.check_stream(source, what="log")  # /dev/zero would be read for ever
            with Path(source).open("rb") as fh:
                result = aggregate(plan, _bounded_lines(fh, MAX_LINE))
    except boundedio.FileRefused as exc:
        err.print(f"--from-log: {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    except OSError as exc:
        err.print(f"--from-log: cannot read {escape(source)}: {escape(exc.strerror or str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    _report(result, console, err, output, interrupted=False)
