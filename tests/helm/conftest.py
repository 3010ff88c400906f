"""The chart rendered by the real helm binary (``make helm`` puts it at .venv/bin/helm)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm import tools

CHART = tools.ROOT / "charts" / "gate"
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
GATES = sorted((CHART / "examples" / "gates").glob("*.yaml"))
CRDS = sorted((CHART / "crds").glob("*.yaml"))
K8S_VERSION = "1.30.0"  # the oldest Kubernetes the chart's kubeVersion admits that gate is tested on

Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def helm() -> Path:
    if not tools.HELM.exists():
        pytest.skip("no helm binary at .venv/bin/helm: run `make helm` (a pinned, sha256-checked download)")
    return tools.HELM


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="session")
def render(helm: Path) -> Render:
    """`helm template` → the manifests as dicts; raises AssertionError with helm's words on failure."""

    def _render(
        *values_files: Path, sets: Sequence[str] = (), namespace: str = "gate"
    ) -> list[dict[str, Any]]:
        args = ["template", "rel", str(CHART), "--namespace", namespace, "--include-crds"]
        for f in values_files:
            args += ["-f", str(f)]
        for s in sets:
            args += ["--set", s]
        done = run_helm(helm, *args)
        if done.returncode != 0:
            raise AssertionError(f"helm template failed: {done.stderr.strip()[:3000]}")
        return [d for d in yaml.safe_load_all(done.stdout) if d]

    return _render


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, (
        f"expected one {kind} *{name_suffix}, got {[d['metadata']['name'] for d in found]}"
    )
    return found[0]
