"""The audit of the drop-in endpoints: one JSON line per call (who, what, which revision, the answer).

Tokens are never written: the caller is named by its address and which credential it used; metadata
values are shortened and a ``token`` key is dropped.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("gate.integrations.audit")

MAX_FIELD = 300
SECRET_KEYS = frozenset({"token", "authorization", "password", "secret"})


def _short(value: Any) -> Any:
    if isinstance(value, str):
        return value[:MAX_FIELD]
    if isinstance(value, dict):
        return {
            str(k)[:64]: _short(v) for k, v in list(value.items())[:32] if str(k).lower() not in SECRET_KEYS
        }
    if isinstance(value, list):
        return [_short(v) for v in value[:32]]
    return value


class AuditLog:
    """Appends audit records to a file (flushed per record) and to the log."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()

    def record(self, **fields: Any) -> dict[str, Any]:
        entry = {"at": time.time(), **{k: _short(v) for k, v in fields.items()}}
        line = json.dumps(entry, sort_keys=True, default=str)
        log.info("%s", line)
        if self.path is not None:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
        return entry

    def read(self) -> list[dict[str, Any]]:
        """Every record in the file (for tests and for the dashboard)."""
        if self.path is None or not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
