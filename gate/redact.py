"""Keeping secrets out of what gate prints and stores: URL credentials, tokens in headers.

`redact_url("http://user:pw@prom:9090/x")` -> `"http://***@prom:9090/x"`; `redact_text` does the same
for every URL inside a longer text (an error message, a contract, a report). Used wherever a URL or an
outside error reaches a message, a log line, a report or a run-store record.

A leaf module: it imports nothing of gate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"

# scheme://userinfo@ — userinfo is anything up to the last @ before the host part ends.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s\"'<>]*)@")
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token"})


def redact_url(url: str) -> str:
    """`url` with its user and password (if any) replaced by `***`."""
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", url)


def redact_text(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by `***`."""
    if "@" not in text:
        return text
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """The URL without credentials, and (user, password) when it had them (percent-decoded)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port is not None else "")
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return bare, (unquote(parts.username or ""), unquote(parts.password or ""))


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers for display: the values of credential-bearing ones replaced by `***`."""
    return {k: (MASK if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()}
