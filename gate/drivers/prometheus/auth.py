"""Turning a contract's `spec.prometheus` into a ready client: credentials read, TLS set, URL redacted.

Credentials are read only here and only when a client is built: from a file (relative to the
contract's folder, bounded like every other input), an environment variable, or a Kubernetes Secret
through `secrets` — which only the operator passes (it reads the Secret with its own service account);
elsewhere a Secret reference is a clear error. No credential is ever part of a message.
"""

from __future__ import annotations

import base64
import os
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gate import boundedio, redact
from gate.contract.models import Credential, Prometheus
from gate.drivers.prometheus.client import PermanentError, PrometheusClient

MAX_CREDENTIAL_BYTES = 64 * 1024

SecretReader = Callable[[str, str], str]
"""(secret name, key) -> value; given by the operator, which may read Secrets."""


def resolve_credential(
    credential: Credential,
    where: str,
    *,
    base_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    secrets: SecretReader | None = None,
) -> str:
    """The credential's value; `PermanentError` naming the field (`where`) — never the value — when
    it cannot be read."""
    value: str
    if credential.env is not None:
        environ = os.environ if env is None else env
        found = environ.get(credential.env)
        if not found:
            raise PermanentError(
                f"{where}.env: the environment variable {credential.env} is not set or empty",
                hint=f"export {credential.env} before running gate",
            )
        value = found
    elif credential.file is not None:
        path = Path(credential.file)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            value = boundedio.read_text_limited(path, MAX_CREDENTIAL_BYTES, what="credential")
        except boundedio.FileRefused as exc:
            raise PermanentError(f"{where}.file: {exc}") from None
        value = value[:-1] if value.endswith("\n") else value
        value = value[:-1] if value.endswith("\r") else value
        if not value:
            raise PermanentError(f"{where}.file: {path} is empty")
    else:
        assert credential.secret is not None
        if secrets is None:
            raise PermanentError(
                f"{where}.secret: a Kubernetes Secret ({credential.secret.name}) is read by the "
                "operator only",
                hint="outside a cluster, give the credential as file: or env:",
            )
        value = secrets(credential.secret.name, credential.secret.key)
    if any(c in value for c in "\r\n\x00"):
        raise PermanentError(f"{where}: the credential holds a line break or NUL; it cannot go in a header")
    return value


def client_options(
    prometheus: Prometheus,
    *,
    base_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    secrets: SecretReader | None = None,
) -> dict[str, Any]:
    """`headers` and `verify` for `PrometheusClient` from the contract's section."""
    headers = dict(prometheus.headers)
    auth = prometheus.auth
    field = "spec.prometheus.auth"
    if auth is not None and auth.bearer is not None:
        token = resolve_credential(
            auth.bearer, f"{field}.bearer", base_dir=base_dir, env=env, secrets=secrets
        )
        headers["Authorization"] = f"Bearer {token}"
    elif auth is not None and auth.basic is not None:
        password = resolve_credential(
            auth.basic.password, f"{field}.basic.password", base_dir=base_dir, env=env, secrets=secrets
        )
        pair = f"{auth.basic.username}:{password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    verify: Any = True
    tls = prometheus.tls
    if tls is not None and tls.insecure_skip_verify:
        verify = False
    elif tls is not None and tls.ca_file is not None:
        ca = Path(tls.ca_file)
        if not ca.is_absolute() and base_dir is not None:
            ca = base_dir / ca
        try:
            pem = boundedio.read_text_limited(ca, 4 * 1024 * 1024, what="CA certificate")
            verify = ssl.create_default_context(cadata=pem)
        except boundedio.FileRefused as exc:
            raise PermanentError(f"spec.prometheus.tls.caFile: {exc}") from None
        except ssl.SSLError as exc:
            raise PermanentError(
                f"spec.prometheus.tls.caFile: {ca} holds no usable PEM certificate ({exc.reason or exc})"
            ) from None
    return {"headers": headers, "verify": verify}


def client_for(
    prometheus: Prometheus,
    *,
    url: str | None = None,
    base_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    secrets: SecretReader | None = None,
    **options: Any,
) -> PrometheusClient:
    """A client for the contract's Prometheus (or `url`, e.g. `--prometheus`), authenticated as the
    contract says. `options` go to `PrometheusClient` (timeout, retries, ...)."""
    target = url or prometheus.url
    if not target:
        raise PermanentError("no Prometheus URL: set spec.prometheus.url or pass --prometheus")
    extra = client_options(prometheus, base_dir=base_dir, env=env, secrets=secrets)
    headers = {**extra["headers"], **dict(options.pop("headers", None) or {})}
    return PrometheusClient(target, headers=headers, verify=extra["verify"], **options)


def display_url(url: str | None) -> str:
    """A URL fit for a message, report or record."""
    return redact.redact_url(url) if url else ""
