"""`ragops serve`: the HTTP API."""

from __future__ import annotations

import click

from api.cli.common import main, process


@main.command()
@click.option("--host", default=None, help="Bind address (default RAG_HOST, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default RAG_PORT, 8000).")
def serve(host: str | None, port: int | None) -> None:
    """Start the HTTP API."""
    import uvicorn

    settings = process().settings
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
    )
