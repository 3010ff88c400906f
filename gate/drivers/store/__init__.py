"""The run store: what happened in every run, durably, for the engine, the faces and the dashboard.

``RunStore(url_or_path)`` opens SQLite (``sqlite:///path`` or a bare path: embedded, the default) or
PostgreSQL (``postgresql://…``: shared by processes and machines), bringing its schema to the newest
migration. It knows nothing of the engine's types: it stores the JSON documents it is handed.
``docs/store.md`` describes URLs, migrations, leases and the errors.
"""

from gate.drivers.store.errors import (
    EXIT_STORE,
    LeaseHeld,
    LeaseLost,
    RunFinished,
    StoreCorrupt,
    StoreError,
    StoreTooNew,
    StoreUnavailable,
    StoreURLInvalid,
)
from gate.drivers.store.leases import LeaseKeeper, holder_is_gone
from gate.drivers.store.records import (
    AuditRecord,
    DiagnosticRecord,
    EffectRecord,
    Lease,
    LookLike,
    LookRecord,
    LookWrite,
    NotificationRecord,
    PendingEffect,
    RunDetail,
    RunSummary,
    TransitionRecord,
    VerdictRecord,
)
from gate.drivers.store.runstore import (
    MAX_DIAGNOSTIC_BYTES,
    SCHEMA_VERSION,
    RunStore,
    new_holder,
)
from gate.drivers.store.url import StoreURL, parse_store_url, redact

__all__ = [
    "EXIT_STORE",
    "MAX_DIAGNOSTIC_BYTES",
    "SCHEMA_VERSION",
    "AuditRecord",
    "DiagnosticRecord",
    "EffectRecord",
    "Lease",
    "LeaseHeld",
    "LeaseKeeper",
    "LeaseLost",
    "LookLike",
    "LookRecord",
    "LookWrite",
    "NotificationRecord",
    "PendingEffect",
    "RunDetail",
    "RunFinished",
    "RunStore",
    "RunSummary",
    "StoreCorrupt",
    "StoreError",
    "StoreTooNew",
    "StoreURL",
    "StoreURLInvalid",
    "StoreUnavailable",
    "TransitionRecord",
    "VerdictRecord",
    "holder_is_gone",
    "new_holder",
    "parse_store_url",
    "redact",
]
