"""What every endpoint needs, as FastAPI dependencies: the store reader, the authenticator, the
reviewer making the request (or none), and the run views (cached per run and transition)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from gate.dashboard import views
from gate.dashboard.auth import Authenticator, AuthError, Identity
from gate.dashboard.reader import StoreReader
from gate.dashboard.settings import DashboardSettings
from gate.dashboard.web import Metrics
from gate.drivers.store import RunDetail, StoreError


@dataclass
class ViewCache:
    """Run views keyed by (run, last transition, audit size): a run that has not moved is not re-read.

    A few dozen runs at most; a reviewer's page and the live stream of the same run share one entry.
    """

    size: int = 32
    _items: OrderedDict[str, tuple[tuple[int, int], RunDetail, dict[str, Any]]] = field(
        default_factory=OrderedDict
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, reader: StoreReader, run_id: str) -> tuple[RunDetail, dict[str, Any]] | None:
        try:
            seq = reader.store.last_seq(run_id)
        except StoreError:
            return None
        audit = reader.audit(run_id)
        key = (seq, len(audit))
        with self._lock:
            hit = self._items.get(run_id)
            if hit is not None and hit[0] == key:
                self._items.move_to_end(run_id)
                return hit[1], hit[2]
        data = reader.run_data(run_id)
        if data is None:
            return None
        detail = data.detail
        view = views.run_view(
            detail,
            audit=[a.__dict__ for a in audit],
            looks_total=data.looks_total,
            step_decisions=data.step_decisions,
            verdict_counts=data.verdict_counts,
        )
        view["run"]["namespace"] = _ns(detail)
        with self._lock:
            self._items[run_id] = (key, detail, view)
            self._items.move_to_end(run_id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return detail, view


def _ns(detail: RunDetail) -> str:
    from gate.dashboard.reader import namespace_of

    return namespace_of(detail)


@dataclass
class Context:
    settings: DashboardSettings
    reader: StoreReader
    auth: Authenticator
    metrics: Metrics
    cache: ViewCache = field(default_factory=ViewCache)


def context(request: Request) -> Context:
    ctx: Context = request.app.state.gate
    return ctx


ContextDep = Annotated[Context, Depends(context)]


def _headers(request: Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


def identity(request: Request, ctx: ContextDep) -> Identity | None:
    """The reviewer, or None. Bad credentials are a 401 (never silently anonymous)."""
    try:
        ident = ctx.auth.identify(_headers(request), dict(request.cookies))
    except AuthError as exc:
        raise HTTPException(exc.status, exc.message, headers={"WWW-Authenticate": "Bearer"}) from None
    if ident is not None:
        request.scope.setdefault("state", {})["user"] = ident.name
    return ident


IdentityDep = Annotated[Identity | None, Depends(identity)]


def reader_allowed(ctx: ContextDep, ident: IdentityDep) -> Identity | None:
    """Read-only views: public, or for known reviewers only, by setting."""
    if not ctx.settings.dashboard_public_read and ident is None:
        raise HTTPException(401, "sign in to read this dashboard", headers={"WWW-Authenticate": "Bearer"})
    return ident


ReaderDep = Annotated[Identity | None, Depends(reader_allowed)]


def run_or_404(ctx: Context, run_id: str) -> tuple[RunDetail, dict[str, Any]]:
    found = ctx.cache.get(ctx.reader, run_id)
    if found is None:
        raise HTTPException(404, "no such run")
    return found
