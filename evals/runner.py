"""`ragops eval`: run a dataset through the real pipeline; score it; optionally calibrate.

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
from rag.confidence import FEATURES, ConfidenceModel, Evidence
from rag.store import ChunkFilter, VectorStore

RESULT_KEYS = ("refused", "refusal_reason", "answer", "confidence", "latency_ms", "evidence")
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


def _chunk_texts(store: VectorStore, tiers: list[str], ids: list[str]) -> dict[str, str]:
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
        answer = asker.ask(row["question"], tiers, top_k=top_k)
        cited_ids = [c.chunk_id for c in answer.citations]
        texts = _chunk_texts(store, tiers, cited_ids) if cited_ids else {}
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
                "citations_valid": valid,
                "trace_id": answer.trace_id,
            }
        )
        if progress:
            progress(i, len(rows))
    return results


def calibrate(
    results: list[dict[str, Any]], dataset: dict[str, dict[str, Any]], note: str
) -> tuple[ConfidenceModel, dict[str, float]]:
    """Fit the confidence model on answerable vs unanswerable rows; pick the threshold that
    maximises the worse of refusal recall and answer rate (both matter to an operator)."""
    from sklearn.linear_model import LogisticRegression

    xs = [[r["evidence"][f] for f in FEATURES] for r in results if r.get("evidence")]
    ys = [1 if dataset[r["id"]]["answerable"] else 0 for r in results if r.get("evidence")]
    if len(set(ys)) < 2:
        raise ValueError("calibration needs both answerable and unanswerable questions")
    model = LogisticRegression(class_weight="balanced", C=1.0, max_iter=2000).fit(xs, ys)
    fitted = ConfidenceModel(
        weights={f: round(float(w), 6) for f, w in zip(FEATURES, model.coef_[0])},
        bias=round(float(model.intercept_[0]), 6),
        threshold=0.5,
    )
    scored = [
        (fitted.confidence(Evidence(r["evidence"], [])), y)
        for r, y in zip([r for r in results if r.get("evidence")], ys)
    ]
    best = (-1.0, 0.5, 0.0, 0.0)
    for step in range(1, 100):
        t = step / 100
        answer_rate = sum(1 for c, y in scored if y and c >= t) / max(1, ys.count(1))
        refusal_recall = sum(1 for c, y in scored if not y and c < t) / max(1, ys.count(0))
        worst = min(answer_rate, refusal_recall)
        if worst > best[0]:
            best = (worst, t, answer_rate, refusal_recall)
    fitted.threshold = best[1]
    fitted.fitted_on = {
        "note": note,
        "answerable": ys.count(1),
        "unanswerable": ys.count(0),
        "answer_rate": round(best[2], 4),
        "refusal_recall": round(best[3], 4),
    }
    return fitted, {"answer_rate": best[2], "refusal_recall": best[3], "threshold": best[1]}
