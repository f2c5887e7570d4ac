"""JSON files (flattened to `key: value` lines under their key path) and JSONL corpora (one
document a line)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingestion.loaders.common import Block, LoadError, assemble
from rag.types import LoadedDocument


def json_blocks(text: str) -> list[Block]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    blocks: list[Block] = []

    def walk(value: Any, path: tuple[str, ...]) -> None:
        if isinstance(value, dict):
            scalars = [f"{k}: {v}" for k, v in value.items() if not isinstance(v, dict | list)]
            if scalars:
                blocks.append(Block("\n".join(scalars), path))
            for k, v in value.items():
                if isinstance(v, dict | list):
                    walk(v, (*path, str(k)))
        elif isinstance(value, list):
            for item in value:
                walk(item, path)
        elif value is not None and str(value).strip():
            blocks.append(Block(str(value), path))

    walk(data, ())
    return blocks


@dataclass
class JsonlRow:
    """One JSONL line: a document, or the reason the line was rejected."""

    line: int
    doc: LoadedDocument | None = None
    error: str | None = None
    doc_id: str | None = None


def _parse_time(value: Any, fallback: datetime) -> datetime:
    if not value:
        return fallback
    ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def read_jsonl(path: Path, max_bytes: int) -> Iterator[JsonlRow]:
    """Rows of a JSONL corpus: `{"id", "text", "title"?, "uri"?, "modified_at"?, "metadata"?}`."""
    file_mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            if len(raw) > max_bytes:
                yield JsonlRow(number, error=f"line {number}: over the {max_bytes}-byte limit")
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                yield JsonlRow(number, error=f"line {number}: not valid JSON ({exc})")
                continue
            if not isinstance(row, dict):
                yield JsonlRow(number, error=f"line {number}: expected a JSON object")
                continue
            missing = [k for k in ("id", "text") if not str(row.get(k) or "").strip()]
            if missing:
                yield JsonlRow(
                    number,
                    error=f"line {number}: missing required field(s) {', '.join(missing)}",
                    doc_id=str(row["id"]) if row.get("id") else None,
                )
                continue
            doc_id = str(row["id"])
            try:
                modified = _parse_time(row.get("modified_at"), file_mtime)
                paragraphs = [p for p in str(row["text"]).split("\n\n") if p.strip()]
                title = str(row.get("title") or doc_id)
                blocks = [Block(p, (title,) if row.get("title") else ()) for p in paragraphs]
                doc = assemble(
                    doc_id,
                    blocks,
                    uri=str(row.get("uri") or f"{path.resolve().as_uri()}#{doc_id}"),
                    title=title,
                    modified_at=modified,
                    metadata=row.get("metadata") if isinstance(row.get("metadata"), dict) else {},
                )
            except (ValueError, LoadError) as exc:
                yield JsonlRow(number, error=f"line {number}: {exc}", doc_id=doc_id)
                continue
            yield JsonlRow(number, doc=doc, doc_id=doc_id)
