"""The dashboard's settings: one ``BaseSettings`` read from ``GATE_*`` variables (and the command line).

Until the shared ``gate.settings.Settings`` lands this module owns the dashboard's fields under the
same names (``dashboard_tokens_file``, ``dashboard_proxy_header``, ``dashboard_public_read``,
``dashboard_secret``) so switching later changes one import.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DashboardSettings(BaseSettings):
    """How the dashboard finds its store and decides who may read and act."""

    model_config = SettingsConfigDict(env_prefix="GATE_", extra="ignore")

    store: str = Field(default=".gate/runs.sqlite", description="Run store: a SQLite path or sqlite:/// URL.")
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = Field(default=8765, ge=0, le=65535)
    # Bearer tokens, one ``token name`` per line (a mounted Kubernetes Secret works the same way).
    dashboard_tokens_file: Path | None = None
    # A trusted proxy's identity header (e.g. X-Forwarded-User); only set behind such a proxy.
    dashboard_proxy_header: str = ""
    # Read-only pages and API without credentials (actions always need them).
    dashboard_public_read: bool = True
    # Signs sessions and CSRF tokens; a random one per process when unset (sessions end on restart).
    dashboard_secret: SecretStr = Field(default_factory=lambda: SecretStr(secrets.token_urlsafe(32)))
    # In a cluster: TokenReview + SubjectAccessReview (``patch`` on the gate) through the API server.
    dashboard_kube_auth: bool = False
    dashboard_kube_host: str = ""  # the API server; in-cluster configuration when empty
    dashboard_kube_resource: str = "performancegates"
    dashboard_kube_group: str = "perfgate.dev"
    dashboard_kube_namespace: str = "default"
    # How often the live stream looks at the store, in seconds.
    dashboard_poll_interval: float = Field(default=1.0, gt=0.05, le=60)
    # Public base URL (printed by ``gate demo``); empty means http://host:port.
    dashboard_url: str = ""
