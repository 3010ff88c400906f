"""Fixtures for the Kubernetes tests: the emulator of tests/support/kube.py, fresh per test."""

from tests.support.kube import kube_api

__all__ = ["kube_api"]
