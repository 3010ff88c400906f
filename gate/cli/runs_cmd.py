"""Runs from the command line, from any run store (`--store`, else `GATE_STORE`, else
`sqlite:///.gate/runs.sqlite`): `gate runs` lists them (filtered, paged), `gate runs show ID` shows one
(timeline, decisions with their basis, verdicts), `gate abort ID` / `gate approve ID` ask its engine
through the store's inbox — the same way the dashboard does — and record who asked in the audit log.

Exit codes: 0 done, 2 invalid input (a bad URL or filter), 3 no such run / the run has finished,
5 the store is broken or unreachable.
"""

from __future__ import annotations

import datetime
import getpass
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gate.drivers.store import (
    EXIT_STORE,
    RunDetail,
    RunFinished,
    RunStore,
    StoreError,
    StoreURLInvalid,
    redact,
)
from gate.engine import codec, machine

DEFAULT_STORE = "sqlite:///.gate/runs.sqlite"
EXIT_INVALID, EXIT_NO_RUN = 2, 3
MAX_REASON = 500

runs_app = typer.Typer(
    name="runs",
    help="List past and running runs, or show one (`gate runs show ID`).",
    invoke_without_command=True,
    no_args_is_help=False,
)

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help=f"Run store URL: sqlite:///path or postgresql://… (default: $GATE_STORE, else {DEFAULT_STORE}).",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    """Add `gate runs`, `gate runs show`, `gate abort` and `gate approve` to the `gate` application."""
    app.add_typer(runs_app)
    app.command("abort")(abort)
    app.command("approve")(approve)


def store_url(store: str | None) -> str:
    return store or os.environ.get("GATE_STORE") or DEFAULT_STORE


@contextmanager
def _open(store: str | None) -> Iterator[RunStore]:
    url = store_url(store)
    err = Console(stderr=True, highlight=False)
    if url == DEFAULT_STORE and not os.path.exists(".gate/runs.sqlite"):
        err.print(
            f"no run store at {DEFAULT_STORE} (here: {escape(os.getcwd())}); pass --store or set GATE_STORE"
        )
        raise typer.Exit(EXIT_NO_RUN)
    try:
        opened = RunStore(url)
    except StoreURLInvalid as exc:
        err.print(f"--store {escape(redact(url))}: {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    except StoreError as exc:
        err.print(f"run store {escape(redact(url))}: {escape(str(exc))}")
        raise typer.Exit(EXIT_STORE) from None
    try:
        yield opened
    except StoreError as exc:
        if isinstance(exc, RunFinished):
            raise
        err.print(f"run store {escape(redact(url))}: {escape(str(exc))}")
        raise typer.Exit(EXIT_STORE) from None
    finally:
        opened.close()


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _cut(text: str, limit: int) -> str:
    """Shortened at a word boundary with an ellipsis, never mid-word."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut) + "…"


@runs_app.callback()
def runs(
    ctx: typer.Context,
    *,
    store: StoreOpt = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only runs in this status (running, promoted, rolled_back, …)."),
    ] = None,
    contract: Annotated[
        str | None, typer.Option("--contract", help="Only runs of this contract (its name).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="Runs per page.")] = 20,
    page: Annotated[int, typer.Option("--page", min=1, help="Which page (1: the newest).")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List runs, newest first (filtered by --status and --contract, --limit per --page)."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"store": store}
        return
    with _open(store) as s:
        total = s.count_runs(status=status, contract=contract)
        rows = s.list_runs(limit=limit, offset=(page - 1) * limit, status=status, contract=contract)
    if as_json:
        typer.echo(json.dumps({"total": total, "page": page, "runs": [r.__dict__ for r in rows]}, indent=2))
        return
    out = Console(highlight=False)
    if not rows:
        out.print("no runs" + (" on this page" if total else ""))
        return
    table = Table(box=None, header_style="bold")
    for col in ("run", "contract", "status", "step", "weight", "started", "reason"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            escape(r.id),
            escape(r.contract_name),
            escape(r.status),
            f"{r.step}/{r.steps}",
            f"{r.weight}%",
            _when(r.created_at),
            escape(_cut(r.reason, 60)),
        )
    out.print(table)
    pages = max(1, -(-total // limit))
    out.print(
        f"page {page} of {pages} · {total} run(s)" + (f" · next: --page {page + 1}" if page < pages else "")
    )


@runs_app.command("show")
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="ID", help="The run's id (from `gate runs`).")],
    *,
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one run: its timeline, each decision with the verdicts it rested on, and the verdicts."""
    store = store or (ctx.obj or {}).get("store")
    with _open(store) as s:
        detail = s.run_detail(run_id[:200])
    if detail is None:
        Console(stderr=True, highlight=False).print(
            f"no run {escape(run_id[:80])!s} in {escape(redact(store_url(store)))}"
        )
        raise typer.Exit(EXIT_NO_RUN)
    if as_json:
        typer.echo(json.dumps(_detail_json(detail), indent=2, default=str))
        return
    _print_detail(detail)


def _detail_json(d: RunDetail) -> dict[str, Any]:
    return {
        "summary": d.summary.__dict__,
        "timeline": [
            {
                "seq": t.seq,
                "at": t.at,
                "input": t.input_kind,
                "phase": t.state.get("phase"),
                "status": t.state.get("status"),
                "weight": t.state.get("weight"),
                "mirror": t.state.get("mirror"),
                "effects": [
                    {"kind": e.kind, "done": e.done, "ok": e.ok, "error": e.error} for e in t.effects
                ],
            }
            for t in d.timeline
        ],
        "looks": [
            {
                "look": lk.look,
                "step": lk.step,
                "since": lk.since,
                "at": lk.at,
                "decision": lk.action,
                "reason": lk.reason,
                "basis": lk.evidence.get("basis"),
                "verdicts": [v.__dict__ for v in lk.verdicts],
            }
            for lk in d.looks
        ],
    }


def _effect(kind: str, done: bool, ok: bool | None, error: str) -> str:
    if not done:
        return f"{kind} (pending)"
    return kind if ok else f"{kind} FAILED: {_cut(error, 80)}"


def _print_detail(d: RunDetail) -> None:
    out = Console(highlight=False)
    r = d.summary
    out.print(
        f"[bold]run {escape(r.id)}[/] · {escape(r.contract_name)} ({escape(r.service)}) · "
        f"[bold]{escape(r.status)}[/]"
    )
    out.print(
        f"  step {r.step}/{r.steps} · canary weight {r.weight}% · started {_when(r.created_at)} · "
        f"finished {_when(r.finished_at)}"
    )
    if r.reason:
        out.print(f"  {escape(_cut(r.reason, 300))}")
    out.print("\n[bold]timeline[/]")
    start = d.timeline[0].at if d.timeline else r.created_at
    for t in d.timeline:
        effects = ", ".join(_effect(e.kind, e.done, e.ok, e.error) for e in t.effects)
        phase = t.state.get("phase", "")
        out.print(
            f"  +{t.at - start:7.1f}s  {escape(t.input_kind):<10} → {escape(str(phase)):<12} "
            f"{escape(effects)}"
        )
    out.print("\n[bold]decisions[/]")
    for lk in d.looks:
        out.print(
            f"  look {lk.look} (step {lk.step}, {lk.at - lk.since:.0f}s of evidence): "
            f"[bold]{escape(lk.action)}[/] — {escape(_cut(lk.reason, 200))}"
        )
        basis = lk.evidence.get("basis") if isinstance(lk.evidence, dict) else None
        if basis:
            out.print(f"    basis: {escape(_cut(json.dumps(basis, default=str), 300))}")
        for v in lk.verdicts:
            out.print(
                f"    {escape(v.status):<13} {escape(v.objective)} [{escape(v.source)}] "
                f"{escape(_cut(v.reason, 160))}"
            )
    if not d.looks:
        out.print("  none yet")


def _ask(run_id: str, what: str, reason: str, store: str | None) -> None:
    err = Console(stderr=True, highlight=False)
    actor = f"{getpass.getuser()}@cli"
    now = time.time()
    reason = _cut(reason, MAX_REASON)
    event = (
        machine.Abort(at=now, by=actor, reason=reason)
        if what == "abort"
        else machine.Resume(at=now, by=actor, reason=reason)
    )
    with _open(store) as s:
        if s.run_summary(run_id[:200]) is None:
            err.print(f"no run {escape(run_id[:80])} in {escape(redact(store_url(store)))}")
            raise typer.Exit(EXIT_NO_RUN)
        try:
            queued = s.request(run_id, codec.dump_input(event), origin="cli")
        except RunFinished as exc:
            err.print(escape(str(exc)))
            raise typer.Exit(EXIT_NO_RUN) from None
        s.record_audit(
            run_id, actor=actor, action=what, reason=reason, at=now, origin="cli", details={"inbox": queued}
        )
    Console(highlight=False).print(
        f"{what} of run {escape(run_id)} queued (inbox #{queued}); its engine acts on its next tick"
    )


def abort(
    run_id: Annotated[str, typer.Argument(metavar="ID", help="The run to roll back.")],
    *,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")] = "",
    store: StoreOpt = None,
) -> None:
    """Abort a run: its engine rolls the canary back (through the store's inbox; audited)."""
    _ask(run_id, "abort", reason, store)


def approve(
    run_id: Annotated[str, typer.Argument(metavar="ID", help="The held or paused run to continue.")],
    *,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")] = "",
    store: StoreOpt = None,
) -> None:
    """Approve a held or paused run: it continues (through the store's inbox; audited)."""
    _ask(run_id, "approve", reason, store)
