"""`ragops` command line. Every command takes --json and then prints one JSON document.

Exit codes: 0 the command ran (an ingestion job with per-file failures still ran), 1 a job or
operation failed, 2 bad arguments.

One module per group of commands; `client` talks to a running `ragops serve` when it holds the
embedded store; `common` holds the root group and the process's settings and services.
"""

from api.cli import ask, evaluate, ingest, keys, reports, serve  # noqa: F401  (registers them)
from api.cli.common import main

__all__ = ["main"]
