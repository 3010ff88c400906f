"""The same load, with Locust workers as Kubernetes pods, when one machine is not enough.

`job_manifests(plan, ...)` returns the objects to create (plain dicts; gate's Kubernetes driver or
`kubectl apply` creates them — this module talks to no API):

- a ConfigMap holding the plan (`plan.json`, the file every Locust process reads);
- a Service in front of the master's ZeroMQ port, so workers find it by name;
- a Job for the master: `python -m gate.drivers.load.worker master --bind 0.0.0.0 ...`, which waits for
  the workers, runs the plan and writes the same JSON-lines records to its stdout (gate reads them
  from the pod's log stream with `gate.drivers.load.result.aggregate`, as it reads a local master's pipe);
- a Job for the workers: `parallelism` = `completions` = the number of workers, each
  `python -m gate.drivers.load.worker worker --master-host <service> ...`, each streaming its batches
  to the master over Locust's own protocol — the same protocol as local processes.

Every object is labelled with the run so that it can be listed and deleted together, and the Jobs
carry `activeDeadlineSeconds` (the plan's duration plus a grace) and `ttlSecondsAfterFinished`, so a
load that gate lost track of stops by itself and is garbage-collected.
"""

from __future__ import annotations

import re
from typing import Any

from gate.drivers.load.plan import LoadPlan

MASTER_PORT = 5557
PLAN_DIR = "/etc/gate-load"
GRACE_SECONDS = 120
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def job_manifests(
    plan: LoadPlan,
    *,
    name: str,
    namespace: str,
    image: str,
    workers: int,
    cpu: str = "1",
    memory: str = "512Mi",
    labels: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """ConfigMap, master Service, master Job and worker Job for one distributed load run.

    Each worker pod gets `cpu` (one core by default: a Locust process uses one) as request and limit,
    so the saturation check (80 % of a core) means the same in a pod as on a laptop."""
    if not _NAME_RE.match(name) or len(name) > 40:
        raise ValueError(f"name {name!r}: lowercase letters, digits and '-', at most 40 characters")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    common = {"app.kubernetes.io/name": "gate-load", "app.kubernetes.io/instance": name, **(labels or {})}
    master = f"{name}-master"
    deadline = int(plan.duration) + GRACE_SECONDS
    plan_volume = {"name": "plan", "configMap": {"name": f"{name}-plan"}}
    mount = {"name": "plan", "mountPath": PLAN_DIR, "readOnly": True}
    resources = {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}}
    security = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    base_cmd = ["python", "-m", "gate.drivers.load.worker"]

    def job(role: str, command: list[str], count: int, ports: list[dict[str, Any]]) -> dict[str, Any]:
        pod_labels = {**common, "app.kubernetes.io/component": role}
        container: dict[str, Any] = {
            "name": role,
            "image": image,
            "command": command,
            "resources": resources,
            "securityContext": security,
            "volumeMounts": [mount],
        }
        if ports:
            container["ports"] = ports
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": f"{name}-{role}", "namespace": namespace, "labels": pod_labels},
            "spec": {
                "parallelism": count,
                "completions": count,
                "backoffLimit": 0,
                "activeDeadlineSeconds": deadline,
                "ttlSecondsAfterFinished": 600,
                "template": {
                    "metadata": {"labels": pod_labels},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [container],
                        "volumes": [plan_volume],
                    },
                },
            },
        }

    plan_file = f"{PLAN_DIR}/plan.json"
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{name}-plan", "namespace": namespace, "labels": common},
            "data": {"plan.json": plan.to_json()},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": master, "namespace": namespace, "labels": common},
            "spec": {
                "selector": {**common, "app.kubernetes.io/component": "master"},
                "ports": [{"name": "locust", "port": MASTER_PORT, "targetPort": MASTER_PORT}],
            },
        },
        job(
            "master",
            [
                *base_cmd,
                "master",
                "--plan",
                plan_file,
                "--bind",
                "0.0.0.0",
                "--port",
                str(MASTER_PORT),
                "--expect-workers",
                str(workers),
            ],
            1,
            [{"name": "locust", "containerPort": MASTER_PORT}],
        ),
        job(
            "worker",
            [*base_cmd, "worker", "--plan", plan_file, "--master-host", master, "--port", str(MASTER_PORT)],
            workers,
            [],
        ),
    ]
