"""The fault proxy: a real nginx with the Lua module in front of a dependency or the canary.

Each route listens on its own loopback port and proxies to one upstream; the faults of every route
live in a ``lua_shared_dict`` and are changed through an admin server on a separate loopback port,
so injecting or clearing a fault needs no reload and takes effect on the next request:

    PUT /faults/{target}     {"delay_ms": 800, "delay_percent": 100, "abort_status": 503, "abort_percent": 15}
    DELETE /faults/{target}  (idempotent)
    GET /faults              {"targets": {"risk-api": {...} | null}}

A delayed request sleeps with ``ngx.sleep`` before it is proxied; an aborted one ends with
``ngx.exit(status)`` and never reaches the upstream. Each is drawn independently per request with its
percentage (like Istio's HTTPFaultInjection). Faulted responses carry ``X-Gate-Fault: delay|abort``
so a reader of a trace can tell an injected fault from a real one.

Faults live in nginx's memory: a stopped proxy holds none. Knows nothing about Chaos Toolkit or the
ledger; the actions in ``gate.drivers.chaos.actions`` drive it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from gate.drivers.nginx import NginxServer, main_config

TARGET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_DELAY_MS = 300_000  # five minutes: longer than any sane proxy timeout, still bounded
MAX_ROUTES = 32


class FaultProxyError(ValueError):
    """A route or upstream the fault proxy cannot serve; the message says which and why."""


@dataclass(frozen=True)
class ProxyRoute:
    """One faultable path: requests to ``listen_port`` go to ``upstream_url`` through ``target``'s faults."""

    target: str
    listen_port: int
    upstream_url: str


def _check_route(route: ProxyRoute) -> None:
    if not TARGET_RE.match(route.target):
        raise FaultProxyError(
            f"fault target {route.target!r}: use 1-64 letters, digits, '.', '_' or '-', starting alphanumeric"
        )
    if not 0 < route.listen_port < 65536:
        raise FaultProxyError(f"fault target {route.target!r}: listen port {route.listen_port} is not a port")
    parts = urlsplit(route.upstream_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FaultProxyError(
            f"fault target {route.target!r}: upstream {route.upstream_url!r} "
            "must be an http(s) URL with a host"
        )
    # The URL goes into nginx.conf: refuse anything that could end the directive or open a block.
    if re.search(r"[\s;{}'\"\\$#]", route.upstream_url):
        raise FaultProxyError(
            f"fault target {route.target!r}: upstream URL contains characters nginx would parse"
        )


# Faults are packed into one shared-dict value per target ("delay_ms,delay_pct,abort_status,abort_pct")
# so a request never sees half of an update.
_ACCESS_LUA = r"""
        access_by_lua_block {
            local v = ngx.shared.gate_faults:get("%(target)s")
            if not v then return end
            local delay_ms, delay_pct, status, abort_pct =
                string.match(v, "^([%%d.]+),([%%d.]+),(%%d+),([%%d.]+)$")
            if not delay_ms then return end
            delay_ms = tonumber(delay_ms); delay_pct = tonumber(delay_pct)
            status = tonumber(status); abort_pct = tonumber(abort_pct)
            if delay_ms > 0 and math.random() * 100 < delay_pct then
                ngx.ctx.gate_fault = "delay"
                ngx.sleep(delay_ms / 1000)
            end
            if status > 0 and math.random() * 100 < abort_pct then
                ngx.ctx.gate_fault = "abort"
                return ngx.exit(status)
            end
        }
        header_filter_by_lua_block {
            if ngx.ctx.gate_fault then ngx.header["X-Gate-Fault"] = ngx.ctx.gate_fault end
        }
"""

# The admin API. No JSON library ships with Debian's nginx Lua module, and the body is a flat object of
# four numbers, so it is parsed strictly by hand: anything else is a 400 that says what was wrong.
_ADMIN_LUA = r"""
        content_by_lua_block {
            local dict = ngx.shared.gate_faults
            local known = { %(known)s }
            local limits = {
                delay_ms = {0, %(max_delay)d}, delay_percent = {0, 100},
                abort_status = {0, 599}, abort_percent = {0, 100},
            }
            local function reply(status, body)
                ngx.status = status
                ngx.header["Content-Type"] = "application/json"
                ngx.say(body)
                return ngx.exit(status)
            end
            local function fault_json(v)
                if not v then return "null" end
                local d, dp, s, ap = string.match(v, "^([%%d.]+),([%%d.]+),(%%d+),([%%d.]+)$")
                return string.format('{"delay_ms":%%s,"delay_percent":%%s,' ..
                    '"abort_status":%%s,"abort_percent":%%s}', d, dp, s, ap)
            end
            local uri = ngx.var.uri
            local method = ngx.req.get_method()
            if uri == "/faults" or uri == "/faults/" then
                if method ~= "GET" then return reply(405, '{"error":"use GET /faults"}') end
                local parts = {}
                for name, _ in pairs(known) do
                    parts[#parts + 1] = string.format('"%%s":%%s', name, fault_json(dict:get(name)))
                end
                table.sort(parts)
                return reply(200, '{"targets":{' .. table.concat(parts, ",") .. '}}')
            end
            local target = string.match(uri, "^/faults/([A-Za-z0-9_.-]+)$")
            if not target or not known[target] then
                return reply(404, '{"error":"unknown fault target; GET /faults lists them"}')
            end
            if method == "DELETE" then
                dict:delete(target)
                return reply(200, '{"target":"' .. target .. '","fault":null}')
            end
            if method ~= "PUT" then return reply(405, '{"error":"use PUT or DELETE /faults/{target}"}') end
            ngx.req.read_body()
            local body = ngx.req.get_body_data()
            if not body or #body > 1024 then
                return reply(400, '{"error":"body must be a JSON object of at most 1 KiB"}')
            end
            local inner = string.match(body, "^%%s*{(.*)}%%s*$")
            if not inner then return reply(400, '{"error":"body must be a JSON object"}') end
            local values = { delay_ms = 0, delay_percent = 100, abort_status = 0, abort_percent = 0 }
            local seen = 0
            if string.match(inner, "%%S") then
                for item in string.gmatch(inner .. ",", "([^,]*),") do
                    local key, num = string.match(item, '^%%s*"([a-z_]+)"%%s*:%%s*(-?[%%d.]+)%%s*$')
                    if not key then
                        return reply(400, '{"error":"each field must be \\"name\\": number"}')
                    end
                    local lim = limits[key]
                    if not lim then return reply(400, '{"error":"unknown field ' .. key .. '"}') end
                    local n = tonumber(num)
                    if not n or n < lim[1] or n > lim[2] then
                        return reply(400, string.format(
                            '{"error":"%%s must be between %%d and %%d"}', key, lim[1], lim[2]))
                    end
                    values[key] = n
                    seen = seen + 1
                end
            end
            if values.abort_percent > 0 and values.abort_status == 0 then
                return reply(400, '{"error":"abort_percent needs abort_status"}')
            end
            if values.abort_status ~= 0 and values.abort_status < 400 then
                return reply(400, '{"error":"abort_status must be 0 (no abort) or between 400 and 599"}')
            end
            if values.abort_status ~= math.floor(values.abort_status) then
                return reply(400, '{"error":"abort_status must be an integer"}')
            end
            local packed = string.format("%%.3f,%%.4f,%%d,%%.4f", values.delay_ms, values.delay_percent,
                values.abort_status, values.abort_percent)
            local ok, err = dict:set(target, packed)
            if not ok then return reply(500, '{"error":"shared dict: ' .. tostring(err) .. '"}') end
            return reply(200, '{"target":"' .. target .. '","fault":' .. fault_json(packed) .. '}')
        }
"""


class FaultProxy:
    """nginx + Lua in front of one or more upstreams, with a loopback admin API for faults.

    ``FaultProxy(prefix, listen_port, upstream_url, admin_port, target="upstream")`` serves one route;
    ``add_route`` adds more (a running proxy is reloaded). ``workers`` nginx processes share the faults.
    """

    def __init__(
        self,
        prefix: Path,
        listen_port: int,
        upstream_url: str,
        admin_port: int,
        target: str = "upstream",
        *,
        workers: int = 1,
    ) -> None:
        if not 1 <= workers <= 64:
            raise FaultProxyError(f"a fault proxy runs 1-64 nginx workers, not {workers}")
        self.prefix = Path(prefix)
        self.admin_port = admin_port
        self.workers = workers
        self.routes: list[ProxyRoute] = []
        self.server = NginxServer(self.prefix)
        self.add_route(target, listen_port, upstream_url)

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def url(self, target: str | None = None) -> str:
        """The address clients use instead of the upstream's (the first route when no target is named)."""
        route = self.route(target)
        return f"http://127.0.0.1:{route.listen_port}"

    def route(self, target: str | None = None) -> ProxyRoute:
        if target is None:
            return self.routes[0]
        for route in self.routes:
            if route.target == target:
                return route
        raise FaultProxyError(
            f"the fault proxy has no target {target!r}; it has {[r.target for r in self.routes]}"
        )

    def add_route(self, target: str, listen_port: int, upstream_url: str) -> None:
        route = ProxyRoute(target, listen_port, upstream_url.rstrip("/"))
        _check_route(route)
        if any(r.target == target for r in self.routes):
            raise FaultProxyError(f"fault target {target!r} is declared twice")
        if len(self.routes) >= MAX_ROUTES:
            raise FaultProxyError(f"a fault proxy serves at most {MAX_ROUTES} targets")
        self.routes.append(route)
        if self.server.running():
            self.server.apply(self.config())

    def config(self) -> str:
        """The complete nginx.conf for the current routes."""
        servers: list[str] = [
            "  lua_shared_dict gate_faults 1m;",
            # Each worker needs its own seed, or all workers draw the same "random" sequence.
            "  init_worker_by_lua_block { math.randomseed(ngx.now() * 1000 + ngx.worker.pid()) }",
        ]
        for route in self.routes:
            servers.append(
                f"""  server {{
    listen 127.0.0.1:{route.listen_port};
    location / {{
{_ACCESS_LUA % {"target": route.target}}
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $proxy_host;
        proxy_pass {route.upstream_url};
    }}
  }}"""
            )
        known = ", ".join(f'["{r.target}"] = true' for r in self.routes)
        servers.append(
            f"""  server {{
    listen 127.0.0.1:{self.admin_port};
    client_max_body_size 4k;
    client_body_buffer_size 4k;
    location /faults {{
{_ADMIN_LUA % {"known": known, "max_delay": MAX_DELAY_MS}}
    }}
    location / {{ return 404; }}
  }}"""
        )
        # Faults sit in a shared dict, so every worker sees the same ones; each draws its own randoms.
        return main_config("\n".join(servers), lua=True, worker_processes=self.workers)

    def start(self) -> None:
        """Check the config with ``nginx -t`` and start (or reload) the proxy."""
        self.server.apply(self.config())

    def stop(self) -> None:
        self.server.stop()

    def running(self) -> bool:
        return self.server.running()

    def pid(self) -> int | None:
        return self.server.pid()

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
