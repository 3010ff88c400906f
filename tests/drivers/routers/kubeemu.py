"""The routers' tests use the shared Kubernetes emulator of tests/support/kube.py (kept under the
names these tests import)."""

from __future__ import annotations

from tests.support.kube import KubeEmulator, RunningKube, serve

VersionedEmulator = KubeEmulator
RunningEmulator = RunningKube
serve_emulator = serve

__all__ = ["RunningEmulator", "VersionedEmulator", "serve_emulator"]
