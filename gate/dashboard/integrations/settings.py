"""Settings of the drop-in endpoints (environment, prefix ``GATE_INTEGRATIONS_``), read once per app."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MAX_BODY = 64 * 1024


class IntegrationsSettings(BaseSettings):
    """Where the contracts are, who may call, how long a call waits, where the audit goes."""

    model_config = SettingsConfigDict(env_prefix="GATE_INTEGRATIONS_", extra="ignore", populate_by_name=True)

    token: SecretStr | None = Field(
        default=None,
        description="The shared token callers send (Authorization: Bearer). Unset: every call is refused.",
    )
    contracts: Path = Field(
        default=Path("/etc/gate/contracts"),
        description="Folder of contracts: <namespace>/<name>.yaml, or <name>.yaml.",
    )
    namespaces: str = Field(
        default=".*", description="A regular expression the caller's namespace must match in full."
    )
    prometheus: str = Field(
        default="",
        validation_alias=AliasChoices("GATE_INTEGRATIONS_PROMETHEUS", "GATE_PROMETHEUS_URL"),
        description="Prometheus for the checks: a URL, 'off' (load samples only), or empty: the contract's.",
    )
    audit_log: Path | None = Field(
        default=None, description="A JSON-lines audit file (default: the log only)."
    )
    workdir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("GATE_INTEGRATIONS_WORKDIR", "GATE_WORKDIR"),
        description="Where the checks' Locust and chaos files go (default: temporary).",
    )
    max_body: int = Field(default=MAX_BODY, ge=1024, le=1024 * 1024)
    default_wait: float = Field(
        default=8.0, ge=0, le=600, description="Seconds a call waits for a verdict: under the callers' 10 s."
    )
    max_wait: float = Field(default=600.0, ge=0, le=3600)
    concurrency: int = Field(default=2, ge=1, le=32, description="Checks running at once.")
    keep: int = Field(default=256, ge=1, le=10_000, description="Finished checks remembered.")
