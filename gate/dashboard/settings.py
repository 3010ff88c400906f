"""The dashboard's settings: gate's shared ``Settings`` (``GATE_*``: the store, the tokens file, the
proxy header, public reading, the session key, ``dashboard_listen``) plus what only the dashboard
needs (Kubernetes authorisation, the live stream's pace, its public URL)."""

from __future__ import annotations

from pydantic import Field, field_validator

from gate.settings import Settings


class DashboardSettings(Settings):
    """Settings of ``gate dashboard``; every field is ``GATE_<FIELD>`` in the environment too."""

    # In a cluster: TokenReview + SubjectAccessReview (``patch`` on the gate) through the API server.
    dashboard_kube_auth: bool = Field(False, description="Authenticate Kubernetes tokens, authorise by RBAC")
    dashboard_kube_host: str = Field("", description="API server URL (default: the pod's in-cluster one)")
    dashboard_kube_group: str = Field("perfgate.dev", description="API group of the gate resource")
    dashboard_kube_resource: str = Field("performancegates", description="Resource a reviewer must patch")
    dashboard_kube_namespace: str = Field("default", description="Namespace of runs that record none")
    dashboard_poll_interval: float = Field(1.0, gt=0.05, le=60, description="Seconds between store looks")
    dashboard_url: str = Field("", description="Public URL of the dashboard (default: http://listen)")

    @property
    def host(self) -> str:
        return self.dashboard_listen.rsplit(":", 1)[0].strip("[]") or "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self.dashboard_listen.rsplit(":", 1)[1])

    @property
    def public_url(self) -> str:
        return self.dashboard_url or f"http://{self.dashboard_listen}"

    @field_validator("dashboard_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"{value[:80]!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
        return value
