"""Talking to the `ragops serve` that holds the embedded store: a command that finds the store
locked hands its work to that server over HTTP."""

from __future__ import annotations

from typing import Any

from api.cli.common import err, fail
from rag.settings import Settings


def server_call(
    settings: Settings, method: str, path: str, locked: str, expect: int = 200, **kwargs: Any
) -> Any:
    """Ask the `ragops serve` that holds the embedded store to do the work over HTTP."""
    import httpx

    base = f"http://{settings.host}:{settings.port}"
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    try:
        response = httpx.request(method, base + path, headers=headers, timeout=120, **kwargs)
    except httpx.HTTPError:
        fail(f"{locked} (no server answered at {base} to take the work)")
    if response.status_code != expect:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        fail(f"the server at {base} holds the store and answered {response.status_code}: {detail}")
    return response.json()


def hand_to_server(settings: Settings, request: Any, locked: str) -> dict[str, Any]:
    """Submit the job to the `ragops serve` that holds the store, and follow it to the end."""
    import time

    body = {
        "source": request.source,
        "path": request.location,
        "tier": request.tier,
        "ttl": request.ttl,
    }
    job = server_call(settings, "POST", "/ingest/jobs", locked, expect=202, json=body)
    err.print(
        f"the store is held by the server at {settings.host}:{settings.port}; "
        f"it runs job {job['job_id']}"
    )
    while job["status"] not in ("succeeded", "failed"):
        time.sleep(0.5)
        job = server_call(settings, "GET", f"/ingest/jobs/{job['job_id']}", locked)
    return dict(job)
