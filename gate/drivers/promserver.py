"""A real Prometheus server on loopback, owned by gate: for tests, for the local demo, for CI runs.

It runs the Debian `prometheus` binary with its own data directory and config, waits for `/-/ready`,
and stops it by its own pid. Deterministic data comes from `backfill_openmetrics` (promtool turns
timestamped OpenMetrics text into TSDB blocks the server then serves); live data from a scrape
config written by `scrape_config`. Knows nothing about SLIs or contracts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from gate.drivers.process import child_options, terminate

# Backfilled test data sits at fixed dates; the default 15 d retention would delete it at start.
DEFAULT_RETENTION = "100y"
_LOG_TAIL = 2000


class PromServerError(RuntimeError):
    """Prometheus or promtool failed; the message carries the tail of their own words."""


def _binary(name: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if not found:
        raise PromServerError(f"{name} is not installed: install the Debian package prometheus")
    return found


@dataclass(frozen=True)
class ScrapeJob:
    """One scrape job: `host:port` targets, extra target labels, the metrics path."""

    name: str
    targets: Sequence[str]
    labels: Mapping[str, str] = field(default_factory=dict)
    metrics_path: str = "/metrics"
    scrape_interval: float | None = None


def _duration(seconds: float) -> str:
    # Prometheus durations take integer units; milliseconds cover every interval worth scraping at.
    return f"{max(1, round(seconds * 1000))}ms"


def scrape_config(
    jobs: Sequence[ScrapeJob], *, scrape_interval: float = 1.0, evaluation_interval: float | None = None
) -> str:
    """A complete prometheus.yml scraping `jobs` every `scrape_interval` seconds.

    Written as JSON, which is valid YAML: every string is quoted, so no job name, label or target
    can change the document's structure."""
    doc: dict[str, object] = {
        "global": {
            "scrape_interval": _duration(scrape_interval),
            "scrape_timeout": _duration(min(scrape_interval, 10.0)),
            "evaluation_interval": _duration(evaluation_interval or scrape_interval),
        },
        "scrape_configs": [
            {
                "job_name": job.name,
                "metrics_path": job.metrics_path,
                **(
                    {
                        "scrape_interval": _duration(job.scrape_interval),
                        "scrape_timeout": _duration(min(job.scrape_interval, 10.0)),
                    }
                    if job.scrape_interval
                    else {}
                ),
                "static_configs": [{"targets": list(job.targets), "labels": dict(job.labels)}],
            }
            for job in jobs
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def backfill_openmetrics(text: str, data_dir: Path) -> Path:
    """Turn timestamped OpenMetrics text into TSDB blocks in `data_dir` (created when missing).

    Start a `PrometheusServer` on the same directory afterwards; query it at fixed times.
    The text must end with `# EOF`; it is added when missing."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if not text.rstrip().endswith("# EOF"):
        text = text.rstrip("\n") + "\n# EOF\n"
    source = data_dir.parent / f".{data_dir.name}.backfill.om"
    source.write_text(text)
    try:
        result = subprocess.run(
            [
                _binary("promtool"),
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "-q",
                str(source),
                str(data_dir),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        source.unlink(missing_ok=True)
    if result.returncode != 0:
        words = (result.stderr or result.stdout).strip()[-_LOG_TAIL:]
        raise PromServerError(f"promtool could not backfill the OpenMetrics text: {words}")
    return data_dir


@dataclass
class PrometheusServer:
    """One `prometheus` process on 127.0.0.1:`port` with its own data directory and config.

    Use as a context manager, or call `start()` and, always, `stop()`."""

    data_dir: Path
    port: int
    config: str = field(default_factory=lambda: scrape_config([]))
    remote_write: bool = False
    retention: str = DEFAULT_RETENTION
    extra_args: Sequence[str] = ()
    web_config: str = ""
    """Prometheus's --web.config.file contents (basic_auth_users, tls_server_config), when not empty."""
    probe_headers: Mapping[str, str] = field(default_factory=dict)
    """Headers gate's own readiness and reload requests send (e.g. the basic auth `web_config` asks for)."""
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        """Base URL of the server's HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        """Where the config in effect is written (beside the data directory)."""
        return self.data_dir.parent / f"{self.data_dir.name}.prometheus.yml"

    @property
    def log_path(self) -> Path:
        """The server's stdout and stderr."""
        return self.data_dir.parent / f"{self.data_dir.name}.prometheus.log"

    def _check_config(self, path: Path) -> None:
        result = subprocess.run(
            [_binary("promtool"), "check", "config", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0:
            words = (result.stderr + result.stdout).strip()[-_LOG_TAIL:]
            raise PromServerError(f"promtool rejected the Prometheus config: {words}")

    def start(self, timeout: float = 20.0) -> PrometheusServer:
        """Write and check the config, start the server, return once `/-/ready` answers 200."""
        if self.running():
            return self
        self.config_path.write_text(self.config)
        self._check_config(self.config_path)
        cmd = [
            _binary("prometheus"),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--storage.tsdb.retention.time={self.retention}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            *(["--web.enable-remote-write-receiver"] if self.remote_write else []),
            *([f"--web.config.file={self._write_web_config()}"] if self.web_config else []),
            *self.extra_args,
        ]
        with self.log_path.open("ab") as log:
            # Dies with gate (PR_SET_PDEATHSIG): a killed gate leaves no Prometheus behind.
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=log, **child_options())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise PromServerError(f"prometheus exited at start (code {code}): {self._log_tail()}")
            if self.ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise PromServerError(f"prometheus was not ready within {timeout:.0f}s: {self._log_tail()}")

    def _write_web_config(self) -> Path:
        path = self.data_dir.parent / f"{self.data_dir.name}.web.yml"
        path.write_text(self.web_config)
        path.chmod(0o600)
        return path

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace").strip()[-_LOG_TAIL:]
        except OSError:
            return "(no log)"

    def ready(self) -> bool:
        """True when the server answers 200 on `/-/ready` (TSDB loaded, serving queries)."""
        try:
            req = urllib.request.Request(f"{self.url}/-/ready", headers=dict(self.probe_headers))  # noqa: S310
            with urllib.request.urlopen(req, timeout=1.0) as resp:  # noqa: S310 (loopback URL we built)
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def pid(self) -> int | None:
        """The pid of the server this object started, while it runs."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        return None

    def running(self) -> bool:
        """True while the server this object started runs."""
        return self.pid() is not None

    def reload(self, config: str, timeout: float = 10.0) -> None:
        """Check and apply a new config without a restart (SIGHUP); a rejected config changes nothing."""
        pid = self.pid()
        if pid is None:
            raise PromServerError("prometheus is not running; cannot reload")
        candidate = self.config_path.with_suffix(".candidate.yml")
        candidate.write_text(config)
        try:
            self._check_config(candidate)
            candidate.replace(self.config_path)
        finally:
            candidate.unlink(missing_ok=True)
        self.config = config
        try:
            req = urllib.request.Request(  # noqa: S310 (loopback)
                f"{self.url}/-/reload", method="POST", headers=dict(self.probe_headers)
            )
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
                if int(resp.status) != 200:
                    raise PromServerError(f"prometheus refused the reload (HTTP {resp.status})")
        except urllib.error.HTTPError as exc:
            raise PromServerError(f"prometheus refused the reload (HTTP {exc.code})") from exc

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`; idempotent."""
        proc, self._proc = self._proc, None
        terminate(proc, timeout)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
