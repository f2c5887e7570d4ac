"""Run a dataset through the real pipeline (`ragops eval` scores it: `evals.evaluate`).

Every question goes through `AskPipeline.ask` exactly as `/ask` runs it. Each answer's quotes
are checked against the stored chunk texts independently of the pipeline's own check.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rag.ask import AskPipeline
from rag.retrieval.store import ChunkFilter, VectorStore

RESULT_KEYS = (
    "refused",
    "refusal_reason",
    "refusal_detail",
    "answer",
    "confidence",
    "latency_ms",
    "evidence",
    "generator",
)
CITATION_KEYS = (
    "doc_id",
    "chunk_id",
    "quote",
    "tier",
    "source",
    "source_modified_at",
    "ingested_at",
)
RETRIEVED_KEYS = ("doc_id", "chunk_id", "score", "tier")


def read_dataset(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open("r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {number} is not valid JSON ({exc})") from exc
            missing = [k for k in ("id", "question", "answerable") if k not in row]
            if missing:
                raise ValueError(f"{path}: line {number} lacks {', '.join(missing)}")
            row.setdefault("relevant_doc_ids", [])
            rows.append(row)
    return rows


def _pick(model: BaseModel, keys: tuple[str, ...]) -> dict[str, Any]:
    """The RESULTS row's part of a result, in the row's key order (DESIGN.md §3)."""
    dumped = model.model_dump(include=set(keys))
    return {k: dumped[k] for k in keys}


def chunk_texts(store: VectorStore, tiers: list[str], ids: list[str]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for tier in tiers:
        for payload in store.scroll(tier, ChunkFilter(chunk_ids=ids)):
            texts[payload.chunk_id] = payload.text
    return texts


def run_dataset(
    asker: AskPipeline,
    store: VectorStore,
    rows: list[dict[str, Any]],
    tiers: list[str],
    top_k: int = 10,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    results = []
    for i, row in enumerate(rows, start=1):
        # A row may say which tiers its asker's key reads (the golden set's tier questions).
        row_tiers = [t for t in row.get("tiers") or tiers if t in tiers]
        answer = asker.ask(row["question"], row_tiers, top_k=top_k)
        cited_ids = [c.chunk_id for c in answer.citations]
        texts = chunk_texts(store, row_tiers, cited_ids) if cited_ids else {}
        valid = bool(cited_ids) and all(
            c.quote in texts.get(c.chunk_id, "") for c in answer.citations
        )
        results.append(
            {
                "id": row["id"],
                "question": row["question"],
                **_pick(answer, RESULT_KEYS),
                "citations": [_pick(c, CITATION_KEYS) for c in answer.citations],
                "retrieved": [_pick(r, RETRIEVED_KEYS) for r in answer.retrieved],
                "closest_sources": [_pick(s, RETRIEVED_KEYS) for s in answer.closest_sources],
                "citations_valid": valid,
                "trace_id": answer.trace_id,
            }
        )
        if progress:
            progress(i, len(rows))
    return results
