"""Every rendered query — every template, form, and hostile label value — is accepted by Prometheus'
own parser (`promtool check rules`), not only by the Python PromQL parser."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from gate.contract import SliLibrary, parse_contract
from gate.contract.sli import FORMS
from tests.contract.test_sli import BASE, HOSTILE

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian prometheus) missing"
)


def test_prometheus_parses_every_rendered_query(tmp_path: Path) -> None:
    library = SliLibrary.default()
    contract = parse_contract(BASE, library=library)
    queries = []
    for template in library:
        for form in FORMS[template.kind]:
            queries.append(
                library.render(template.name, contract, form=form, quantile=0.99, window="2m").promql
            )
    for value in HOSTILE:
        contract.spec.traffic = contract.spec.traffic.model_validate(
            {
                "sources": {
                    "synthetic": {"src": value},
                    "shadow": {"src": value + "x"},
                    "production": {"src": "p"},
                }
            }
        )
        contract.spec.service = value
        queries.append(library.render("istio-error-ratio", contract, form="counts").promql)
        queries.append(library.render("istio-latency", contract, quantile=0.5).promql)
    # JSON is YAML: no quoting questions for the rules file.
    rules = {
        "groups": [
            {"name": "gate", "rules": [{"record": f"gate:q{i}", "expr": q} for i, q in enumerate(queries)]}
        ]
    }
    path = tmp_path / "rules.yaml"
    path.write_text(json.dumps(rules))
    done = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(queries)} rules found" in done.stdout
