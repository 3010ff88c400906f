"""`gate operator`: run the Kubernetes operator; `gate operator crd`: print its CustomResourceDefinition.

Thin: flags (each with a `GATE_*` environment variable) into `gate.operator.main.OperatorConfig`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

operator_app = typer.Typer(
    name="operator",
    help="The Kubernetes operator: PerformanceGate resources drive rollouts.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def register(app: typer.Typer) -> None:
    """Add `gate operator` to the `gate` application."""
    app.add_typer(operator_app)


@operator_app.callback(invoke_without_command=True)
def operator(
    ctx: typer.Context,
    *,
    store: Annotated[
        str,
        typer.Option(
            envvar="GATE_OPERATOR_STORE", help="The run store: a SQLite file, sqlite:///… or postgresql://…"
        ),
    ] = ".gate/operator.sqlite",
    workdir: Annotated[
        Path, typer.Option(envvar="GATE_OPERATOR_WORKDIR", help="Directory for the drivers' files.")
    ] = Path(".gate/operator"),
    kube_server: Annotated[
        str | None,
        typer.Option(envvar="GATE_KUBE_SERVER", help="API server URL (default: in-cluster or kubeconfig)."),
    ] = None,
    kube_token: Annotated[
        str | None,
        typer.Option(envvar="GATE_KUBE_TOKEN", help="Bearer token for --kube-server.", show_default=False),
    ] = None,
    kubeconfig: Annotated[str | None, typer.Option(envvar="KUBECONFIG", help="A kubeconfig file.")] = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Watch only these namespaces (default: all)."),
    ] = None,
    peering: Annotated[
        str | None, typer.Option(envvar="GATE_OPERATOR_PEERING", help="kopf peering name (several replicas).")
    ] = None,
    priority: Annotated[
        int | None, typer.Option(envvar="GATE_OPERATOR_PRIORITY", help="Peering priority (default: random).")
    ] = None,
    peering_lifetime: Annotated[
        int,
        typer.Option(
            envvar="GATE_OPERATOR_PEERING_LIFETIME", help="Seconds before a silent leader is replaced."
        ),
    ] = 15,
    kube_qps: Annotated[
        float, typer.Option(envvar="GATE_KUBE_QPS", help="Kubernetes API calls per second.")
    ] = 20.0,
    kube_burst: Annotated[int, typer.Option(envvar="GATE_KUBE_BURST", help="Kubernetes API burst.")] = 40,
    prometheus_concurrency: Annotated[
        int,
        typer.Option(envvar="GATE_PROMETHEUS_CONCURRENCY", help="Prometheus queries in flight, all gates."),
    ] = 8,
    workers: Annotated[int, typer.Option(envvar="GATE_OPERATOR_WORKERS", help="Worker threads.")] = 8,
    probe_host: Annotated[
        str, typer.Option(envvar="GATE_OPERATOR_PROBE_HOST", help="Probes' address.")
    ] = "0.0.0.0",
    probe_port: Annotated[
        int,
        typer.Option(envvar="GATE_OPERATOR_PROBE_PORT", help="Port of /metrics, /healthz, /readyz (0: any)."),
    ] = 8080,
    status_every: Annotated[
        float,
        typer.Option(
            envvar="GATE_OPERATOR_STATUS_EVERY",
            help="Seconds between status writes that only refresh the last look's numbers.",
        ),
    ] = 30.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at debug level.")] = False,
) -> None:
    """Run the operator (until SIGTERM). `gate operator crd` prints the CRD instead."""
    if ctx.invoked_subcommand is not None:
        return
    from gate.operator.main import OperatorConfig, run

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        # One line per Prometheus query or handled watch event would cost more than the work itself.
        for noisy in ("httpx", "httpcore", "kopf.objects", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    if workers < 1 or kube_qps <= 0 or kube_burst < 1 or prometheus_concurrency < 1:
        typer.echo(
            "--workers, --kube-qps, --kube-burst and --prometheus-concurrency must be positive", err=True
        )
        raise typer.Exit(2)
    config = OperatorConfig(
        store=store,
        workdir=workdir,
        kube_server=kube_server,
        kube_token=kube_token,
        kubeconfig=kubeconfig,
        namespaces=tuple(namespace or ()),
        peering=peering,
        priority=priority,
        peering_lifetime=peering_lifetime,
        kube_qps=kube_qps,
        kube_burst=kube_burst,
        prometheus_concurrency=prometheus_concurrency,
        workers=workers,
        probe_host=probe_host,
        probe_port=probe_port,
        status_every=status_every,
    )
    raise typer.Exit(run(config))


@operator_app.command("crd")
def crd() -> None:
    """Print the PerformanceGate CustomResourceDefinition (YAML), generated from the models."""
    from gate.operator.crd import crd_yaml

    typer.echo(crd_yaml(), nl=False)
