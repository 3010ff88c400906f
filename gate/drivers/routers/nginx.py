"""nginx router: for services outside Kubernetes and for local runs (the demo).

Gate runs its own nginx (unprivileged, loopback, its own prefix; `gate.drivers.nginx.NginxServer`)
in front of the stable and canary URLs, and owns its whole config:

- a weighted upstream splits production traffic (nginx refuses `weight=0`, so a track with no
  share is left out: 0 % is stable alone, 100 % canary alone);
- with mirroring on, `mirror` sends a copy of each request (body included) to an internal location
  that proxies it to the canary with `X-Traffic-Source: shadow`; the copy's response is dropped.
  Below 100 %, `split_clients` on `$request_id` picks which requests are copied;
- every response carries `X-Canary-Track: stable|canary`, and `logs/access.log` records the track,
  so a test or a person can see where each request went.

A config is checked with `nginx -t` before it replaces the one in effect (a rejected config changes
nothing), then nginx reloads. The first line of the config records the weight and mirror share, and
`read()` parses the config in effect — what nginx runs, not what gate remembers.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from gate.drivers.nginx import NginxError, NginxServer, main_config
from gate.drivers.routers import weights
from gate.drivers.routers.base import Finish, Outcome, RouterMisconfigured, RouterUnavailable, RouteState

STATE_MARK = "# gate-router-state: "
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_HEADER_VALUE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}$")


@dataclass(frozen=True)
class Upstream:
    """host:port of one track (plain HTTP, no path)."""

    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def from_url(cls, url: str, what: str) -> Upstream:
        """Parse `http://host:port` (a trailing `/` is fine); anything else is refused with a reason."""
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise ValueError(f"{what} URL {url!r}: the nginx router proxies plain http:// only")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"{what} URL {url!r}: give only scheme, host and port (no path or query)")
        host = parts.hostname or ""
        if not _HOST.match(host):
            raise ValueError(f"{what} URL {url!r}: not a valid host name")
        try:
            port = parts.port or 80
        except ValueError as exc:
            raise ValueError(f"{what} URL {url!r}: bad port") from exc
        return cls(host, port)


@dataclass(frozen=True)
class NginxRouteConfig:
    """Everything the nginx config depends on; `render` turns it into a config (pure)."""

    listen_port: int
    stable: Upstream
    canary: Upstream
    listen_host: str = "127.0.0.1"
    shadow_header: str = "X-Traffic-Source"
    shadow_value: str = "shadow"
    track_header: str = "X-Canary-Track"
    mirror_timeout_s: int = 10

    def __post_init__(self) -> None:
        if self.stable.address == self.canary.address:
            raise ValueError(f"stable and canary are the same address {self.stable.address}")
        for name in (self.shadow_header, self.track_header):
            if not _HEADER_NAME.match(name):
                raise ValueError(f"header name {name!r}: letters, digits and '-' only")
        if not _HEADER_VALUE.match(self.shadow_value):
            raise ValueError(f"header value {self.shadow_value!r}: letters, digits, '_', '.', '-' only")
        if not _HOST.match(self.listen_host):
            raise ValueError(f"listen host {self.listen_host!r} is not an address")


def render(cfg: NginxRouteConfig, canary_weight: int, mirror_percent: int) -> str:
    """The `http { }` body for a weight and mirror share (pure; `main_config` wraps it)."""
    weights.check_percent(canary_weight)
    weights.check_percent(mirror_percent, "mirror percentage")
    by_track = {"stable": cfg.stable, "canary": cfg.canary}
    servers = "\n".join(
        f"    server {by_track[track].address} weight={w} max_fails=0;"
        for track, w in weights.upstream_servers(canary_weight)
    )
    state = json.dumps({"canary_weight": canary_weight, "mirror_percent": mirror_percent}, sort_keys=True)
    lines = [
        f"{STATE_MARK}{state}",
        f"upstream gate_split {{\n{servers}\n    keepalive 32;\n}}",
        f"upstream gate_canary {{\n    server {cfg.canary.address} max_fails=0;\n    keepalive 16;\n}}",
        "map $upstream_addr $gate_track {",
        f'    "{cfg.stable.address}" stable;',
        f'    "{cfg.canary.address}" canary;',
        '    default "";',
        "}",
        "log_format gate_router '$msec $gate_track $status $request_method \"$request_uri\" $request_time';",
    ]
    sampled = 0 < mirror_percent < weights.PERCENT_MAX
    if sampled:
        lines += [
            'split_clients "${request_id}" $gate_mirror_sample {',
            f"    {mirror_percent}% on;",
            "    * off;",
            "}",
        ]
    location = [
        "    location / {",
        "        proxy_pass http://gate_split;",
        f"        add_header {cfg.track_header} $gate_track always;",
    ]
    if mirror_percent > 0:
        location += ["        mirror /_gate_mirror;", "        mirror_request_body on;"]
    location.append("    }")
    server = [
        "server {",
        f"    listen {cfg.listen_host}:{cfg.listen_port};",
        "    access_log logs/access.log gate_router;",
        "    proxy_http_version 1.1;",
        '    proxy_set_header Connection "";',
        "    proxy_set_header Host $http_host;",
        # A failed canary request is not retried on stable: that would hide the canary's errors
        # from the evidence (and a mesh router does not do it either).
        "    proxy_next_upstream off;",
        *location,
    ]
    if mirror_percent > 0:
        server += [
            "    location = /_gate_mirror {",
            "        internal;",
            *(["        if ($gate_mirror_sample = off) { return 204; }"] if sampled else []),
            f"        proxy_set_header {cfg.shadow_header} {cfg.shadow_value};",
            "        proxy_connect_timeout 2s;",
            f"        proxy_read_timeout {cfg.mirror_timeout_s}s;",
            f"        proxy_send_timeout {cfg.mirror_timeout_s}s;",
            "        proxy_pass http://gate_canary$request_uri;",
            "    }",
        ]
    server.append("}")
    return "\n".join(lines + server)


def parse_state(conf_text: str) -> RouteState | None:
    """The weight and mirror share recorded in a config gate wrote, or None when it is not gate's."""
    for line in conf_text.splitlines()[:20]:
        if line.startswith(STATE_MARK):
            try:
                data = json.loads(line[len(STATE_MARK) :])
                return RouteState(
                    weights.check_percent(int(data["canary_weight"])),
                    weights.check_percent(int(data["mirror_percent"]), "mirror percentage"),
                )
            except (ValueError, KeyError, TypeError):
                return None
    return None


class NginxRouter:
    """A router that is a real nginx process owned by gate (weights + mirror on loopback)."""

    def __init__(
        self,
        prefix: Path | str,
        listen_port: int,
        stable_url: str,
        canary_url: str,
        *,
        shadow_header: str = "X-Traffic-Source",
        listen_host: str = "127.0.0.1",
    ) -> None:
        self.config = NginxRouteConfig(
            listen_port=listen_port,
            stable=Upstream.from_url(stable_url, "stable"),
            canary=Upstream.from_url(canary_url, "canary"),
            listen_host=listen_host,
            shadow_header=shadow_header,
        )
        self.server = NginxServer(Path(prefix))
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """Where production traffic enters."""
        return f"http://{self.config.listen_host}:{self.config.listen_port}"

    @property
    def access_log(self) -> Path:
        return self.server.prefix / "logs" / "access.log"

    def describe(self) -> str:
        c = self.config
        return f"nginx on {self.url}: {c.stable.address} -> {c.canary.address}"

    def _recorded(self) -> RouteState | None:
        try:
            return parse_state(self.server.conf_path.read_text())
        except OSError:
            return None

    def _apply(self, weight: int, mirror: int) -> RouteState:
        conf = main_config(render(self.config, weight, mirror))
        try:
            self.server.apply(conf)
        except NginxError as exc:
            if "rejected" in str(exc):
                raise RouterMisconfigured(f"{self.describe()}: {exc}") from exc
            raise RouterUnavailable(f"{self.describe()}: {exc}") from exc
        return RouteState(weight, mirror)

    def start(self) -> RouteState:
        """Start nginx with the state recorded in its prefix (after a restart), or all to stable."""
        with self._lock:
            state = self._recorded() or RouteState(0, 0)
            if self.server.running():
                return state
            return self._apply(state.canary_weight, state.mirror_percent)

    def stop(self) -> None:
        """Stop nginx (production traffic through it stops too); its config stays in the prefix."""
        with self._lock:
            self.server.stop()

    def set_weight(self, canary_percent: int) -> RouteState:
        weights.check_percent(canary_percent)
        with self._lock:
            mirror = (self._recorded() or RouteState(0, 0)).mirror_percent
            return self._apply(canary_percent, mirror)

    def set_mirror(self, percent: int) -> RouteState:
        weights.check_percent(percent, "mirror percentage")
        with self._lock:
            weight = (self._recorded() or RouteState(0, 0)).canary_weight
            return self._apply(weight, percent)

    def read(self) -> RouteState:
        with self._lock:
            if not self.server.running():
                raise RouterUnavailable(f"{self.describe()}: nginx is not running")
            state = self._recorded()
        if state is None:
            raise RouterMisconfigured(f"{self.describe()}: the config in effect was not written by gate")
        return state

    def remove(self) -> None:
        """All traffic to stable, no mirror; nginx keeps running, since production flows through it."""
        with self._lock:
            self._apply(0, 0)

    def finish(self, outcome: Outcome) -> Finish:
        """No mirror; promoted: all traffic to the canary, rolled_back: all to stable. gate owns the
        whole config, so there is nothing else to clean; an unchanged config is not reloaded."""
        weight = 100 if outcome == "promoted" else 0
        with self._lock:
            if self._recorded() == RouteState(weight, 0) and self.server.running():
                return Finish(True, RouteState(weight, 0))
            return Finish(True, self._apply(weight, 0))
