"""What every `ragops` command shares: the root group, the process's settings and services
(built once per process, closed when the command ends), output and failure."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

import click
from rich.console import Console

from rag.settings import Settings

if TYPE_CHECKING:
    from service.container import Services

out = Console()
err = Console(stderr=True)


class Process:
    """One `ragops` process's composition root: the settings, read once, and the services,
    built on first use (listing jobs never loads a model)."""

    def __init__(self) -> None:
        self._services: Services | None = None

    @cached_property
    def settings(self) -> Settings:
        from service.container import configure

        return configure()

    @property
    def services(self) -> Services:
        if self._services is None:
            from service.container import Services

            self._services = Services(self.settings)
        return self._services

    def close(self) -> None:
        if self._services is not None:
            self._services.close()


def process() -> Process:
    """The running command's `Process` (one per invocation of the root group)."""
    root = click.get_current_context().find_root()
    found = root.meta.get("ragops.process")
    if found is None:
        found = root.meta["ragops.process"] = Process()
        root.call_on_close(found.close)
    return found


def emit(as_json: bool, data: Any, human: Any = None) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    elif human is not None:
        out.print(human)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    sys.exit(code)


@contextmanager
def session(server_fallback: bool = False) -> Iterator[Services]:
    """The process's services for one command: a store error ends it with a plain message,
    never a trace. With `server_fallback`, a store held by a running server is re-raised for
    the caller to ask that server instead."""
    from rag.retrieval.store import StoreError, StoreLockedError

    try:
        yield process().services
    except StoreLockedError as exc:
        if server_fallback:
            raise
        fail(str(exc))
    except StoreError as exc:
        fail(str(exc))


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
def main(verbose: bool) -> None:
    """ragops: answers with citations from trusted sources, or an honest refusal."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
