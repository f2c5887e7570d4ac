"""Who may read what: API keys map to trust tiers. With no key configured, only loopback
clients are served (the log says so at start-up). Each key's requests are rate limited
(`api.limits.RateLimiter`); unknown keys are refused before they count.

API routes take the key from `Authorization: Bearer`. The operator pages also take a browser
session (`api.session`), and their forms a CSRF token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from api.deps import ServicesDep
from api.limits import RateLimiter
from api.session import COOKIE, Sessions
from rag.ops.auth import Principal, key_digest
from service.container import Services

LOOPBACK = {"127.0.0.1", "::1", "localhost", "testclient"}
# What a loopback caller's CSRF tokens are bound to when no keys are configured (no session).
LOOPBACK_SESSION = "loopback"


def _loopback(request: Request, services: Services) -> Principal:
    client = request.client.host if request.client else ""
    if client not in LOOPBACK:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "no API keys are configured, so only loopback clients are served; "
            "create one with `ragops keys create --tiers ...`",
        )
    return Principal(name=None, tiers=list(services.settings.tiers))


def _count(request: Request, digest: str) -> None:
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.check(digest)


def current_principal(request: Request, services: ServicesDep) -> Principal:
    if not services.keys.any_keys():
        return _loopback(request, services)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: send `Authorization: Bearer <key>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    digest = key_digest(token.strip())
    principal = services.keys.principal_by_digest(digest)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid API key", headers={"WWW-Authenticate": "Bearer"}
        )
    _count(request, digest)
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


class LoginRequired(Exception):
    """An operator page was asked for without a key or a live session: the app sends the
    browser to the login page (`api.main`)."""


@dataclass(frozen=True)
class PageUser:
    """Who is on an operator page. `session` is what its CSRF tokens are bound to: None when
    the key came in a header, which a browser never adds to another site's requests, so no
    token is needed."""

    principal: Principal
    session: str | None
    csrf: str


def page_user(request: Request, services: ServicesDep) -> PageUser:
    sessions: Sessions = request.app.state.sessions
    if "authorization" in request.headers:
        return PageUser(current_principal(request, services), None, "")
    if not services.keys.any_keys():
        principal, session = _loopback(request, services), LOOPBACK_SESSION
    else:
        session = request.cookies.get(COOKIE, "")
        digest = sessions.read(session)
        known = services.keys.principal_by_digest(digest) if digest else None
        if digest is None or known is None:  # no session, a forged or expired one, a revoked key
            raise LoginRequired
        _count(request, digest)
        principal = known
    return PageUser(principal, session, sessions.csrf_token(session))


def check_csrf(request: Request, user: PageUser, token: str | None) -> None:
    """Refuse a form post whose CSRF token is missing or not this session's (403)."""
    sessions: Sessions = request.app.state.sessions
    if user.session is not None and not sessions.csrf_ok(user.session, token):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "missing or wrong CSRF token: reload the page and send the form again",
        )


PageUserDep = Annotated[PageUser, Depends(page_user)]
