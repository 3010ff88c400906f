"""`gate run CONTRACT`: a whole progressive rollout from the command line, with a live view.

Every transition is recorded in the run store before it takes effect, so a run stopped in any way
(Ctrl-C twice, a kill, a reboot) continues with `gate run CONTRACT --resume RUN_ID`. A first Ctrl-C
rolls back (and waits until the rollback holds); `--approve RUN_ID` / `--abort RUN_ID` ask a run in
progress (in another terminal) to resume after a hold or to roll back.

This face only parses, calls the composition (``gate.compose``) and renders: the runner, its
drivers and the store are built there.

Exit codes: 0 promoted, 1 rolled back, 2 invalid input, 3 held, 4 failed (rolled back because the
rollout could not be carried out: a driver, errors, the deadline), 5 the run store is unreachable,
6 rollback failed (traffic may still reach the canary).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from gate.compose import RunParts, open_store, preflight_run, resume_run, start_run
from gate.compose.reports import clip
from gate.contract import ContractError, SliLibrary, load_contract
from gate.drivers.diagnostics import ANNOTATION, Target, go_pprof, targets_from_spec
from gate.drivers.store import (
    EXIT_STORE,
    LeaseKeeper,
    StoreCorrupt,
    StoreError,
    StoreTooNew,
    StoreUnavailable,
    new_holder,
)
from gate.engine import codec
from gate.engine.machine import Abort, Effect, Input, Plan, Resume, RouteFinished, State
from gate.engine.runner import LookOutcome, LookRequest, Runner
from gate.errors import GateError
from gate.settings import Settings

EXIT_OF = {"promoted": 0, "rolled_back": 1, "held": 3, "failed": 4, "rollback_failed": 6, "running": 3}
EXIT_INVALID = 2
LEASE_TTL = 30.0  # seconds a killed `gate run` on another machine keeps its run (on this one: none)
_STYLE = {"pass": "green", "fail": "red", "inconclusive": "yellow", "error": "magenta"}


def register(app: typer.Typer) -> None:
    """Add `gate run` to the `gate` application."""
    app.command("run")(run)


def run(
    contract_path: Annotated[Path, typer.Argument(metavar="CONTRACT", help="The performance contract.")],
    *,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Run store: a URL (sqlite:///path, postgresql://…) or a SQLite file "
            "[env GATE_STORE; default sqlite:///.gate/runs.sqlite].",
        ),
    ] = None,
    resume: Annotated[
        str | None, typer.Option("--resume", metavar="RUN_ID", help="Continue a run that was stopped.")
    ] = None,
    approve: Annotated[
        str | None, typer.Option("--approve", metavar="RUN_ID", help="Ask a held run to go on, then exit.")
    ] = None,
    abort: Annotated[
        str | None, typer.Option("--abort", metavar="RUN_ID", help="Ask a run to roll back, then exit.")
    ] = None,
    prometheus: Annotated[
        str | None, typer.Option(help="Prometheus URL [env GATE_PROMETHEUS_URL; default: the contract's].")
    ] = None,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(help="kubeconfig file [env GATE_KUBECONFIG; default: in-cluster, $KUBECONFIG]."),
    ] = None,
    context: Annotated[
        str | None, typer.Option(help="kubeconfig context [env GATE_KUBE_CONTEXT; default: current].")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="Namespace if the contract names none [env GATE_NAMESPACE].")
    ] = None,
    fault_proxy: Annotated[
        str | None,
        typer.Option("--fault-proxy", help="Admin URL of the fault proxy [env GATE_FAULT_PROXY]."),
    ] = None,
    nginx_prefix: Annotated[
        Path | None,
        typer.Option("--nginx-prefix", help="Directory of gate's nginx [env GATE_NGINX_PREFIX]."),
    ] = None,
    listen_port: Annotated[
        int | None, typer.Option("--listen-port", help="Port of gate's nginx when the contract sets none.")
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(help="Fault ledger, Locust files [env GATE_WORKDIR; default: work/ beside the store]."),
    ] = None,
    pprof: Annotated[
        int | None,
        typer.Option(help="On a failed canary, capture Go pprof (goroutines, heap, N-second CPU profile)."),
    ] = None,
    capture: Annotated[
        list[str] | None, typer.Option(help="On a failed canary, GET this path on it and keep the answer.")
    ] = None,
    live: Annotated[bool, typer.Option(help="Show the live view (off: one line per transition).")] = True,
    preflight: Annotated[
        bool, typer.Option(help="Check the route, permissions, Prometheus series and steps before starting.")
    ] = True,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Run the preflight checks only (exit 0 ready, 1 not), then exit."),
    ] = False,
    exit_when_held: Annotated[
        bool,
        typer.Option(
            help="Exit (code 3) when the run is held for a person, instead of waiting for --approve."
        ),
    ] = False,
) -> None:
    """Carry the canary through the contract's steps: weights, mirror, load, chaos, continuous
    analysis; promote or roll back. Exit 0 promoted, 1 rolled back, 2 invalid, 3 held, 4 failed,
    5 store unreachable, 6 rollback failed (traffic may still reach the canary)."""
    err = Console(stderr=True, highlight=False)
    try:
        settings = Settings.from_flags(
            store=None if store is None else _store_url(store),
            prometheus_url=prometheus,
            kubeconfig=kubeconfig,
            kube_context=context,
            namespace=namespace,
            fault_proxy=fault_proxy,
            nginx_prefix=nginx_prefix,
            listen_port=listen_port,
            workdir=workdir,
        )
    except ValidationError as exc:
        for detail in exc.errors():
            where = ".".join(str(p) for p in detail["loc"]) or "settings"
            err.print(f"{escape(where)}: {escape(str(detail['msg']))}")
        raise typer.Exit(EXIT_INVALID) from None
    if approve or abort:
        _ask(settings.store, approve, abort, err)
        return
    try:
        library = SliLibrary.default()
        contract = load_contract(contract_path, library=library)
        text = contract_path.read_text(encoding="utf-8")
    except ContractError as exc:
        for problem in exc.problems:
            err.print(escape(str(problem)))
        raise typer.Exit(EXIT_INVALID) from None
    except OSError as exc:
        err.print(f"cannot read {escape(str(contract_path))}: {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    if contract.spec.router is None:
        err.print("spec.router: `gate run` moves traffic through a router; this contract names none")
        raise typer.Exit(EXIT_INVALID)

    targets: list[Target] = list(go_pprof(pprof)) if pprof else []
    targets += [Target(f"capture-{i}", path) for i, path in enumerate(capture or [])]
    if not targets and ANNOTATION in contract.metadata.annotations:
        try:
            targets = targets_from_spec(contract.metadata.annotations[ANNOTATION])
        except ValueError as exc:
            err.print(f"{escape(str(contract_path))}: metadata.annotations: {escape(str(exc))}")
            raise typer.Exit(EXIT_INVALID) from None

    if (preflight or dry_run) and not resume:
        _preflight(contract, settings, err, dry_run=dry_run)

    view = LiveView(contract.metadata.name)
    # One driver per run: this process leases the run before it builds anything, and every write
    # it makes is fenced by that lease (docs/store.md).
    holder = new_holder()
    keeper: LeaseKeeper | None = None
    try:
        run_store = open_store(settings.store)
    except GateError as exc:
        err.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(_store_exit(exc)) from None
    try:
        if resume:
            keeper = LeaseKeeper(run_store, resume, holder, ttl=LEASE_TTL)
            keeper.start()
            parts, warnings = resume_run(
                resume,
                settings=settings,
                store=run_store.fenced(holder),
                contract_text=text,
                observer=view.on_transition,
                on_look=view.on_look,
                on_retry=view.on_retry,
                holder=holder,
            )
        else:
            parts, warnings = (
                start_run(
                    contract,
                    text,
                    settings=settings,
                    store=run_store.fenced(holder, ttl=LEASE_TTL),
                    face="cli",
                    observer=view.on_transition,
                    on_look=view.on_look,
                    on_retry=view.on_retry,
                    diagnostics=targets or None,
                    contract_dir=contract_path.parent,
                    holder=holder,
                ),
                [],
            )
        if keeper is None:
            keeper = LeaseKeeper(run_store, parts.runner.run_id, holder, ttl=LEASE_TTL)
            keeper.start()  # a renewal: the run was leased to us when it was created
    except GateError as exc:
        err.print(f"[red]{escape(str(exc))}[/]")
        if keeper is not None:
            keeper.stop()
        run_store.close()
        raise typer.Exit(_store_exit(exc)) from None
    for note in [*parts.notes, *warnings]:
        err.print(f"[yellow]{escape(note)}[/]")
    runner = parts.runner
    view.bind(runner)
    err.print(
        f"run [bold]{runner.run_id}[/] · store {escape(_shown(settings))} · {escape(parts.router.describe())}"
    )
    try:
        final = _drive(parts, view, live=live, exit_when_held=exit_when_held)
    except StoreError as exc:  # LeaseLost (another process took the run over), or the store broke
        err.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(EXIT_STORE) from None
    finally:
        keeper.stop()
        run_store.close()
    again = f"gate run {escape(str(contract_path))} --store {escape(_shown(settings))}"
    if final is None:
        err.print(
            f"[yellow]stopped; the run is recorded. Continue it (and finish any rollback) with:[/]\n"
            f"  {again} --resume {runner.run_id}"
        )
        raise typer.Exit(EXIT_OF["running"])
    style = "green" if final.status == "promoted" else "red"
    Console(highlight=False).print(f"[bold {style}]{final.status}[/]: {escape(final.reason)}")
    if final.status == "rollback_failed":
        err.print(
            f"[red bold]gate could not take traffic off the canary[/] ({escape(parts.router.describe())}): "
            "send 100 % to stable by hand, then fix what the message names"
        )
    if final.status == "held":
        err.print(
            f"the canary stays at {final.weight}%. Decide with `{again} --approve {runner.run_id}` "
            f"(or --abort), then continue with `{again} --resume {runner.run_id}`"
        )
    raise typer.Exit(EXIT_OF.get(final.status, 4))


def _preflight(contract: Any, settings: Settings, err: Console, *, dry_run: bool) -> None:
    """Refuse (exit 2, nothing changed) a rollout the preflight finds in the way; --dry-run stops here."""
    problems = preflight_run(contract, settings)
    errors = [p for p in problems if p.severity == "error"]
    for p in problems:
        colour = "red" if p.severity == "error" else "yellow"
        err.print(
            f"[{colour}]preflight {p.severity}[/] [{escape(p.check)}] {escape(p.subject)}: "
            f"{escape(p.message)}\n    → {escape(p.fix)}"
        )
    if dry_run:
        err.print(
            "[green]ready to roll out[/]" if not errors else f"[red]not ready[/]: {len(errors)} problem(s)"
        )
        raise typer.Exit(1 if errors else 0)
    if errors:
        err.print(
            f"[red]not started[/]: {len(errors)} preflight problem(s); nothing was changed "
            "(--no-preflight skips the checks)"
        )
        raise typer.Exit(EXIT_INVALID)


def _drive(parts: RunParts, view: LiveView, *, live: bool, exit_when_held: bool) -> State | None:
    """The CLI's loop: ``runner.run()`` (advance + sleep) under Ctrl-C handling; None when cut short."""
    runner = parts.runner
    interrupted = {"count": 0}

    def on_sigint(_sig: int, _frame: FrameType | None) -> None:
        interrupted["count"] += 1
        if interrupted["count"] > 1:
            raise KeyboardInterrupt
        runner.request_soon(Abort(at=time.time(), by="gate run", reason="Ctrl-C"))

    def stop_when(state: State) -> bool:
        return exit_when_held and state.status == "held"

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        if live:
            with Live(view.render(), console=Console(), refresh_per_second=4, transient=False) as screen:
                view.screen = screen
                final = runner.run(stop_when=stop_when)
                screen.update(view.render())
        else:
            view.console = Console(highlight=False)
            final = runner.run(stop_when=stop_when)
        return final
    except KeyboardInterrupt:
        return None
    finally:
        signal.signal(signal.SIGINT, previous)
        parts.close()


def _ask(store_url: str, approve: str | None, abort: str | None, err: Console) -> None:
    run_id = approve or abort or ""
    event: Abort | Resume = (
        Resume(at=time.time(), by="gate run --approve")
        if approve
        else Abort(at=time.time(), by="gate run --abort")
    )
    try:
        store = open_store(store_url)
    except GateError as exc:
        err.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(_store_exit(exc)) from None
    with store:
        try:
            store.request(run_id, codec.dump_input(event))
        except StoreError as exc:
            err.print(f"[red]{escape(str(exc))}[/]")
            raise typer.Exit(EXIT_INVALID) from None
    err.print(
        f"asked run {run_id} to {'resume' if approve else 'roll back'}; its runner acts on its next tick"
    )


def _store_exit(exc: GateError) -> int:
    """EXIT_STORE for a store that is broken, unreachable or too new; EXIT_INVALID for the rest."""
    return EXIT_STORE if isinstance(exc, StoreUnavailable | StoreCorrupt | StoreTooNew) else EXIT_INVALID


def _store_url(value: str) -> str:
    """A store flag as a URL: a bare path is a SQLite file."""
    if "://" in value:
        return value
    return "sqlite:///" + str(Path(value))


def _shown(settings: Settings) -> str:
    return str(settings.masked()["store"])


class LiveView:
    """Steps, weights and verdicts of one run, redrawn on every transition and look."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.plan: Plan | None = None
        self.state = State()
        self.run_id = ""
        self.look: LookOutcome | None = None
        self.look_at: LookRequest | None = None
        self.screen: Live | None = None
        self.console: Console | None = None
        self.waiting = ""  # the driver call being retried, shown until the next transition
        self.handover = ""  # the promotion hand-over's last "waiting for" (printed once per change)

    def bind(self, runner: Runner) -> None:
        """Follow ``runner``."""
        self.plan, self.state, self.run_id = runner.plan, runner.state, runner.run_id

    def on_transition(self, seq: int, event: Input, state: State, effects: list[Effect]) -> None:
        """Called by the runner after each checkpoint."""
        self.state = state
        self.waiting = ""
        if self.console is not None:
            kinds = ", ".join(e.kind for e in effects) or "-"
            self.console.print(
                f"#{seq} {event.kind:<12} step {state.step} weight {state.weight}% mirror {state.mirror}% "
                f"{state.status} → {kinds}"
            )
            late = event.kind == "applied" and state.late >= 1.0  # a weight that took effect late
            if (event.kind == "effect_failed" or late) and state.reason:
                self.console.print(f"  {escape(state.reason)}")  # what failed, and what gate does next
        if isinstance(event, RouteFinished) and not event.done and event.detail:
            # The promotion hand-over is waiting (a rollout, a GitOps tool): say for what, once per change.
            self.waiting = f"promotion: {event.detail}"
            if self.console is not None and event.detail != self.handover:
                self.console.print(f"  waiting — {escape(event.detail)}")
            self.handover = event.detail
        if self.screen is not None:
            self.screen.update(self.render())

    def on_retry(self, what: str, attempt: int, error: str, wait: float) -> None:
        """Called by the runner before it waits to try a driver call again."""
        self.waiting = f"{what}: attempt {attempt} failed ({error}); trying again in {wait:.1f}s"
        if self.console is not None:
            self.console.print(f"  {escape(self.waiting)}")
        if self.screen is not None:
            self.screen.update(self.render())

    def on_look(self, request: LookRequest, outcome: LookOutcome) -> None:
        """Called by the runner after each look."""
        self.look, self.look_at = outcome, request
        if self.console is not None:
            self.console.print(f"  look {request.look}: {outcome.action} — {escape(outcome.reason)}")
        if self.screen is not None:
            self.screen.update(self.render())

    def render(self) -> Group:
        """The whole view."""
        s = self.state
        head = (
            f"[bold]{escape(self.name)}[/] run {self.run_id} · [bold]{s.status}[/] · canary weight "
            f"[bold]{s.weight}%[/] · mirror {s.mirror}% · looks {s.looks}"
            + (f" · chaos [bold]{escape(s.chaos)}[/]" if s.chaos else "")
            + (" · load running" if s.load else "")
            + (f" · [yellow]last change took effect {s.late:.1f}s late[/]" if s.late >= 1.0 else "")
            + (f" · [yellow]waiting for {s.applying.replace('_', ' ')}[/]" if s.applying else "")
        )
        steps = Table(show_header=True, expand=False, box=None)
        steps.add_column("#")
        steps.add_column("step")
        steps.add_column("")
        for i, step in enumerate(self.plan.steps if self.plan else ()):
            if s.phase == "finished" and s.status != "promoted" and i >= s.step:
                mark = "[dim]·[/]"
            elif i < s.step:
                mark = "[green]✓[/]"
            elif i == s.step and s.phase == "stepping":
                mark = "[yellow]held[/]" if s.status == "held" else "[cyan]▶[/]"
            else:
                mark = "[dim]·[/]"
            steps.add_row(str(i + 1), escape(step.label()), mark)
        parts: list[Any] = [head, steps]
        if self.look is not None:
            verdicts = Table(title=f"look {self.look_at.look if self.look_at else ''}: {self.look.action}")
            for column in ("objective", "source", "verdict", "reason"):
                verdicts.add_column(column, overflow="fold")
            for v in self.look.verdicts:
                status = str(v.get("status", ""))
                verdicts.add_row(
                    escape(str(v.get("objective", ""))),
                    str(v.get("source", "")),
                    f"[{_STYLE.get(status, '')}]{status}[/]",
                    escape(clip(str(v.get("reason", "")), 300)),
                )
            parts.append(verdicts)
        if self.waiting:
            parts.append(f"[yellow]{escape(self.waiting)}[/]")
        if s.reason:
            parts.append(f"[dim]{escape(s.reason)}[/]")
        return Group(Panel(Group(*parts), title="gate run"))
