"""Shared test configuration. Real components (Prometheus, nginx, Locust, Chaos Toolkit) are
started by the tests themselves on loopback and stopped by their own pid."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_collection_modifyitems(config: object, items: list[object]) -> None:
    """`make test` runs pytest-xdist with ``--dist loadgroup``: one worker takes a whole file, and the
    dashboard and operator suites (which share one demo / emulator per session) each stay on one worker."""
    import pytest

    tests = ROOT / "tests"
    for item in items:
        path = Path(str(item.fspath))  # type: ignore[attr-defined]
        try:
            parts = path.relative_to(tests).parts
        except ValueError:
            continue
        group = parts[0] if parts and parts[0] in {"dashboard", "operator"} else "/".join(parts)
        item.add_marker(pytest.mark.xdist_group(group))  # type: ignore[attr-defined]
