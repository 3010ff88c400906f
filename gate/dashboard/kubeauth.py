"""Kubernetes authentication and authorisation for reviewers: TokenReview tells who a bearer token
belongs to, SubjectAccessReview whether RBAC lets them ``patch`` the gate they act on.

The only dashboard module that imports the kubernetes client. Calls block (FastAPI runs the
endpoints that make them in its thread pool); each has a short timeout, and an API server that
does not answer refuses the action (fail closed), it never grants it.
"""

from __future__ import annotations

import logging
from typing import Any

from kubernetes import client

from gate.dashboard.auth import Identity

log = logging.getLogger(__name__)

TIMEOUT = 5.0


class KubeReviewer:
    """TokenReview + SubjectAccessReview through the official client."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        group: str = "perfgate.dev",
        resource: str = "performancegates",
        audiences: list[str] | None = None,
    ) -> None:
        self._authn = client.AuthenticationV1Api(api)
        self._authz = client.AuthorizationV1Api(api)
        self.group = group
        self.resource = resource
        self.audiences = audiences or []

    @classmethod
    def connect(cls, host: str = "", **kwargs: Any) -> KubeReviewer:
        """In a cluster: the pod's service account (``host`` overrides the API server, e.g. for tests)."""
        if host:
            cfg = client.Configuration()
            cfg.host = host
        else:  # pragma: no cover - needs a pod's service account
            from kubernetes import config

            config.load_incluster_config()  # type: ignore[no-untyped-call]
            cfg = client.Configuration.get_default_copy()
        return cls(client.ApiClient(cfg), **kwargs)

    def authenticate(self, token: str) -> Identity | None:
        body = client.V1TokenReview(
            spec=client.V1TokenReviewSpec(token=token, audiences=self.audiences or None)
        )
        try:
            review = self._authn.create_token_review(body, _request_timeout=TIMEOUT)
        except Exception as exc:
            log.warning("TokenReview failed (%s): the token is not accepted", type(exc).__name__)
            return None
        status = review.status
        if status is None or not status.authenticated or status.user is None or not status.user.username:
            return None
        groups = tuple(status.user.groups or ())
        return Identity(str(status.user.username)[:253], "kubernetes", groups, kube=True)

    def may_patch(self, identity: Identity, namespace: str, name: str) -> bool:
        body = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=identity.name,
                groups=list(identity.groups) or None,
                resource_attributes=client.V1ResourceAttributes(
                    group=self.group, resource=self.resource, verb="patch", namespace=namespace, name=name
                ),
            )
        )
        try:
            review = self._authz.create_subject_access_review(body, _request_timeout=TIMEOUT)
        except Exception as exc:
            log.warning("SubjectAccessReview failed (%s): the action is refused", type(exc).__name__)
            return False
        return bool(review.status is not None and review.status.allowed and not review.status.denied)
