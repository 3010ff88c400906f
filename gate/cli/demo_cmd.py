"""`gate demo [--scenario good|regression|leak] [--quick]`: a real progressive rollout on this machine.

Brings up the loopback topology (Prometheus scraping every second, nginx as the router with mirroring,
the demo checkout service as stable and canary, its risk-api dependency behind the chaos fault proxy,
production users), runs `contracts/local-demo.yaml` through the engine — weights climb, Locust load and
a chaos step run, evidence from all three sources is judged — and shows how it ends: promoted, or
rolled back with the reason. Every process it started is stopped, also on Ctrl-C; the run is recorded
in the run store for the dashboard.

Exit codes: 0 the rollout ended as the scenario expects (good: promoted; regression: rolled back on
the latency objective; leak: rolled back on task growth); 1 it ended otherwise; 2 invalid input;
4 the topology could not be brought up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gate.compose.reports import clip
from gate.settings import mask_url

EXIT_UNEXPECTED = 1
EXIT_INVALID = 2
EXIT_INFRA = 4

EXPECTED = {"good": "promoted", "regression": "rolled_back", "leak": "rolled_back"}
# A rollback counts for the scenario only when the evidence failed the canary on this objective
# (not, say, for want of evidence).
EXPECTED_OBJECTIVE = {"regression": "http-latency", "leak": "demo-tasks"}
STORY = {
    "good": "the canary is as good as stable: it should be promoted",
    "regression": "the canary is 25 % slower (--latency-factor 1.25): it should be rolled back on latency",
    "leak": "the canary leaks a task per request: it should be rolled back on task growth",
}


def register(app: typer.Typer) -> None:
    """Add `gate demo` to the `gate` application."""
    app.command("demo")(demo_command)


def demo_command(  # noqa: PLR0917 - typer options
    scenario: Annotated[
        str, typer.Option(help="good (promoted), regression (+25 % latency) or leak (task growth).")
    ] = "good",
    quick: Annotated[
        bool, typer.Option("--quick", help="Shorter steps: the whole demo in under a minute.")
    ] = False,
    store: Annotated[
        str | None,
        typer.Option(
            help="Run store the dashboard reads: a URL (sqlite:///…, postgresql://…) or a SQLite file "
            "[env GATE_STORE; default .gate/runs.sqlite]."
        ),
    ] = None,
    users: Annotated[float, typer.Option(help="Production requests per second through the router.")] = 100.0,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the topology's files (logs, contract, data).")
    ] = False,
    dashboard: Annotated[
        bool,
        typer.Option(
            "--dashboard", help="Then serve the dashboard on 127.0.0.1:8080 (read-only) until Ctrl-C."
        ),
    ] = False,
) -> None:
    """Run a real canary rollout on loopback and show how the gate decides."""
    console = Console(highlight=False)
    if scenario not in EXPECTED:
        console.print(f"[red]--scenario {escape(scenario)!s}: choose good, regression or leak[/red]")
        raise typer.Exit(EXIT_INVALID)
    if not 1 <= users <= 200:
        console.print("[red]--users: between 1 and 200 requests per second[/red]")
        raise typer.Exit(EXIT_INVALID)
    store = store or os.environ.get("GATE_STORE") or None
    code = run_demo(console, scenario, quick=quick, store_path=store, users=users, keep=keep)
    if dashboard and code in (0, 1):
        from gate.cli.dashboard_cmd import dashboard_command
        from gate.demo.rollout import default_store_path

        url = str(store or default_store_path())
        dashboard_command(store=url if "://" in url else f"sqlite:///{Path(url).resolve()}", public_read=True)
    raise typer.Exit(code)


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    # SIGTERM takes the same way out as Ctrl-C: the rollout is aborted and every process stopped.
    raise KeyboardInterrupt


def run_demo(
    console: Console,
    scenario: str,
    *,
    quick: bool = False,
    store_path: Path | str | None = None,
    users: float = 100.0,
    keep: bool = False,
) -> int:
    """The whole demo; returns the exit code. Importable so tests and benchmarks can drive it."""
    from gate.contract import ContractError
    from gate.demo.contract import DemoContractError, write_demo_contract
    from gate.demo.rollout import Watchers, build_runner, default_store_path, open_store, outcome
    from gate.demo.topology import Topology, TopologyConfig
    from gate.engine.machine import Abort

    started = time.monotonic()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    console.print(
        f"[bold]gate demo[/bold] — scenario [bold]{scenario}[/bold]{' (quick)' if quick else ''}: "
        f"{STORY[scenario]}"
    )
    topology = Topology(TopologyConfig(scenario=scenario, users_rate=users, keep_workdir=keep))  # type: ignore[arg-type]
    looks: list[Any] = []
    code = EXIT_INFRA
    try:
        console.print("\n[bold]Topology[/bold] (loopback, every process stopped at the end)")
        try:
            topology.start(on_step=lambda line: console.print(f"  {escape(line)}"))
        except Exception as exc:
            console.print(f"[red]the topology did not come up: {escape(str(exc))[:2000]}[/red]")
            return EXIT_INFRA
        try:
            contract, contract_path = write_demo_contract(
                topology.workdir,
                stable_url=topology.stable_url,
                canary_url=topology.canary_url,
                router_port=topology.ports["router"],
                prometheus_url=topology.prometheus_url,
                quick=quick,
            )
        except (ContractError, DemoContractError) as exc:
            console.print(f"[red]the demo contract is invalid: {escape(str(exc))[:2000]}[/red]")
            return EXIT_INVALID
        store = open_store(store_path or default_store_path())
        view = _LiveView(console, started, len(contract.spec.steps), contract, looks)
        console.print(
            f"\n[bold]Rollout[/bold] of contract [bold]{contract.metadata.name}[/bold] "
            f"({len(contract.spec.steps)} steps, a look every {contract.spec.policy.interval:g}s)"
        )
        runner, close = build_runner(
            topology,
            contract,
            contract_path.read_text(),
            store,
            watchers=Watchers(on_transition=view.transition, on_look=view.look),
            meta={"scenario": scenario, "quick": quick},
        )
        try:
            try:
                runner.run()
            except KeyboardInterrupt:
                console.print(
                    "\n[yellow]interrupted: aborting the rollout (weight 0, faults undone)[/yellow]"
                )
                with contextlib.suppress(Exception):
                    runner.feed(Abort(at=time.time(), by="gate demo", reason="interrupted"))
                    runner.run(max_transitions=20)
                raise
        finally:
            close()
            store.close()
        result = outcome(runner, looks)
        code = _report(console, scenario, result, store_path or default_store_path(), started)
        return code
    except KeyboardInterrupt:
        code = 130
        return code
    finally:
        problems = topology.stop()
        signal.signal(signal.SIGTERM, previous)
        left = topology.pids()
        if problems or left:
            console.print(f"[red]could not stop everything: {escape('; '.join(problems))} {left}[/red]")
        else:
            console.print(
                f"[dim]every process the demo started is stopped "
                f"({time.monotonic() - started:.0f}s in all)[/dim]"
            )
        if keep:
            console.print(f"[dim]files kept in {topology.workdir}[/dim]")


class _LiveView:
    """Prints each transition and look as it happens: what the gate did and why."""

    def __init__(self, console: Console, started: float, steps: int, contract: Any, looks: list[Any]) -> None:
        self.console = console
        self.looks = looks
        self.started = started
        self.steps = steps
        self.labels = [_step_label(s) for s in contract.spec.steps]
        self.last_step = -1
        self.last_reason = ""

    def _t(self) -> str:
        seconds = int(time.monotonic() - self.started)
        return f"{seconds // 60}:{seconds % 60:02d}"

    def transition(self, _seq: int, event: Any, state: Any, effects: list[Any]) -> None:
        if state.step != self.last_step and state.step < self.steps and state.phase == "stepping":
            self.last_step = state.step
            label = self.labels[state.step] if state.step < len(self.labels) else ""
            self.console.print(
                f"  {self._t()}  [bold]step {state.step + 1}/{self.steps}[/bold] {escape(label):<26} "
                f"canary weight {state.weight}%  mirror {state.mirror}%"
            )
        kinds = {getattr(e, "kind", "") for e in effects}
        if "rollback" in kinds:
            self.console.print(f"  {self._t()}  [red]rolling back[/red]: {escape(state.reason)}")
        if getattr(event, "kind", "") == "rolled_back":
            self.console.print(
                f"  {self._t()}  [red]rolled back[/red]: canary weight 0%, mirror off, faults undone"
            )
        if state.terminal and state.status == "promoted":
            self.console.print(f"  {self._t()}  [green]promoted[/green]: canary weight {state.weight}%")

    def look(self, request: Any, result: Any) -> None:
        self.looks.append(result)
        reason = str(result.reason)
        if reason == self.last_reason:
            return  # the same line every tick says nothing new
        self.last_reason = reason
        colour = {"promote": "green", "hold": "yellow", "rollback": "red"}.get(result.action, "white")
        sources = ", ".join(getattr(request, "sources", ()) or ()) or "no traffic"
        self.console.print(
            f"  {self._t()}    look {request.look} on {escape(sources)}: "
            f"[{colour}]{result.action}[/{colour}] — {escape(clip(reason, 240))}"
        )


def _step_label(step: Any) -> str:
    kind = getattr(step, "kind", "")
    if kind == "setWeight":
        return f"set weight {step.weight}%"
    if kind == "mirror":
        return f"mirror {step.percent}%"
    if kind == "chaos":
        return f"chaos {step.experiment}" + (f" {step.duration:g}s" if step.duration else "")
    duration = getattr(step, "duration", None)
    return f"{kind}" + (f" {duration:g}s" if duration else "")


def _report(console: Console, scenario: str, result: Any, store_path: Path | str, started: float) -> int:
    elapsed = time.monotonic() - started
    status = result.status
    colour = "green" if status == "promoted" else "red" if status == "rolled_back" else "yellow"
    console.print(
        f"\n[bold]Outcome[/bold]: [{colour}][bold]{status.replace('_', ' ').upper()}[/bold][/{colour}] "
        f"after {elapsed:.0f}s"
    )
    if result.reason:
        console.print(f"  reason: {escape(result.reason)}")
    if result.verdicts:
        table = Table(title="verdicts of the last look", title_justify="left")
        for column in ("objective", "source", "status", "why"):
            table.add_column(column, overflow="fold")
        for v in result.verdicts:
            st = str(v.get("status", ""))
            style = {"pass": "green", "fail": "red", "inconclusive": "yellow", "error": "magenta"}.get(
                st.lower(), ""
            )
            table.add_row(
                escape(str(v.get("objective", ""))),
                escape(str(v.get("source", ""))),
                f"[{style}]{escape(st)}[/{style}]" if style else escape(st),
                escape(clip(str(v.get("reason", "")), 300)),
            )
        console.print(table)
    shown = mask_url(str(store_path)) if "://" in str(store_path) else str(store_path)
    console.print(f"  recorded as run [bold]{result.run_id}[/bold] in {shown} (the dashboard reads it)")
    from gate.demo.rollout import default_store_path

    store_flag = f" --store {shown}" if str(store_path) != str(default_store_path()) else ""
    listen = escape(os.environ.get("GATE_DASHBOARD_LISTEN", "127.0.0.1:8080"))
    console.print(
        f"  see it: [bold]gate dashboard --public-read{escape(store_flag)}[/bold], then "
        f"[bold]http://{listen}/runs/{result.run_id}[/bold] (or gate demo --dashboard)"
    )
    expected = EXPECTED[scenario]
    objective = EXPECTED_OBJECTIVE.get(scenario)
    on_evidence = objective is None or (result.cause == "verdict" and objective in result.reason)
    if status == expected and on_evidence:
        console.print(f"  [green]as expected for the {scenario} scenario[/green]")
        return 0
    wanted = expected.replace("_", " ") + (f" on {objective}" if objective else "")
    console.print(f"  [red]the {scenario} scenario expects {wanted}[/red]")
    return EXIT_UNEXPECTED
