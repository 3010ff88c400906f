"""Shared test configuration. Real components (Prometheus, nginx, Locust, Chaos Toolkit) are
started by the tests themselves on loopback and stopped by their own pid."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
