"""A real nginx process on loopback, owned by gate: its own prefix, config checked with `nginx -t`
before it is used, reloaded with SIGHUP, stopped by its own pid.

Used by the nginx router (weights and mirror for local runs) and by the nginx fault proxy (HTTP
delay/abort with the Lua module). Knows nothing about weights or faults: it runs a config.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from gate.drivers.process import child_options, tree_tied

LUA_MODULES_DIR = Path("/usr/share/nginx/modules")


class NginxError(RuntimeError):
    """nginx refused a config or did not start; the message carries nginx's own words."""


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not found:
        raise NginxError("nginx is not installed: install the Debian packages nginx, libnginx-mod-http-lua")
    return found


def lua_available() -> bool:
    return (LUA_MODULES_DIR / "ngx_http_lua_module.so").exists() and (
        LUA_MODULES_DIR / "ndk_http_module.so"
    ).exists()


def main_config(http_body: str, *, lua: bool = False, worker_processes: int = 1) -> str:
    """Wrap an `http { ... }` body into a complete, self-contained nginx.conf for a private prefix."""
    lines: list[str] = []
    if lua:
        if not lua_available():
            raise NginxError(
                "the nginx Lua module is missing: install the Debian package libnginx-mod-http-lua"
            )
        lines += [
            f"load_module {LUA_MODULES_DIR / 'ndk_http_module.so'};",
            f"load_module {LUA_MODULES_DIR / 'ngx_http_lua_module.so'};",
        ]
    if os.geteuid() == 0:
        # Workers would otherwise drop to `nobody`, who cannot reach a private 0700 prefix.
        lines.append("user root;")
    lines += [
        "daemon off;",
        "master_process on;",
        f"worker_processes {worker_processes};",
        "pid logs/nginx.pid;",
        # notice: reloads are confirmed in the log ("start worker processes"), see NginxServer.reload.
        "error_log logs/error.log notice;",
        "events { worker_connections 4096; }",
        "http {",
        "  access_log off;",
        "  client_body_temp_path tmp/body;",
        "  proxy_temp_path tmp/proxy;",
        "  fastcgi_temp_path tmp/fastcgi;",
        "  uwsgi_temp_path tmp/uwsgi;",
        "  scgi_temp_path tmp/scgi;",
        "  keepalive_requests 100000;",
        http_body,
        "}",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class NginxServer:
    """One nginx master process with its own prefix directory (conf/, logs/, tmp/)."""

    prefix: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.prefix = Path(self.prefix).resolve()
        for sub in ("conf", "logs", "tmp"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)

    @property
    def conf_path(self) -> Path:
        return self.prefix / "conf" / "nginx.conf"

    @property
    def pid_path(self) -> Path:
        return self.prefix / "logs" / "nginx.pid"

    def _run(self, *args: str, conf: Path | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [nginx_binary(), "-p", str(self.prefix), "-c", str(conf or self.conf_path), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)

    def check(self, conf_text: str) -> None:
        """Validate a config with `nginx -t` without touching the one in effect."""
        candidate = self.prefix / "conf" / "candidate.conf"
        candidate.write_text(conf_text)
        try:
            result = self._run("-t", "-q", conf=candidate)
            if result.returncode != 0:
                raise NginxError(f"nginx -t rejected the config: {result.stderr.strip()[-2000:]}")
        finally:
            candidate.unlink(missing_ok=True)

    def apply(self, conf_text: str) -> None:
        """Check the config, then write it and start nginx, or reload it when it runs already.

        A config that fails `nginx -t` changes nothing: the one in effect stays. So does one that
        passes `nginx -t` but fails when nginx loads it (e.g. a listen port taken meanwhile, which
        `nginx -t` does not try): the previous file is put back, so the file says what runs."""
        self.check(conf_text)
        previous = self.conf_path.read_text() if self.conf_path.exists() else None
        self._write_conf(conf_text)
        if self.running():
            try:
                self.reload()
            except NginxError:
                if previous is not None:
                    self._write_conf(previous)
                raise
        else:
            self.start()

    def _write_conf(self, text: str) -> None:
        tmp = self.conf_path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.conf_path)

    def start(self, timeout: float = 10.0) -> None:
        log = (self.prefix / "logs" / "stderr.log").open("ab")
        self._proc = subprocess.Popen(
            [nginx_binary(), "-p", str(self.prefix), "-c", str(self.conf_path)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            # Tied to gate only in the demo (tied_tree): a local router must outlive a gate restart.
            **child_options(tie=tree_tied()),
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = (self.prefix / "logs" / "stderr.log").read_text(errors="replace")[-2000:]
                raise NginxError(f"nginx exited at start (code {self._proc.returncode}): {err.strip()}")
            if self.pid_path.exists() and self.pid_path.read_text().strip():
                return
            time.sleep(0.02)
        self.stop()
        raise NginxError(f"nginx did not write its pid file within {timeout:.0f}s")

    def pid(self) -> int | None:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        try:
            value = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        return value if _alive(value) else None

    def running(self) -> bool:
        return self.pid() is not None

    def reload(self, timeout: float = 10.0) -> None:
        """SIGHUP: the master re-reads the config; old workers finish their requests.

        Returns once new workers serve the new config and every old worker has stopped taking
        connections (it logged "gracefully shutting down" or is gone), so a request sent after this
        returns is routed by the new config. Raises NginxError when nginx refused the config at
        reload ([emerg]; it keeps the old one) or did not confirm within `timeout`."""
        pid = self.pid()
        if pid is None:
            raise NginxError("nginx is not running; cannot reload")
        error_log = self.prefix / "logs" / "error.log"
        offset = error_log.stat().st_size if error_log.exists() else 0
        old_workers = _children(pid)
        deadline = time.monotonic() + timeout
        os.kill(pid, signal.SIGHUP)
        while time.monotonic() < deadline:
            time.sleep(0.01)
            fresh = _read_from(error_log, offset)
            emergencies = [line for line in fresh.splitlines() if "[emerg]" in line]
            if emergencies:
                raise NginxError(
                    "nginx rejected the config at reload and keeps the previous one: "
                    + emergencies[-1][-500:]
                )
            workers = _children(pid)
            lingering = old_workers & workers
            draining = fresh.count("gracefully shutting down")
            if workers - old_workers and (not lingering or draining >= len(lingering)):
                return
        raise NginxError(f"nginx did not confirm the reload within {timeout:.0f}s (see {error_log})")

    def stop(self, timeout: float = 10.0) -> None:
        pid = self.pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGQUIT)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.pid == pid:
                if self._proc.poll() is not None:
                    break
            elif not _alive(pid):
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if self._proc is not None:
                self._proc.wait(timeout=5)
        self.pid_path.unlink(missing_ok=True)


def _read_from(path: Path, offset: int, limit: int = 64_000) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            return fh.read(limit).decode(errors="replace")
    except OSError:
        return ""


def _children(pid: int) -> set[int]:
    """Live child processes of `pid` (nginx's workers), read from /proc."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid) and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False
