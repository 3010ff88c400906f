"""Who is asking, and may they act: bearer tokens, a trusted proxy's header, signed sessions, and in a
cluster Kubernetes TokenReview + SubjectAccessReview (``gate.dashboard.kubeauth``).

Tokens are compared in constant time and never logged or echoed; a session cookie carries the
reviewer's name (signed, not the token). Forms (cookie or proxy identity, which a browser sends by
itself) need a CSRF token bound to that identity; a request carrying its own ``Authorization``
header does not (a browser never adds one to a cross-site request).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from itsdangerous import BadSignature, URLSafeTimedSerializer

log = logging.getLogger(__name__)

SESSION_COOKIE = "gate_session"
SESSION_MAX_AGE = 8 * 3600
MAX_TOKEN_LENGTH = 4096
MAX_TOKENS_FILE = 1024 * 1024

Via = Literal["token", "proxy", "session", "kubernetes"]


@dataclass(frozen=True)
class Identity:
    """A reviewer: a name, how they were recognised, and (from Kubernetes) their groups."""

    name: str
    via: Via
    groups: tuple[str, ...] = ()
    # Actions by a Kubernetes user are authorised per gate with a SubjectAccessReview.
    kube: bool = False
    # Whether the request authenticated itself (an Authorization header): no CSRF token needed.
    explicit: bool = False
    session_id: str = ""


class AccessReviewer(Protocol):
    """TokenReview + SubjectAccessReview against the API server (``kubeauth.KubeReviewer``)."""

    def authenticate(self, token: str) -> Identity | None: ...

    def may_patch(self, identity: Identity, namespace: str, name: str) -> bool: ...


class AuthError(Exception):
    """Credentials missing (401) or not enough (403); the message says what to do, never the token."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class TokenFile:
    """Bearer tokens from a file of ``TOKEN NAME`` lines (``#`` comments); re-read when it changes,
    so a rotated Kubernetes Secret mounted as a file takes effect without a restart."""

    path: Path
    _digests: dict[bytes, str] = field(default_factory=dict)
    _mtime: float = -1.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _load(self) -> None:
        try:
            st = self.path.stat()
        except OSError:
            if self._mtime != -2.0:
                log.warning("dashboard tokens file %s cannot be read: no token is accepted", self.path)
            self._digests, self._mtime = {}, -2.0
            return
        if st.st_mtime == self._mtime:
            return
        if st.st_size > MAX_TOKENS_FILE:
            log.warning("dashboard tokens file %s is larger than 1 MiB: ignored", self.path)
            self._digests, self._mtime = {}, st.st_mtime
            return
        digests: dict[bytes, str] = {}
        for lineno, raw in enumerate(self.path.read_text(errors="replace").splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 1)
            if len(parts) != 2 or len(parts[0]) < 16:
                # Never print the line: it holds a secret.
                log.warning(
                    "%s:%d: expected `TOKEN NAME` with a token of 16+ characters; line ignored",
                    self.path,
                    lineno,
                )
                continue
            digests[_digest(parts[0])] = parts[1].strip()[:253]
        self._digests, self._mtime = digests, st.st_mtime

    def lookup(self, token: str) -> str | None:
        """The reviewer's name for ``token``, or None."""
        with self._lock:
            self._load()
            wanted = _digest(token)
            found = None
            for digest, name in self._digests.items():
                if hmac.compare_digest(digest, wanted):
                    found = name
            return found


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "replace")).digest()


class Authenticator:
    """Recognises reviewers from a request's headers and cookies; signs sessions and CSRF tokens."""

    def __init__(
        self,
        *,
        secret: str,
        tokens: TokenFile | None = None,
        proxy_header: str = "",
        reviewer: AccessReviewer | None = None,
    ) -> None:
        self._secret = secret.encode()
        self._sessions = URLSafeTimedSerializer(secret, salt="gate-dashboard-session")
        self.tokens = tokens
        self.proxy_header = proxy_header.strip().lower()
        self.reviewer = reviewer

    @property
    def can_log_in(self) -> bool:
        return self.tokens is not None or self.reviewer is not None

    def identify(self, headers: dict[str, str], cookies: dict[str, str]) -> Identity | None:
        """The reviewer a request comes from, or None (anonymous). Bad credentials raise 401."""
        auth = headers.get("authorization", "")
        if auth:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthError(401, "Authorization must be `Bearer TOKEN`")
            ident = self.from_token(token.strip())
            if ident is None:
                raise AuthError(401, "the bearer token is not accepted")
            return Identity(ident.name, ident.via, ident.groups, ident.kube, explicit=True)
        if self.proxy_header:
            user = headers.get(self.proxy_header, "").strip()
            if user:
                return Identity(user[:253], "proxy", session_id="proxy:" + user[:253])
        cookie = cookies.get(SESSION_COOKIE)
        if cookie:
            return self.from_session(cookie)
        return None

    def from_token(self, token: str) -> Identity | None:
        if len(token) > MAX_TOKEN_LENGTH:
            return None
        if self.tokens is not None:
            name = self.tokens.lookup(token)
            if name is not None:
                return Identity(name, "token")
        if self.reviewer is not None:
            return self.reviewer.authenticate(token)
        return None

    # -------------------------------------------------------------------------------- sessions

    def session_cookie(self, ident: Identity) -> str:
        sid = hashlib.sha256(f"{ident.name}:{time.time_ns()}".encode()).hexdigest()[:32]
        return self._sessions.dumps(
            {"n": ident.name, "v": ident.via, "g": list(ident.groups), "k": ident.kube, "s": sid}
        )

    def from_session(self, cookie: str) -> Identity | None:
        if len(cookie) > 8192:
            return None
        try:
            data = self._sessions.loads(cookie, max_age=SESSION_MAX_AGE)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("n"), str):
            return None
        groups = tuple(str(g) for g in data.get("g", []) if isinstance(g, str))
        return Identity(data["n"], "session", groups, bool(data.get("k")), session_id=str(data.get("s", "")))

    # ------------------------------------------------------------------------------------ CSRF

    def csrf_token(self, ident: Identity | None) -> str:
        """A token bound to the identity's session (empty for anonymous visitors: they cannot act)."""
        if ident is None or not ident.session_id:
            return ""
        return hmac.new(self._secret, b"csrf:" + ident.session_id.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, ident: Identity, token: str | None) -> None:
        if ident.explicit:
            return
        wanted = self.csrf_token(ident)
        if not wanted or not token or not hmac.compare_digest(wanted, token[:128]):
            raise AuthError(403, "missing or wrong CSRF token: reload the page and submit the form again")

    # ------------------------------------------------------------------------------ authorising

    def authorise(self, ident: Identity, namespace: str, name: str) -> None:
        """May the reviewer act on the gate ``namespace/name`` (RBAC ``patch`` for Kubernetes users)."""
        if not ident.kube:
            return  # a token from the reviewers' file, or the trusted proxy: reviewers by configuration
        if self.reviewer is None:
            raise AuthError(403, "Kubernetes users need the dashboard's Kubernetes authorisation turned on")
        if not self.reviewer.may_patch(ident, namespace, name):
            raise AuthError(
                403,
                f"{ident.name} may not patch performancegates/{name} in namespace {namespace}: "
                "ask for an RBAC role granting `patch` on it",
            )
