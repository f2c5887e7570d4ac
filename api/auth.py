"""Who may read what: API keys map to trust tiers. With no key configured, only loopback
clients are served (the log says so at start-up). Each key's requests are rate limited
(`api.limits.RateLimiter`); unknown keys are refused before they count."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from api.deps import ServicesDep
from api.limits import RateLimiter
from rag.ops.auth import Principal

LOOPBACK = {"127.0.0.1", "::1", "localhost", "testclient"}


def current_principal(request: Request, services: ServicesDep) -> Principal:
    header = request.headers.get("authorization", "")
    keys = services.keys
    if not keys.any_keys():
        client = request.client.host if request.client else ""
        if client not in LOOPBACK:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "no API keys are configured, so only loopback clients are served; "
                "create one with `ragops keys create --tiers ...`",
            )
        return Principal(name=None, tiers=list(services.settings.tiers))
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: send `Authorization: Bearer <key>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = token.strip()
    principal = keys.principal(token)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid API key", headers={"WWW-Authenticate": "Bearer"}
        )
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.check(token)
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]
