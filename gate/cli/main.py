"""Entry point of the `gate` command. Each command lives in its own module and registers itself here."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="gate",
    help="Progressive-delivery performance gate: contracts, evidence, verdicts, promote or roll back.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """gate — promote a canary only on evidence."""


def _register() -> None:
    # Imported here so that `gate --help` stays fast and each command module owns its imports.
    from gate.cli import contract_cmds, judge_cmd, learn_cmd, load_cmd

    contract_cmds.register(app)
    learn_cmd.register(app)
    load_cmd.register(app)
    judge_cmd.register(app)


_register()


def _register_engine() -> None:
    from gate.cli import (
        check_cmd,
        config_cmd,
        dashboard_cmd,
        demo_cmd,
        operator_cmd,
        preflight_cmd,
        run_cmd,
        runs_cmd,
    )

    check_cmd.register(app)
    run_cmd.register(app)
    demo_cmd.register(app)
    config_cmd.register(app)
    preflight_cmd.register(app)
    runs_cmd.register(app)
    dashboard_cmd.register(app)
    operator_cmd.register(app)


_register_engine()

if __name__ == "__main__":  # pragma: no cover
    app()
