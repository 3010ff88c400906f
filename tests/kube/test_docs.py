"""docs/kubernetes.md says what the code does: its RBAC table lists every permission gate asks for,
and its manifests are valid Kubernetes objects."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import yaml

from gate.contract import parse_contract
from gate.drivers.preflight import permissions

DOC = Path(__file__).resolve().parents[2] / "docs" / "kubernetes.md"
HEAD = """apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {name: checkout, namespace: shop}
spec:
  target:
    stable: {service: checkout, deployment: checkout}
    canary: {service: checkout-canary, deployment: checkout-canary}
"""
ROUTERS = {
    "gateway-api": "{type: gateway-api, httpRoute: r}",
    "istio": "{type: istio, virtualService: v}",
    "ingress-nginx": "{type: ingress-nginx, ingress: i}",
    "deployment": "{type: deployment}",
}


def _table() -> dict[str, tuple[str, set[str]]]:
    rows: dict[str, tuple[str, set[str]]] = {}
    text = DOC.read_text()
    section = text[text.index("## RBAC") : text.index("### For a person")]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] not in ("router / promotion", "---"):
            rows[cells[0]] = (cells[2].strip("`"), {v.strip() for v in cells[3].split(",")})
    return rows


def test_the_rbac_table_lists_every_permission() -> None:
    table = _table()
    for router, spec in ROUTERS.items():
        for mode in ("route-only", "copy", "external"):
            contract = parse_contract(f"{HEAD}  router: {spec}\n  promotion: {{mode: {mode}}}\n")
            for p in permissions(contract, "shop"):
                rows = [router, f"promotion `{mode}`", "any Kubernetes router"]
                assert any(
                    r in table and table[r][0] == p.resource.plural and p.verb in table[r][1] for r in rows
                ), f"{p} is not in docs/kubernetes.md's RBAC table"


def test_the_manifests_are_valid() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.DOTALL)
    kinds = []
    for block in blocks:
        for obj in yaml.safe_load_all(block):
            if not obj or "apiVersion" not in obj or obj.get("apiVersion", "").startswith("perfgate"):
                continue
            if "kind" not in obj:
                continue
            kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
            kinds.append(obj["kind"])
    assert {"Role", "RoleBinding", "ServiceAccount", "Job"} <= set(kinds)
