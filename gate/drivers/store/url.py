"""Store URLs: ``sqlite:///path`` (or a bare path), ``postgresql://user:password@host:port/db``.

``StoreURL.display`` is the only form of a URL that may be printed or stored: the userinfo and any
secret query parameter are replaced by ``***``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from gate.drivers.store.errors import StoreURLInvalid

MAX_URL_LENGTH = 4096
_SECRET_PARAMS = {"password", "passfile", "sslpassword", "sslkey"}
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class StoreURL:
    """A parsed store URL: which back end, what to hand SQLAlchemy, and what may be shown."""

    backend: str  # "sqlite" | "postgresql"
    sqlalchemy_url: str = field(repr=False)  # may contain the password: never print it
    display: str
    path: Path | None = None  # the SQLite file
    secrets: tuple[str, ...] = field(default=(), repr=False)  # strings to scrub from driver messages

    def __str__(self) -> str:
        return self.display

    def scrub(self, text: str, limit: int = 300) -> str:
        """``text`` (e.g. a driver's error message) cut to ``limit`` characters with every secret removed."""
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        text = " ".join(text.split())
        return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_store_url(value: str | Path) -> StoreURL:
    """Parse a store URL or a bare path (which means SQLite)."""
    if isinstance(value, Path):
        return _sqlite(value)
    text = str(value)
    if len(text) > MAX_URL_LENGTH:
        raise StoreURLInvalid(
            f"the store URL is {len(text)} characters long (at most {MAX_URL_LENGTH})",
            hint="give sqlite:///PATH or postgresql://USER@HOST:PORT/DB",
        )
    if "\x00" in text or not text.strip():
        raise StoreURLInvalid(
            "the store URL is empty or contains a NUL byte",
            hint="give sqlite:///PATH or postgresql://USER@HOST:PORT/DB",
        )
    if not _SCHEME.match(text):
        return _sqlite(Path(text))
    scheme = text.split("://", 1)[0].lower()
    if scheme == "sqlite":
        rest = text.split("://", 1)[1]
        if not rest.startswith("/") or rest in ("/", "/:memory:"):
            raise StoreURLInvalid(
                f"{_redact_any(text)}: an SQLite store URL names a file: sqlite:///relative/path or "
                "sqlite:////absolute/path",
                hint="give the file the runs are kept in (it is created when missing)",
            )
        return _sqlite(Path(rest[1:]))
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return _postgresql(text)
    raise StoreURLInvalid(
        f"{_redact_any(text)}: unknown store scheme {scheme[:40]!r}",
        hint="use sqlite:///PATH (embedded, one machine) or postgresql://USER@HOST:PORT/DB (shared)",
    )


def redact(value: str | Path) -> str:
    """A store URL (or anything that looks like a URL) fit to print."""
    try:
        return parse_store_url(value).display
    except StoreURLInvalid:
        return _redact_any(str(value))


def _sqlite(path: Path) -> StoreURL:
    return StoreURL(backend="sqlite", sqlalchemy_url=f"sqlite:///{path}", display=str(path), path=path)


def _postgresql(text: str) -> StoreURL:
    try:
        parts = urlsplit(text)
        _ = parts.port  # a port that is not a number raises here
    except ValueError as exc:
        raise StoreURLInvalid(
            f"{_redact_any(text)}: not a valid PostgreSQL URL ({exc})",
            hint="give postgresql://USER:PASSWORD@HOST:PORT/DB",
        ) from None
    db = parts.path.lstrip("/")
    if not db:
        raise StoreURLInvalid(
            f"{_redact_any(text)}: the PostgreSQL URL names no database",
            hint="give postgresql://USER@HOST:PORT/DB",
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    secrets = [v for k, v in query if k.lower() in _SECRET_PARAMS]
    if parts.password:
        secrets.append(parts.password)
        secrets.append(quote(parts.password, safe=""))
    netloc = parts.netloc.rsplit("@", 1)[-1]
    shown_query = urlencode([(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in query])
    display = urlunsplit(
        ("postgresql", ("***@" if "@" in parts.netloc else "") + netloc, parts.path, shown_query, "")
    )
    internal = urlunsplit(("postgresql+psycopg", parts.netloc, parts.path, parts.query, ""))
    return StoreURL(
        backend="postgresql",
        sqlalchemy_url=internal,
        display=display,
        secrets=tuple(s for s in secrets if s),
    )


def _redact_any(text: str) -> str:
    text = text[:200]
    return re.sub(r"(://)[^/@\s]*@", r"\1***@", text)
