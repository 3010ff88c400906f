"""The JSON API, ``/api/v1``: everything the pages show, the live stream, and the actions.

Responses are the dictionaries of ``gate.dashboard.views`` (the pages render the same ones).
Inputs are bounded: ids match a pattern of at most 64 characters, pages at most 200 rows, reasons
at most 500 characters; anything else is a 4xx with what was wrong.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, HTTPException, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from gate.dashboard import actions, views
from gate.dashboard.auth import AuthError, Identity
from gate.dashboard.deps import Context, ContextDep, IdentityDep, ReaderDep, run_or_404

RUN_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$"
RunId = Annotated[str, Path(pattern=RUN_ID, max_length=64, description="A run's id.")]
Outcome = Literal["running", "held", "promoted", "rolled_back", "failed"]

router = APIRouter(prefix="/api/v1", tags=["runs"])


class RunRow(BaseModel):
    id: str
    contract: str
    service: str
    status: str
    phase: str
    step: int
    steps: int
    weight: int
    reason: str
    created_at: float
    updated_at: float
    finished_at: float | None
    age: str
    last_decision: str | None


class RunsPage(BaseModel):
    data: list[RunRow]
    count: int
    count_exact: bool
    offset: int
    limit: int


class ActionRequest(BaseModel):
    reason: str = Field(
        default="", max_length=actions.MAX_REASON, description="Why (shown in the audit log)."
    )


class ActionResponse(BaseModel):
    run_id: str
    action: str
    request_id: int
    actor: str
    at: float
    message: str


class WhoAmI(BaseModel):
    name: str | None
    via: str | None
    csrf: str


def list_page(
    ctx: Context,
    *,
    limit: int,
    offset: int,
    status: str | None = None,
    contract: str | None = None,
    namespace: str | None = None,
) -> RunsPage:
    page = ctx.reader.runs(limit=limit, offset=offset, status=status, contract=contract, namespace=namespace)
    rows = []
    for r in page.runs:
        row = views.run_row(r)
        row["last_decision"] = views.last_decision(r)
        rows.append(RunRow(**row))
    return RunsPage(data=rows, count=page.total, count_exact=page.total_exact, offset=offset, limit=limit)


@router.get("/runs", response_model=RunsPage, summary="Runs, newest first, filtered and paged")
def list_runs(
    ctx: ContextDep,
    _who: ReaderDep,
    *,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    status: Annotated[Outcome | None, Query(description="Outcome filter.")] = None,
    contract: Annotated[str | None, Query(pattern=NAME, max_length=253)] = None,
    namespace: Annotated[str | None, Query(pattern=NAME, max_length=63)] = None,
) -> RunsPage:
    return list_page(ctx, limit=limit, offset=offset, status=status, contract=contract, namespace=namespace)


@router.get("/runs/{run_id}", summary="One run: steps, chaos, load, objectives, verdicts, audit")
def get_run(ctx: ContextDep, _who: ReaderDep, run_id: RunId) -> dict[str, Any]:
    return run_or_404(ctx, run_id)[1]


@router.get("/runs/{run_id}/looks", summary="A run's looks after a given one (oldest first)")
def get_looks(
    ctx: ContextDep,
    _who: ReaderDep,
    run_id: RunId,
    after: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    _, view = run_or_404(ctx, run_id)
    rows = [views.look_row(lk) for lk in ctx.reader.looks(run_id, after=after, limit=limit)]
    return {"data": rows, "after": after, "total": view["looks_total"]}


@router.get("/runs/{run_id}/audit", summary="Who did what to the run, when and why")
def get_audit(ctx: ContextDep, _who: ReaderDep, run_id: RunId) -> dict[str, Any]:
    return {"data": run_or_404(ctx, run_id)[1]["audit"]}


@router.get(
    "/runs/{run_id}/diagnostics/{diagnostic_id}",
    summary="Download a captured diagnostic",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def get_diagnostic(
    ctx: ContextDep,
    _who: ReaderDep,
    run_id: RunId,
    diagnostic_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
) -> Response:
    detail, _ = run_or_404(ctx, run_id)
    meta = next((d for d in detail.diagnostics if d.id == diagnostic_id), None)
    data = ctx.reader.diagnostic(run_id, diagnostic_id)
    if meta is None or data is None:
        raise HTTPException(404, "no such diagnostic")
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in meta.name)[:100] or "diagnostic"
    return Response(
        content=data,
        media_type="application/octet-stream",  # never rendered by the browser, whatever was captured
        headers={"Content-Disposition": f'attachment; filename="{run_id}-{safe}"'},
    )


@router.get("/contracts/{name}/runs", response_model=RunsPage, summary="The history of one contract's runs")
def contract_history(
    ctx: ContextDep,
    _who: ReaderDep,
    name: Annotated[str, Path(pattern=NAME, max_length=253)],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> RunsPage:
    return list_page(ctx, limit=limit, offset=offset, contract=name)


@router.get("/compare", summary="Two runs' objectives side by side")
def compare_runs(
    ctx: ContextDep,
    _who: ReaderDep,
    a: Annotated[str, Query(pattern=RUN_ID, max_length=64)],
    b: Annotated[str, Query(pattern=RUN_ID, max_length=64)],
) -> dict[str, Any]:
    va = run_or_404(ctx, a)[1]
    vb = run_or_404(ctx, b)[1]
    return {"a": va["run"], "b": vb["run"], "objectives": views.compare(va, vb)}


@router.get("/whoami", response_model=WhoAmI, summary="The reviewer the request comes from, and a CSRF token")
def whoami(ctx: ContextDep, who: IdentityDep) -> WhoAmI:
    return WhoAmI(
        name=None if who is None else who.name,
        via=None if who is None else who.via,
        csrf=ctx.auth.csrf_token(who),
    )


@router.post(
    "/runs/{run_id}/actions/{action}",
    response_model=ActionResponse,
    status_code=202,
    summary="Approve, abort or retry a run (queued for its engine; audited)",
    responses={401: {"description": "no credentials"}, 403: {"description": "not allowed, or CSRF"}},
)
def post_action(
    ctx: ContextDep,
    who: IdentityDep,
    *,
    run_id: RunId,
    action: Annotated[Literal["approve", "abort", "retry"], Path()],
    body: Annotated[ActionRequest | None, Body()] = None,
    x_csrf_token: Annotated[str | None, Header(max_length=128)] = None,
) -> ActionResponse:
    return ActionResponse(
        **perform(
            ctx,
            who,
            run_id=run_id,
            action=action,
            reason=body.reason if body else "",
            csrf=x_csrf_token,
            origin="api",
        )
    )


def perform(
    ctx: Context,
    who: Identity | None,
    *,
    run_id: str,
    action: str,
    reason: str,
    csrf: str | None,
    origin: str,
) -> dict[str, Any]:
    """Shared by the API and the pages' forms: identity, CSRF, authorisation, the inbox, the audit."""
    if who is None:
        ctx.metrics.actions.labels(action, "refused").inc()
        raise HTTPException(
            401, "sign in (bearer token, proxy or Kubernetes) to act", headers={"WWW-Authenticate": "Bearer"}
        )
    try:
        ctx.auth.check_csrf(who, csrf)
        result = actions.act(
            ctx.reader,
            ctx.auth,
            who,
            run_id=run_id,
            action=action,
            reason=reason,
            origin=origin,
            default_namespace=ctx.settings.dashboard_kube_namespace,
        )
    except AuthError as exc:
        ctx.metrics.actions.labels(action, "refused").inc()
        raise HTTPException(exc.status, exc.message) from None
    except actions.ActionError as exc:
        ctx.metrics.actions.labels(action, "invalid").inc()
        raise HTTPException(exc.status, exc.message) from None
    ctx.metrics.actions.labels(action, "accepted").inc()
    return dict(result.__dict__)


# ---------------------------------------------------------------------------------- live stream


def live_payload(view: dict[str, Any]) -> dict[str, Any]:
    """What a run page needs to update itself without a reload."""
    keys = (
        "run",
        "steps",
        "chaos",
        "objectives",
        "looks",
        "looks_total",
        "audit",
        "load",
        "representativeness",
    )
    return {k: view[k] for k in keys}


@router.get(
    "/runs/{run_id}/events",
    summary="Server-sent events: the run's view each time it changes (`run` events)",
    response_class=Response,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def run_events(request: Request, ctx: ContextDep, _who: ReaderDep, run_id: RunId) -> Response:
    first = await run_in_threadpool(ctx.cache.get, ctx.reader, run_id)
    if first is None:
        raise HTTPException(404, "no such run")
    interval = ctx.settings.dashboard_poll_interval

    async def stream() -> AsyncIterator[dict[str, Any]]:
        ctx.metrics.streams.inc()
        try:
            last = None
            while not await request.is_disconnected():
                found = await run_in_threadpool(ctx.cache.get, ctx.reader, run_id)
                if found is None:
                    return
                view = found[1]
                marker = (
                    view["run"]["updated_at"],
                    view["looks_total"],
                    len(view["audit"]),
                    view["run"]["status"],
                )
                if marker != last:
                    last = marker
                    yield {"event": "run", "data": json.dumps(live_payload(view), default=str), "retry": 5000}
                await asyncio.sleep(interval if view["run"]["phase"] != "finished" else interval * 5)
        finally:
            ctx.metrics.streams.dec()

    return EventSourceResponse(stream(), ping=15)
