"""Performance contracts: pydantic models, units, SLI templates and loading with precise errors.

Pure: no network, no clock, no Kubernetes. Reads files only when asked to load one.

```python
from gate.contract import load_contract, ContractError
contract = load_contract(Path("contracts/checkout.yaml"))   # ContractError(problems=[...]) when invalid
```
"""

from gate.contract.base import SOURCES, TRACKS, Source, Track
from gate.contract.errors import ContractError, Problem
from gate.contract.loader import contract_from_data, load_contract, parse_contract, validate_source
from gate.contract.models import (
    API_VERSION,
    KIND,
    ChaosExperiment,
    Contract,
    DeploymentRouter,
    Endpoint,
    FaultExperiment,
    FileExperiment,
    GatewayApiRouter,
    HttpFault,
    IngressNginxRouter,
    InlineExperiment,
    IstioRouter,
    Load,
    Metadata,
    MinEvidence,
    NginxRouter,
    Notify,
    Objective,
    PagerDutyNotify,
    Policy,
    Prometheus,
    Route,
    Router,
    SlackNotify,
    Spec,
    Target,
    Task,
    Traffic,
    WebhookNotify,
)
from gate.contract.pydantic_errors import register_vocabulary
from gate.contract.sli import RenderedQuery, SliLibrary, SliTemplate
from gate.contract.steps import Analyze, ChaosStep, LoadStep, Mirror, Pause, SetWeight, Step

register_vocabulary(Contract, SliTemplate)

__all__ = [
    "API_VERSION",
    "KIND",
    "SOURCES",
    "TRACKS",
    "Analyze",
    "ChaosExperiment",
    "ChaosStep",
    "Contract",
    "ContractError",
    "DeploymentRouter",
    "Endpoint",
    "FaultExperiment",
    "FileExperiment",
    "GatewayApiRouter",
    "HttpFault",
    "IngressNginxRouter",
    "InlineExperiment",
    "IstioRouter",
    "Load",
    "LoadStep",
    "Metadata",
    "MinEvidence",
    "Mirror",
    "NginxRouter",
    "Notify",
    "Objective",
    "PagerDutyNotify",
    "Pause",
    "Policy",
    "Problem",
    "Prometheus",
    "RenderedQuery",
    "Route",
    "Router",
    "SetWeight",
    "SlackNotify",
    "SliLibrary",
    "SliTemplate",
    "Source",
    "Spec",
    "Step",
    "Target",
    "Task",
    "Track",
    "Traffic",
    "WebhookNotify",
    "contract_from_data",
    "load_contract",
    "parse_contract",
    "validate_source",
]
