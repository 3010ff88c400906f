"""The drop-in endpoints as one FastAPI router: Flagger webhooks and Argo Rollouts' web metric.

    POST /integrations/flagger/{hook}   Flagger's CanaryWebhookPayload, as Flagger sends it
    POST /integrations/argo/verdict     {"contract", "namespace", "revision"} (an AnalysisTemplate jsonBody)

Every call is authenticated (the shared token as ``Authorization: Bearer``; Flagger, which cannot send
headers, may put it in the webhook's ``metadata.token``), bounded (body size, field sizes), limited to
the namespaces allowed, and audited. Each answers from the one `gate check` of that revision
(``checks.CheckBook``), waiting a bounded time for it; the tables are in ``answers``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gate.compose.check import CheckOptions
from gate.dashboard.integrations import answers, contracts
from gate.dashboard.integrations.audit import AuditLog
from gate.dashboard.integrations.checks import Check, CheckBook, CheckKey
from gate.dashboard.integrations.settings import IntegrationsSettings

PREFIX = "/integrations"
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
MAX_METADATA = 32
MAX_VALUE = 4096


class FlaggerPayload(BaseModel):
    """Flagger's ``CanaryWebhookPayload`` (pkg/apis/flagger/v1beta1/canary.go); extra keys ignored."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(max_length=253)
    namespace: str = Field(max_length=63)
    phase: str = Field(max_length=64)
    checksum: str = Field(default="", max_length=128)
    metadata: dict[str, Annotated[str, Field(max_length=MAX_VALUE)]] | None = Field(
        default=None, max_length=MAX_METADATA
    )


class ArgoRequest(BaseModel):
    """The ``jsonBody`` of gate's example AnalysisTemplate (its args resolved by Argo Rollouts)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    contract: str = Field(max_length=63)
    namespace: str = Field(max_length=63)
    revision: str = Field(max_length=63, description="The canary's pod-template hash or image tag.")
    wait: float | None = Field(default=None, ge=0, le=3600)


class Integrations:
    """The state the endpoints share: settings, the checks, the audit."""

    def __init__(self, settings: IntegrationsSettings, book: CheckBook | None = None) -> None:
        self.settings = settings
        self.book = book or CheckBook(
            concurrency=settings.concurrency, keep=settings.keep, workdir=settings.workdir
        )
        self.audit = AuditLog(settings.audit_log)
        self.namespaces = re.compile(settings.namespaces)

    # -- edges -------------------------------------------------------------------------------------

    async def body(self, request: Request) -> Any:
        """The JSON body, read up to `max_body` bytes (413 beyond), parsed (400 when it is not JSON)."""
        limit = self.settings.max_body
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise HTTPException(413, f"request body larger than {limit} bytes")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > limit:
                raise HTTPException(413, f"request body larger than {limit} bytes")
        try:
            return json.loads(bytes(data))
        except (ValueError, RecursionError):
            raise HTTPException(400, "the request body is not JSON") from None

    def authenticate(self, request: Request, metadata: dict[str, str] | None = None) -> str:
        """Which credential the caller used ("bearer" / "metadata"); 401 without the token, 503 when
        gate has none configured (fail closed)."""
        expected = self.settings.token.get_secret_value() if self.settings.token else ""
        if not expected:
            raise HTTPException(503, "no token configured (GATE_INTEGRATIONS_TOKEN): every call is refused")
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode()):
            return "bearer"
        if metadata and hmac.compare_digest(metadata.get("token", "").encode(), expected.encode()):
            return "metadata"
        raise HTTPException(401, "missing or wrong token (Authorization: Bearer <token>)")

    def allow(self, namespace: str) -> None:
        if not self.namespaces.fullmatch(namespace):
            raise HTTPException(403, f"namespace {namespace[:63]!r} is not one gate serves")

    def check_for(self, namespace: str, name: str, revision: str) -> Check:
        """The check of this revision: known, or started now from the contract in the folder."""
        try:
            contracts.check_name("namespace", namespace)
            contracts.check_name("contract", name)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        if not _REVISION.match(revision):
            raise HTTPException(
                400,
                f"revision {revision[:80]!r}: letters, digits, '.', '_', '-' (63 at most)",
            )
        key = CheckKey(namespace, name, revision)
        known = self.book.get(key)
        if known is not None and not self.book.retry_due(known):
            return known
        try:
            contract, library = contracts.load(contracts.find(self.settings.contracts, namespace, name))
        except contracts.ContractNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except contracts.ContractInvalid as exc:
            raise HTTPException(400, str(exc)) from None
        stable, canary = contract.spec.target.stable.url, contract.spec.target.canary.url
        if not stable or not canary:
            raise HTTPException(
                400, f"contract {name}: spec.target.stable.url and canary.url are what gate's load is sent to"
            )
        prometheus = self.settings.prometheus or contract.spec.prometheus.url
        options = CheckOptions(
            stable_url=stable,
            canary_url=canary,
            prometheus_url=None if prometheus == "off" else prometheus,
        )
        check, _new = self.book.start(key, contract, library, options)
        return check

    def refused(self, endpoint: str, request: Request, exc: HTTPException) -> None:
        """Audit a refused call: who, where, the status and why (shortened; never the body)."""
        who = request.client.host if request.client else "?"
        self.audit.record(endpoint=endpoint, client=who, status=exc.status_code, refused=str(exc.detail))

    async def wait(self, check: Check, seconds: float) -> None:
        seconds = min(max(seconds, 0.0), self.settings.max_wait)
        if seconds > 0 and not check.done.is_set():
            await asyncio.to_thread(check.done.wait, seconds)


def _wait_of(metadata: dict[str, str] | None, default: float) -> float:
    raw = (metadata or {}).get("wait")
    if raw is None:
        return default
    try:
        return float(raw.removesuffix("s"))
    except ValueError:
        raise HTTPException(400, f"metadata.wait: seconds (like '30' or '30s'), not {raw[:40]!r}") from None


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def integrations_router(
    settings: IntegrationsSettings | None = None, book: CheckBook | None = None
) -> APIRouter:
    """The endpoints, to mount on the dashboard (``app.include_router(integrations_router())``)."""
    return build(settings, book)[0]


def build(
    settings: IntegrationsSettings | None = None, book: CheckBook | None = None
) -> tuple[APIRouter, Integrations]:
    """The router and the state behind it (the checks, the audit)."""
    state = Integrations(settings or IntegrationsSettings(), book)
    router = APIRouter(prefix=PREFIX, tags=["integrations"])

    s = state  # the endpoints' shared state, closed over (FastAPI resolves no local annotations)

    @router.post("/flagger/{hook}", response_class=PlainTextResponse)
    async def flagger(hook: str, request: Request) -> Response:
        """A Flagger webhook of type `hook`; its status code is what Flagger acts on."""
        try:
            return await _flagger(hook, request)
        except HTTPException as exc:
            s.refused(f"flagger/{hook[:40]}", request, exc)
            raise

    @router.post("/argo/verdict")
    async def argo(request: Request) -> JSONResponse:
        """Argo Rollouts' web metric: the verdict of the revision's check as JSON."""
        try:
            return await _argo(request)
        except HTTPException as exc:
            s.refused("argo/verdict", request, exc)
            raise

    async def _flagger(hook: str, request: Request) -> Response:
        who = request.client.host if request.client else "?"
        if hook not in answers.HOOKS:
            raise HTTPException(
                404, f"unknown Flagger hook type {hook[:40]!r}; known: {sorted(answers.HOOKS)}"
            )
        raw = await s.body(request)
        try:
            payload = FlaggerPayload.model_validate(raw)
        except ValidationError as exc:
            raise HTTPException(400, f"not a Flagger webhook payload: {_problem(exc)}") from None
        credential = s.authenticate(request, payload.metadata)
        s.allow(payload.namespace)
        metadata = payload.metadata or {}
        audit = {
            "endpoint": f"flagger/{hook}",
            "client": who,
            "credential": credential,
            "namespace": payload.namespace,
            "name": payload.name,
            "phase": payload.phase,
            "checksum": payload.checksum,
            "metadata": metadata,
        }
        if hook in answers.RECORDING:
            s.audit.record(**audit, status=200, verdict="recorded")
            return PlainTextResponse(f"recorded {hook} ({payload.phase})", status_code=200)
        contract = metadata.get("contract", payload.name)
        revision = payload.checksum or "unknown"
        if hook == "rollback":
            check = s.book.get(CheckKey(payload.namespace, contract, revision))
            if check is None:
                s.audit.record(**audit, status=403, verdict="none")
                return PlainTextResponse(
                    f"no rollback: gate has not checked {payload.namespace}/{contract}@{revision}",
                    status_code=403,
                )
        else:
            check = s.check_for(payload.namespace, contract, revision)
            await s.wait(check, _wait_of(metadata, s.settings.default_wait))
        status, text = answers.flagger_answer(hook, check)
        s.audit.record(**audit, status=status, verdict=check.status, reason=check.reason)
        return PlainTextResponse(text, status_code=status)

    async def _argo(request: Request) -> JSONResponse:
        who = request.client.host if request.client else "?"
        credential = s.authenticate(request)
        raw = await s.body(request)
        try:
            ask = ArgoRequest.model_validate(raw)
        except ValidationError as exc:
            raise HTTPException(400, f"not a verdict request: {_problem(exc)}") from None
        s.allow(ask.namespace)
        check = s.check_for(ask.namespace, ask.contract, ask.revision)
        await s.wait(check, s.settings.default_wait if ask.wait is None else ask.wait)
        status, body = answers.argo_answer(check)
        s.audit.record(
            endpoint="argo/verdict",
            client=who,
            credential=credential,
            namespace=ask.namespace,
            name=ask.contract,
            checksum=ask.revision,
            status=status,
            verdict=check.status,
            reason=check.reason,
        )
        headers = {"Retry-After": "10"} if status == 503 else None
        return JSONResponse(body, status_code=status, headers=headers)

    return router, state


def create_integrations_app(
    settings: IntegrationsSettings | None = None, book: CheckBook | None = None
) -> FastAPI:
    """A small app serving only the drop-in endpoints (and /healthz), until the dashboard mounts them."""
    app = FastAPI(title="gate integrations", docs_url=None, redoc_url=None)
    router, state = build(settings, book)
    app.include_router(router)
    app.state.integrations = state

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> str:
        return "ok"

    @app.exception_handler(HTTPException)
    async def plain(_request: Request, exc: HTTPException) -> Response:
        # Flagger shows a 4xx body in its events: plain words, not a JSON envelope.
        return PlainTextResponse(str(exc.detail)[:4000], status_code=exc.status_code)

    return app
