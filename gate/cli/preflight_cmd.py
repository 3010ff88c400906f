"""`gate preflight CONTRACT`: check, before a rollout, that it can work — and change nothing.

Exit codes: 0 ready (warnings may be printed), 1 problems found (each with what to do), 2 invalid
input (the contract, a flag). docs/kubernetes.md#preflight lists the checks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from gate.contract import ContractError, load_contract
from gate.drivers.kube import KubeOptions
from gate.drivers.preflight import Problem, preflight

EXIT_READY, EXIT_PROBLEMS, EXIT_INVALID = 0, 1, 2


def register(app: typer.Typer) -> None:
    """Add `gate preflight` to the `gate` application."""
    app.command("preflight")(preflight_command)


KubeconfigOpt = Annotated[
    str | None,
    typer.Option("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)."),
]
ContextOpt = Annotated[str | None, typer.Option("--context", help="kubeconfig context (default: current).")]
NamespaceOpt = Annotated[
    str | None,
    typer.Option(
        "--namespace", "-n", help="Namespace when the contract names none (default: the context's)."
    ),
]


def preflight_command(
    contract_path: Annotated[Path, typer.Argument(metavar="CONTRACT", help="The performance contract.")],
    *,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the problems as JSON.")] = False,
) -> None:
    """Check that CONTRACT can roll out: route and Services exist, gate may change them, Prometheus has
    the series, the steps can gather enough evidence. Exit 0 ready, 1 problems, 2 invalid input."""
    err = Console(stderr=True, highlight=False)
    try:
        contract = load_contract(contract_path)
    except ContractError as exc:
        for problem in exc.problems:
            err.print(escape(str(problem)))
        raise typer.Exit(EXIT_INVALID) from None
    except OSError as exc:
        err.print(
            f"{escape(str(contract_path))}: cannot read the contract: {escape(exc.strerror or str(exc))}"
        )
        raise typer.Exit(EXIT_INVALID) from None
    options = KubeOptions(kubeconfig=kubeconfig, context=context, namespace=namespace)
    problems = preflight(contract, kube=options)
    errors = [p for p in problems if p.severity == "error"]
    if as_json:
        typer.echo(json.dumps({"ready": not errors, "problems": [_as_dict(p) for p in problems]}, indent=2))
    else:
        out = Console(highlight=False)
        for p in problems:
            colour = "red" if p.severity == "error" else "yellow"
            out.print(
                f"[{colour}]{p.severity}[/] [{escape(p.check)}] {escape(p.subject)}: {escape(p.message)}\n"
                f"    → {escape(p.fix)}"
            )
        name = escape(contract.metadata.name)
        if errors:
            out.print(f"[red]{name}: not ready[/] — {len(errors)} problem(s) to fix first")
        else:
            out.print(f"[green]{name}: ready to roll out[/]")
    raise typer.Exit(EXIT_PROBLEMS if errors else EXIT_READY)


def _as_dict(p: Problem) -> dict[str, str]:
    return {
        "severity": p.severity,
        "check": p.check,
        "subject": p.subject,
        "message": p.message,
        "fix": p.fix,
    }
