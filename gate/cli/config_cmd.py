"""`gate config`: the effective settings (environment ``GATE_*`` over defaults), secrets masked."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gate.settings import Settings

EXIT_INVALID = 2


def register(app: typer.Typer) -> None:
    """Add `gate config` to the `gate` application."""
    app.command("config")(config)


def config(
    as_json: Annotated[bool, typer.Option("--json", help="Print the values as JSON.")] = False,
) -> None:
    """Show the effective settings and where each comes from; secrets and URL passwords are masked.

    Every setting is an environment variable GATE_<NAME>; a command's flag beats it."""
    out = Console(highlight=False)
    try:
        settings = Settings()
    except ValidationError as exc:
        err = Console(stderr=True, highlight=False)
        for problem in exc.errors():
            name = ".".join(str(p) for p in problem["loc"]) or "settings"
            err.print(f"GATE_{escape(name.upper())}: {escape(str(problem['msg']))}")
        raise typer.Exit(EXIT_INVALID) from None
    values = settings.masked()
    if as_json:
        out.print_json(json.dumps(values))
        return
    table = Table(box=None)
    for column in ("setting", "environment variable", "value", "from"):
        table.add_column(column, overflow="fold")
    for name, value in values.items():
        env = f"GATE_{name.upper()}"
        origin = "environment" if env in os.environ else "default"
        table.add_row(name, env, escape("" if value is None else str(value)), origin)
    out.print(table)
