"""ragas' metrics that need no LLM, next to ours in every `ragops eval` report.

- context precision / recall with reference (`NonLLMContextPrecisionWithReference`,
  `NonLLMContextRecall`): the top retrieved chunks against the chunks of the row's relevant
  documents, matched by Levenshtein similarity (ragas' default, threshold 0.5);
- string presence and string similarity of the answer against the reference answer.

Rows without relevant documents (unanswerable) have no reference contexts and are left out of
the context metrics; refused rows have no response and are left out of the string metrics. Telemetry
is off (`RAGAS_DO_NOT_TRACK`); nothing here reaches the network.
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any

from rag.retrieval.store import ChunkFilter, VectorStore

TOP_CONTEXTS = 5
_MARKERS = re.compile(r"\s*(?:\[\d+\])+")


def _reference_contexts(
    store: VectorStore, tiers: list[str], doc_ids: list[str], cache: dict[str, list[str]]
) -> list[str]:
    texts: list[str] = []
    for doc_id in doc_ids:
        if doc_id not in cache:
            cache[doc_id] = [
                p.text for tier in tiers for p in store.scroll(tier, ChunkFilter(doc_ids=[doc_id]))
            ]
        texts.extend(cache[doc_id])
    return texts


def reference_metrics(
    results: list[dict[str, Any]],
    dataset: dict[str, dict[str, Any]],
    store: VectorStore,
    tiers: list[str],
) -> dict[str, Any]:
    """Mean ragas non-LLM scores over the rows each metric applies to (with their counts)."""
    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
    from ragas.dataset_schema import SingleTurnSample
    from ragas.metrics import NonLLMContextPrecisionWithReference, NonLLMContextRecall
    from ragas.metrics.collections import NonLLMStringSimilarity, StringPresence

    from evals.runner import chunk_texts

    precision, recall = NonLLMContextPrecisionWithReference(), NonLLMContextRecall()
    presence, similarity = StringPresence(), NonLLMStringSimilarity()
    cache: dict[str, list[str]] = {}
    samples: list[SingleTurnSample] = []
    answers: list[tuple[str, str]] = []
    for r in results:
        row = dataset[r["id"]]
        row_tiers = [t for t in row.get("tiers") or tiers if t in tiers]
        top = [c["chunk_id"] for c in r["retrieved"][:TOP_CONTEXTS]]
        reference = _reference_contexts(store, row_tiers, row["relevant_doc_ids"], cache)
        if row["answerable"] and top and reference:
            texts = chunk_texts(store, row_tiers, top)
            retrieved = [texts[c] for c in top if c in texts]
            samples.append(
                SingleTurnSample(retrieved_contexts=retrieved, reference_contexts=reference)
            )
        if row.get("reference_answer") and not r["refused"] and r["answer"]:
            answers.append(
                (row["reference_answer"], " ".join(_MARKERS.sub("", r["answer"]).split()))
            )

    async def score() -> dict[str, list[float]]:
        out: dict[str, list[float]] = {k: [] for k in ("cp", "cr", "sp", "ss")}
        for sample in samples:
            out["cp"].append(float(await precision.single_turn_ascore(sample)))
            out["cr"].append(float(await recall.single_turn_ascore(sample)))
        for reference, response in answers:
            # ragas' presence is case-sensitive; answers quote their sources, so compare
            # case-folded to measure content, not capitalisation.
            hit = await presence.ascore(reference=reference.lower(), response=response.lower())
            out["sp"].append(float(hit.value))
            sim = await similarity.ascore(reference=reference, response=response)
            out["ss"].append(float(sim.value))
        return out

    scores = asyncio.run(score())

    def mean(xs: list[float]) -> float | None:
        return round(sum(xs) / len(xs), 4) if xs else None

    return {
        "non_llm_context_precision_with_reference": mean(scores["cp"]),
        "non_llm_context_recall": mean(scores["cr"]),
        "context_rows": len(samples),
        "string_present": mean(scores["sp"]),
        "non_llm_string_similarity": mean(scores["ss"]),
        "answer_rows": len(answers),
    }
