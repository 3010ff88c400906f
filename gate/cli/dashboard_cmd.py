"""`gate dashboard`: serve the reviewers' dashboard over a run store with uvicorn.

The faces are independent of one another: this command names the dashboard's application factory
(``gate.dashboard.app:from_environment``) for uvicorn and hands it the settings as ``GATE_*``
variables; it imports none of the dashboard's code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from gate.settings import Settings

EXIT_INVALID = 2
FACTORY = "gate.dashboard.app:from_environment"


def register(app: typer.Typer) -> None:
    """Add `gate dashboard` to the `gate` application."""
    app.command("dashboard")(dashboard_command)


def dashboard_command(  # noqa: PLR0917 - typer options
    store: Annotated[
        str | None, typer.Option(help="Run store URL: sqlite:///PATH or postgresql://… (GATE_STORE).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback unless told).")] = "",
    port: Annotated[int, typer.Option(help="Port (GATE_DASHBOARD_LISTEN=host:port).", min=0, max=65535)] = 0,
    tokens_file: Annotated[
        Path | None,
        typer.Option(help="Reviewers' bearer tokens, `TOKEN NAME` per line (GATE_DASHBOARD_TOKENS_FILE)."),
    ] = None,
    proxy_header: Annotated[
        str | None, typer.Option(help="Trusted proxy's identity header (GATE_DASHBOARD_PROXY_HEADER).")
    ] = None,
    public_read: Annotated[
        bool | None,
        typer.Option(
            "--public-read/--private",
            help="Read-only views without credentials (GATE_DASHBOARD_PUBLIC_READ).",
        ),
    ] = None,
    kube_auth: Annotated[
        bool, typer.Option("--kube-auth", help="TokenReview + SubjectAccessReview in a cluster.")
    ] = False,
) -> None:
    """Serve the dashboard: runs, evidence, verdicts; approve, abort, retry."""
    import uvicorn

    err = Console(stderr=True, highlight=False)
    env: dict[str, str] = {}
    if store is not None:
        env["GATE_STORE"] = store
    current = os.environ.get("GATE_DASHBOARD_LISTEN", "127.0.0.1:8080")
    cur_host, _, cur_port = current.rpartition(":")
    if host or port:
        env["GATE_DASHBOARD_LISTEN"] = f"{host or cur_host}:{port or cur_port}"
    if tokens_file is not None:
        env["GATE_DASHBOARD_TOKENS_FILE"] = str(tokens_file)
    if proxy_header is not None:
        env["GATE_DASHBOARD_PROXY_HEADER"] = proxy_header
    if public_read is not None:
        env["GATE_DASHBOARD_PUBLIC_READ"] = "true" if public_read else "false"
    if kube_auth:
        env["GATE_DASHBOARD_KUBE_AUTH"] = "true"
    os.environ.update(env)
    try:
        settings = Settings()
    except ValidationError as exc:
        for problem in exc.errors()[:5]:
            name = ".".join(str(p) for p in problem["loc"]) or "settings"
            err.print(f"[red]GATE_{escape(name.upper())}: {escape(str(problem['msg']))[:300]}[/]")
        raise typer.Exit(EXIT_INVALID) from None
    if settings.dashboard_tokens_file is not None and not settings.dashboard_tokens_file.is_file():
        err.print(f"[red]--tokens-file {escape(str(settings.dashboard_tokens_file))}: no such file[/]")
        raise typer.Exit(EXIT_INVALID)
    listen_host, _, listen_port = settings.dashboard_listen.rpartition(":")
    err.print(
        f"gate dashboard on [bold]http://{escape(settings.dashboard_listen)}[/] "
        f"reading {escape(settings.masked()['store'])}"
    )
    uvicorn.run(
        FACTORY,
        factory=True,
        host=listen_host.strip("[]"),
        port=int(listen_port),
        access_log=False,  # the dashboard writes its own structured access log (gate.dashboard.access)
        log_level="info",
    )
