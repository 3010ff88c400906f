"""docs/install.md names every value of the chart, and the docs' examples are the tested files."""

from __future__ import annotations

from typing import Any

import yaml

from tests.helm import tools
from tests.helm.conftest import CHART

INSTALL = (tools.ROOT / "docs" / "install.md").read_text()
INTEGRATIONS = (tools.ROOT / "docs" / "integrations.md").read_text()


OPAQUE = {"resources", "podSecurityContext", "securityContext"}  # Kubernetes objects, passed as they are


def _leaves(value: Any, prefix: str = "") -> list[str]:
    if isinstance(value, dict) and value and prefix.rpartition(".")[2] not in OPAQUE:
        return [leaf for k, v in value.items() for leaf in _leaves(v, f"{prefix}.{k}" if prefix else k)]
    return [prefix]


def test_every_value_is_documented() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = []
    for leaf in _leaves(values):
        head, _, last = leaf.rpartition(".")
        if f"`{leaf}`" not in INSTALL and not (head and f"`{head}." in INSTALL and f".{last}`" in INSTALL):
            missing.append(leaf)
    assert not missing, f"docs/install.md does not name: {missing}"


def test_the_documented_analysis_template_is_the_tested_one() -> None:
    template = yaml.safe_load((CHART / "examples" / "integrations" / "analysistemplate.yaml").read_text())
    block = INTEGRATIONS.split("kind: AnalysisTemplate", 1)[1].split("```", 1)[0]
    documented = yaml.safe_load("apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate" + block)
    assert documented["spec"] == template["spec"]
