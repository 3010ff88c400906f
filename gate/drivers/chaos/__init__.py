"""Fault injection with Chaos Toolkit, run in its own process; every fault recorded and undone.

Public surface: ``ChaosDriver`` (run an experiment in a worker, abort, recover), ``FaultLedger`` (the
durable record of faults), ``Journal`` (what a run did, with its chaos window), the experiment specs,
and ``faultproxy.FaultProxy`` (nginx + Lua HTTP delay/abort). ``actions`` and ``istio`` are Chaos
Toolkit activity modules; ``worker`` is the process that imports chaoslib. Nothing here imports
chaoslib or the Kubernetes client into gate's own process.
"""

from gate.drivers.chaos.driver import ChaosDriver, ChaosError, ChaosRun, WorkerEvent
from gate.drivers.chaos.experiment import (
    BuiltinFault,
    ExperimentError,
    ExperimentFile,
    ExperimentSpec,
    FaultContext,
    HttpFault,
    InlineExperiment,
    IstioTarget,
    builtin_experiment,
    spec_from_contract,
    specs_from_contract,
)
from gate.drivers.chaos.journal import ActivityRun, ChaosWindow, Journal, SteadyState, parse_journal
from gate.drivers.chaos.ledger import FaultEntry, FaultLedger, LedgerError, RecoveryResult, Undo

__all__ = [
    "ActivityRun",
    "BuiltinFault",
    "ChaosDriver",
    "ChaosError",
    "ChaosRun",
    "ChaosWindow",
    "ExperimentError",
    "ExperimentFile",
    "ExperimentSpec",
    "FaultContext",
    "FaultEntry",
    "FaultLedger",
    "HttpFault",
    "InlineExperiment",
    "IstioTarget",
    "Journal",
    "LedgerError",
    "RecoveryResult",
    "SteadyState",
    "Undo",
    "WorkerEvent",
    "builtin_experiment",
    "parse_journal",
    "spec_from_contract",
    "specs_from_contract",
]
