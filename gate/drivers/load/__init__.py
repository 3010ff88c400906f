"""Synthetic load with Locust. Locust runs in its own processes; gate's process never imports it.

- `plan`: what to run (`LoadPlan`, `LoadTask`), built directly or from a contract;
- `driver`: starts the Locust processes and reads their records (`LoadDriver`);
- `protocol`: the JSON-lines records a Locust process streams back;
- `result`: progress events and the result (`LoadProgress`, `LoadResult`, `TrackResult`);
- `kube`: the same processes as Kubernetes Jobs (`job_manifests`), and `cluster`: the operator's
  driver that creates them, follows the master's log and deletes them (`ClusterLoadDriver`);
- `worker`: the Locust process itself (`python -m gate.drivers.load.worker`) — never imported here.
"""

from gate.drivers.load.driver import LoadDriver, LoadError
from gate.drivers.load.plan import TRACKS, LoadPlan, LoadTask, PlanError
from gate.drivers.load.result import LoadProgress, LoadResult, NodeCpu, TrackProgress, TrackResult

__all__ = [
    "TRACKS",
    "LoadDriver",
    "LoadError",
    "LoadPlan",
    "LoadProgress",
    "LoadResult",
    "LoadTask",
    "NodeCpu",
    "PlanError",
    "TrackProgress",
    "TrackResult",
]
