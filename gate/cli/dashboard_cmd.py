"""`gate dashboard`: serve the reviewers' dashboard over a run store with uvicorn."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

EXIT_INVALID = 2


def register(app: typer.Typer) -> None:
    """Add `gate dashboard` to the `gate` application."""
    app.command("dashboard")(dashboard_command)


def dashboard_command(  # noqa: PLR0917 - typer options
    store: Annotated[
        str | None, typer.Option(help="Run store: a SQLite path or sqlite:///PATH (GATE_STORE).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (GATE_DASHBOARD_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (GATE_DASHBOARD_PORT).")] = None,
    tokens_file: Annotated[
        Path | None,
        typer.Option(help="Reviewers' bearer tokens, `TOKEN NAME` per line (GATE_DASHBOARD_TOKENS_FILE)."),
    ] = None,
    proxy_header: Annotated[
        str | None, typer.Option(help="Trusted proxy's identity header (GATE_DASHBOARD_PROXY_HEADER).")
    ] = None,
    private: Annotated[bool, typer.Option("--private", help="Read-only views need credentials too.")] = False,
    kube_auth: Annotated[
        bool, typer.Option("--kube-auth", help="TokenReview + SubjectAccessReview in a cluster.")
    ] = False,
) -> None:
    """Serve the dashboard: runs, evidence, verdicts; approve, abort, retry."""
    import uvicorn
    from pydantic import ValidationError

    from gate.dashboard.app import create_app, open_store
    from gate.dashboard.settings import DashboardSettings

    err = Console(stderr=True, highlight=False)
    overrides: dict[str, object] = {}
    for key, value in (
        ("store", store),
        ("dashboard_host", host),
        ("dashboard_port", port),
        ("dashboard_tokens_file", tokens_file),
        ("dashboard_proxy_header", proxy_header),
    ):
        if value is not None:
            overrides[key] = value
    if private:
        overrides["dashboard_public_read"] = False
    if kube_auth:
        overrides["dashboard_kube_auth"] = True
    try:
        settings = DashboardSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        err.print(f"[red]invalid setting {escape(where)}: {escape(str(first.get('msg', '')))}[/]")
        raise typer.Exit(EXIT_INVALID) from None
    if settings.dashboard_tokens_file is not None and not settings.dashboard_tokens_file.is_file():
        err.print(f"[red]--tokens-file {escape(str(settings.dashboard_tokens_file))}: no such file[/]")
        raise typer.Exit(EXIT_INVALID)
    try:
        run_store = open_store(settings.store)
    except (ValueError, OSError) as exc:
        err.print(f"[red]--store: {escape(str(exc))[:500]}[/]")
        raise typer.Exit(EXIT_INVALID) from None
    app = create_app(settings, store=run_store)
    url = settings.dashboard_url or f"http://{settings.dashboard_host}:{settings.dashboard_port}"
    err.print(f"gate dashboard on [bold]{escape(url)}[/] reading {escape(settings.store)}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        uvicorn.run(
            app,
            host=settings.dashboard_host,
            port=settings.dashboard_port,
            access_log=False,  # the dashboard writes its own structured access log
            log_level="info",
        )
    finally:
        run_store.close()
