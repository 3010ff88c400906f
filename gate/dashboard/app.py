"""``create_app(settings, store=...)``: the dashboard as one FastAPI application.

Other parts mount their routers on it (``include_integrations(app, router)`` or plainly
``app.include_router``); ``app.state.gate`` holds the store reader and the authenticator.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from gate.compose import open_store
from gate.dashboard import api, pages
from gate.dashboard.auth import Authenticator, TokenFile
from gate.dashboard.deps import Context
from gate.dashboard.reader import StoreReader
from gate.dashboard.settings import DashboardSettings
from gate.dashboard.web import Metrics, Plumbing
from gate.drivers.store import RunStore

STATIC = Path(__file__).parent / "static"


def create_app(
    settings: DashboardSettings | None = None,
    *,
    store: RunStore | None = None,
    reviewer: object | None = None,
) -> FastAPI:
    """The dashboard over ``store`` (opened from ``settings.store`` when not given)."""
    settings = settings or DashboardSettings()
    store = store or open_store(settings.store)
    if reviewer is None and settings.dashboard_kube_auth:
        from gate.dashboard.kubeauth import KubeReviewer

        reviewer = KubeReviewer.connect(
            settings.dashboard_kube_host,
            group=settings.dashboard_kube_group,
            resource=settings.dashboard_kube_resource,
        )
    secret = settings.dashboard_secret.get_secret_value() if settings.dashboard_secret else ""
    auth = Authenticator(
        # Without a configured key, a random one: sessions end when the process does.
        secret=secret or secrets.token_urlsafe(32),
        tokens=TokenFile(settings.dashboard_tokens_file) if settings.dashboard_tokens_file else None,
        proxy_header=settings.dashboard_proxy_header or "",
        reviewer=reviewer,  # type: ignore[arg-type]
    )
    metrics = Metrics()
    app = FastAPI(
        title="gate dashboard",
        version="1",
        summary="What gate saw and decided, and the reviewers' actions.",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.gate = Context(settings=settings, reader=StoreReader(store), auth=auth, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Say what was wrong and where, never echo the input back whole.
        errors = [
            {
                "loc": [str(p) for p in e.get("loc", ())][:6],
                "msg": str(e.get("msg", ""))[:200],
                "type": str(e.get("type", ""))[:60],
            }
            for e in exc.errors()[:10]
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        try:
            store.list_runs(limit=1)
        except Exception as exc:
            return PlainTextResponse(f"store unavailable: {type(exc).__name__}", status_code=503)
        return PlainTextResponse("ok")

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.add_middleware(Plumbing, metrics=metrics)
    return app


def from_environment() -> FastAPI:
    """The app from ``GATE_*`` variables alone (what ``gate dashboard`` serves through uvicorn)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")  # one JSON line per request
    return create_app(DashboardSettings())


def include_integrations(app: FastAPI, router: APIRouter) -> None:
    """Mount another part's endpoints (e.g. Argo Rollouts / Flagger) on the dashboard."""
    app.include_router(router)
