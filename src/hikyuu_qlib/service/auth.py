"""Bearer tokens with a scope (read or write), kept in the settings as SHA-256 hashes.

A request presents ``Authorization: Bearer TOKEN``; the service hashes it and looks the hash up. Reads
need a read or write token (none with ``--public-read``); writes (model transitions and deletes, jobs)
need a write token. No token, or one the server does not know: 401; a read token on a write: 403. Both
refusals are counted (``hq_auth_failures_total`` by reason on ``/metrics``).
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Literal

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hikyuu_qlib.observability.recording import Metrics
from hikyuu_qlib.service.problems import ServiceProblem
from hikyuu_qlib.settings import ApiToken

Scope = Literal["read", "write"]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(name: str, scope: Scope = "read") -> tuple[str, ApiToken]:
    """A fresh random token and its settings entry (only the hash is kept)."""
    token = "hq_" + secrets.token_urlsafe(32)
    return token, ApiToken(name=name, sha256=hash_token(token), scope=scope)


class Authenticator:
    """Checks bearer tokens against the settings' hashes and counts refusals."""

    def __init__(self, tokens: tuple[ApiToken, ...], *, public_read: bool, metrics: Metrics) -> None:
        self._tokens = {t.sha256: t for t in tokens}
        self.public_read = public_read
        self._metrics = metrics

    def check(self, credentials: HTTPAuthorizationCredentials | None, scope: Scope) -> ApiToken | None:
        if scope == "read" and self.public_read:
            return None
        if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
            self._metrics.auth_failure("missing")
            raise ServiceProblem(
                401,
                "Unauthorized",
                "this request needs a bearer token: Authorization: Bearer TOKEN",
                headers={"WWW-Authenticate": 'Bearer realm="hq"'},
            )
        token = self._tokens.get(hash_token(credentials.credentials))
        if token is None:
            self._metrics.auth_failure("invalid")
            raise ServiceProblem(
                401,
                "Unauthorized",
                "the bearer token is not one this server knows",
                headers={"WWW-Authenticate": 'Bearer realm="hq", error="invalid_token"'},
            )
        if scope == "write" and token.scope != "write":
            self._metrics.auth_failure("scope")
            raise ServiceProblem(
                403,
                "Forbidden",
                f"token {token.name!r} has the read scope; this request needs a write token",
                headers={"WWW-Authenticate": 'Bearer realm="hq", error="insufficient_scope", scope="write"'},
            )
        return token


class ScopedBearer(HTTPBearer):
    """The route dependency that admits requests with a token of ``scope`` (and documents the bearer
    scheme in OpenAPI): one dependency, no nested ones, as it runs on every request."""

    def __init__(self, scope: Scope) -> None:
        super().__init__(
            auto_error=False,
            scheme_name="bearer",
            description="a token of HQ_API_TOKENS (read or write scope)",
        )
        self.scope = scope

    async def __call__(self, request: Request) -> ApiToken | None:  # type: ignore[override]
        auth: Authenticator = request.app.state.hq.auth
        if self.scope == "read" and auth.public_read:
            return None
        header = request.headers.get("authorization")
        credentials = None
        if header:
            scheme, _, value = header.partition(" ")
            credentials = HTTPAuthorizationCredentials(scheme=scheme, credentials=value.strip())
        return auth.check(credentials, self.scope)


def requires(scope: Scope) -> ScopedBearer:
    """A route dependency that admits requests with a token of ``scope``."""
    return ScopedBearer(scope)
