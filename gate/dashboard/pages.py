"""Server-rendered pages (Jinja2, autoescaped): readable without JavaScript; with it, charts are
drawn from the JSON API and the run page follows the live stream."""

from __future__ import annotations

import time
from pathlib import Path as FsPath
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from gate.dashboard import api, views
from gate.dashboard.auth import SESSION_COOKIE, SESSION_MAX_AGE
from gate.dashboard.deps import ContextDep, IdentityDep, ReaderDep, run_or_404

TEMPLATES = FsPath(__file__).parent / "templates"

router = APIRouter(include_in_schema=False)

env = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=select_autoescape(enabled_extensions=("html",), default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + " UTC"


def _clock(ts: Any, base: Any = None) -> str:
    if not isinstance(ts, int | float):
        return "—"
    if isinstance(base, int | float):
        return f"+{ts - base:.0f}s"
    return time.strftime("%H:%M:%S", time.gmtime(ts))


def _num(x: Any) -> str:
    if not isinstance(x, int | float) or isinstance(x, bool):
        return "—" if x is None else str(x)
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.4g}"


env.filters["when"] = _when
env.filters["clock"] = _clock
env.filters["num"] = _num
env.globals["sources"] = views.SOURCES
env.globals["outcomes"] = views.OUTCOMES


def render(
    request: Request, template: str, ctx: Any, who: Any, status: int = 200, **data: Any
) -> HTMLResponse:
    html = env.get_template(template).render(
        request=request,
        who=who,
        csrf=ctx.auth.csrf_token(who),
        can_log_in=ctx.auth.can_log_in,
        path=request.url.path,
        **data,
    )
    return HTMLResponse(html, status_code=status)


def _pager(base: str, params: dict[str, Any], offset: int, limit: int, total: int) -> dict[str, str | None]:
    keep = {k: v for k, v in params.items() if v}

    def link(off: int) -> str:
        return base + "?" + urlencode({**keep, "offset": off, "limit": limit})

    return {
        "prev": link(max(0, offset - limit)) if offset > 0 else None,
        "next": link(offset + limit) if offset + limit < total else None,
    }


@router.get("/", response_class=HTMLResponse)
def runs_page(
    request: Request,
    ctx: ContextDep,
    who: ReaderDep,
    *,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    status: Annotated[api.Outcome | None, Query()] = None,
    contract: Annotated[str | None, Query(pattern=api.NAME + "|^$", max_length=253)] = None,
    namespace: Annotated[str | None, Query(pattern=api.NAME + "|^$", max_length=63)] = None,
) -> HTMLResponse:
    page = api.list_page(
        ctx, limit=limit, offset=offset, status=status, contract=contract or None, namespace=namespace or None
    )
    params = {"status": status, "contract": contract, "namespace": namespace}
    return render(
        request,
        "runs.html",
        ctx,
        who,
        page=page,
        params=params,
        pager=_pager("/", params, offset, limit, page.count),
        title="Runs",
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, ctx: ContextDep, who: ReaderDep, run_id: api.RunId) -> HTMLResponse:
    _, view = run_or_404(ctx, run_id)
    grouped: dict[str, dict[str, Any]] = {}
    for o in view["objectives"]:
        grouped.setdefault(o["objective"], {})[o["source"]] = o
    return render(request, "run.html", ctx, who, view=view, grouped=grouped, title=f"Run {view['run']['id']}")


@router.get("/contracts/{name}", response_class=HTMLResponse)
def contract_page(
    request: Request,
    ctx: ContextDep,
    who: ReaderDep,
    *,
    name: Annotated[str, Path(pattern=api.NAME, max_length=253)],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> HTMLResponse:
    page = api.list_page(ctx, limit=limit, offset=offset, contract=name)
    counts: dict[str, int] = {}
    for r in page.data:
        counts[r.status] = counts.get(r.status, 0) + 1
    return render(
        request,
        "contract.html",
        ctx,
        who,
        contract=name,
        page=page,
        counts=counts,
        pager=_pager(f"/contracts/{name}", {}, offset, limit, page.count),
        title=f"Contract {name}",
    )


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    ctx: ContextDep,
    who: ReaderDep,
    a: Annotated[str | None, Query(pattern=api.RUN_ID + "|^$", max_length=64)] = None,
    b: Annotated[str | None, Query(pattern=api.RUN_ID + "|^$", max_length=64)] = None,
) -> HTMLResponse:
    result = None
    if a and b:
        result = api.compare_runs(ctx, who, a, b)
    return render(
        request, "compare.html", ctx, who, a=a or "", b=b or "", result=result, title="Compare runs"
    )


@router.post("/runs/{run_id}/actions/{action}")
def action_form(
    request: Request,
    ctx: ContextDep,
    who: IdentityDep,
    *,
    run_id: api.RunId,
    action: Annotated[str, Path(pattern=r"^(approve|abort|retry)$")],
    reason: Annotated[str, Form(max_length=500)] = "",
    csrf: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    try:
        api.perform(ctx, who, run_id=run_id, action=action, reason=reason, csrf=csrf, origin="form")
    except HTTPException as exc:
        return render(
            request,
            "error.html",
            ctx,
            who,
            status=exc.status_code,
            message=exc.detail,
            title="Not done",
            back=f"/runs/{run_id}",
        )
    return RedirectResponse(f"/runs/{run_id}#audit", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, ctx: ContextDep, who: IdentityDep) -> HTMLResponse:
    return render(request, "login.html", ctx, who, title="Sign in", failed=False)


@router.post("/login")
def login(request: Request, ctx: ContextDep, token: Annotated[str, Form(max_length=4096)] = "") -> Response:
    ident = ctx.auth.from_token(token.strip()) if token.strip() else None
    if ident is None:
        return render(request, "login.html", ctx, None, status=401, title="Sign in", failed=True)
    resp = RedirectResponse("/", status_code=303)
    resp.set_cookie(
        SESSION_COOKIE,
        ctx.auth.session_cookie(ident),
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return resp


@router.post("/logout")
def logout() -> Response:
    resp = RedirectResponse("/", status_code=303)
    resp.delete_cookie(SESSION_COOKIE)
    return resp
