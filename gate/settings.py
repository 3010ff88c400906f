"""gate's settings in one typed place: environment variables ``GATE_*``, flags, defaults.

A flag beats an environment variable, which beats the default: a face builds its settings with
``Settings(**flags)`` where ``flags`` holds only the options given on its command line (``None`` for
those left out: see ``from_flags``). ``masked()`` is the view that may be printed (``gate config``):
secrets, and the password in a URL, are replaced by ``****``.

A shared leaf module: any layer may import it; it imports nothing of gate's.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MASK = "****"
DEFAULT_STORE = "sqlite:///.gate/runs.sqlite"


class Settings(BaseSettings):
    """Where gate keeps its runs, which Prometheus and cluster it talks to, how hard it may push the
    APIs, and how the dashboard authenticates. Every field is also ``GATE_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="GATE_", extra="forbid", frozen=True)

    # --- the run store
    store: str = Field(
        DEFAULT_STORE,
        description="Run store URL: sqlite:///relative/path, sqlite:////absolute/path or postgresql://…",
    )
    workdir: Path = Field(
        Path(".gate/work"),
        description="Driver files: fault ledger, Locust, chaos (default: work/ beside a SQLite store)",
    )

    # --- evidence
    prometheus_url: str | None = Field(None, description="Prometheus URL (default: the contract's)")
    prometheus_concurrency: int = Field(4, ge=1, le=64, description="Prometheus queries in flight at most")

    # --- Kubernetes
    kubeconfig: Path | None = Field(
        None, description="kubeconfig file (default: in-cluster account, $KUBECONFIG, ~/.kube/config)"
    )
    kube_context: str | None = Field(None, description="kubeconfig context (default: the current one)")
    namespace: str | None = Field(None, description="Namespace of routed objects the contract leaves open")
    kube_qps: float = Field(20.0, gt=0, le=1000, description="Kubernetes API requests per second at most")
    kube_burst: int = Field(40, ge=1, le=10000, description="Kubernetes API requests in a burst at most")

    # --- load at scale (the operator runs a contract's Locust as Jobs)
    load_image: str | None = Field(
        None,
        description="Image of the load Jobs (gate's own); unset: load always runs in gate's own processes",
    )
    load_local_workers: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="Locust workers gate runs itself; a contract asking for more runs them as Jobs "
        "(default: this machine's or pod's CPUs)",
    )
    load_worker_cpu: str = Field("1", description="CPU of each load Job pod (request = limit)")
    load_worker_memory: str = Field("512Mi", description="Memory of each load Job pod (request = limit)")

    # --- the local (nginx) router and built-in faults
    nginx_prefix: Path = Field(Path(".gate/nginx"), description="Directory of gate's own nginx router")
    listen_port: int | None = Field(
        None, ge=1, le=65535, description="Port of gate's nginx (if not in contract)"
    )
    fault_proxy: str | None = Field(None, description="Admin URL of the fault proxy (built-in faults)")

    # --- the dashboard
    dashboard_tokens_file: Path | None = Field(None, description="File of reviewers' bearer tokens")
    dashboard_proxy_header: str | None = Field(
        None, description="Header an authenticating proxy sets to the user's name"
    )
    dashboard_public_read: bool = Field(False, description="Let anyone read runs (acting always needs auth)")
    dashboard_secret: SecretStr | None = Field(None, description="Key signing the dashboard's sessions")
    dashboard_listen: str = Field("127.0.0.1:8080", description="host:port the dashboard listens on")

    @model_validator(mode="before")
    @classmethod
    def _workdir_beside_store(cls, data: Any) -> Any:
        # The fault ledger lives beside a SQLite store unless told otherwise: runs in different
        # folders do not share (or undo) each other's faults.
        if isinstance(data, dict) and data.get("workdir") is None and isinstance(data.get("store"), str):
            path = sqlite_path(data["store"])
            if path is not None:
                return {**data, "workdir": path.parent / "work"}
        return data

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme.split("+", 1)[0] not in {"sqlite", "postgresql", "postgres"}:
            raise ValueError(
                "the run store is a URL: sqlite:///path/to/runs.sqlite or postgresql://user@host/db "
                f"(got scheme {scheme[:20]!r})"
            )
        return value

    @classmethod
    def from_flags(cls, **flags: Any) -> Settings:
        """Settings from the environment, with the flags that were given (not ``None``) on top."""
        return cls(**{k: v for k, v in flags.items() if v is not None})

    def masked(self) -> dict[str, Any]:
        """Every effective value, printable: secrets and URL passwords replaced by ``****``."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                out[name] = MASK if value.get_secret_value() else ""
            elif isinstance(value, str) and "://" in value:
                out[name] = mask_url(value)
            elif isinstance(value, Path):
                out[name] = str(value)
            else:
                out[name] = value
        return out


def sqlite_path(url: str) -> Path | None:
    """The file a ``sqlite:///…`` URL names (a bare path is a file too); None for other URLs."""
    if "://" not in url:
        return Path(url)
    scheme, rest = url.split("://", 1)
    if scheme.split("+", 1)[0] != "sqlite" or not rest.startswith("/") or len(rest) < 2:
        return None
    return Path(rest[1:])


def mask_url(url: str) -> str:
    """``url`` with the password of its userinfo (and any query string) masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" not in netloc and not parts.query:
        return url  # nothing secret in it (and urlunsplit would drop an empty netloc's slashes)
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{user}@{host}"
    query = MASK if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment, read once (faces with flags use ``Settings.from_flags``)."""
    return Settings()
