"""ragas' LLM metrics over eval results: faithfulness and answer relevancy (`ragops eval
--llm-metrics`), judged by an OpenAI-compatible endpoint: the first of `RAG_LLM_PROVIDERS`.

ragas 0.4.3's `ragas.metrics.collections` API: `llm_factory` over an `AsyncOpenAI` client (JSON
mode), and answer relevancy's embeddings from our own MiniLM (no model download). Telemetry is
off (`RAGAS_DO_NOT_TRACK`). Only answered rows are scored: a refusal has no response to judge.
Faithfulness reads the answer (markers removed) against the texts of the chunks it cites.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from rag.retrieval.embedding import DenseEmbedder
from rag.settings import ProviderConfig

_MARKERS = re.compile(r"\s*(?:\[\d+\])+")


def _embeddings(embedder: DenseEmbedder) -> Any:
    from ragas.embeddings.base import BaseRagasEmbedding

    class Embeddings(BaseRagasEmbedding):  # type: ignore[misc]
        def embed_texts(self, texts: Sequence[str], **_: Any) -> list[list[float]]:
            return np.asarray(embedder.embed_texts(list(texts)), dtype=np.float32).tolist()

        def embed_text(self, text: str, **_: Any) -> list[float]:
            return self.embed_texts([text])[0]

        async def aembed_texts(self, texts: Sequence[str], **_: Any) -> list[list[float]]:
            return await asyncio.to_thread(self.embed_texts, texts)

        async def aembed_text(self, text: str, **_: Any) -> list[float]:
            return (await self.aembed_texts([text]))[0]

    return Embeddings()


def llm_metrics(
    results: list[dict[str, Any]],
    contexts: dict[str, list[str]],
    provider: ProviderConfig,
    embedder: DenseEmbedder,
    strictness: int = 3,
) -> dict[str, Any]:
    """Mean faithfulness and answer relevancy over the answered rows; `contexts` maps a row id
    to the texts of the chunks its answer cites."""
    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
    try:
        from openai import AsyncOpenAI
        from ragas.llms import llm_factory
        from ragas.metrics.collections import AnswerRelevancy, Faithfulness
    except ImportError as exc:  # the `evals` extra is not installed
        raise RuntimeError(
            f"--llm-metrics needs ragas: pip install 'ragops[evals]' ({exc})"
        ) from exc

    client = AsyncOpenAI(
        base_url=provider.base_url,
        api_key=provider.api_key() or "unused",
        timeout=provider.timeout_s,
        max_retries=2,
    )
    llm = llm_factory(provider.model, client=client)
    faithfulness = Faithfulness(llm=llm)
    relevancy = AnswerRelevancy(llm=llm, embeddings=_embeddings(embedder), strictness=strictness)
    answered = [r for r in results if not r["refused"] and r["answer"]]

    async def score_all() -> tuple[list[float], list[float]]:
        faith, relevant = [], []
        for r in answered:
            response = " ".join(_MARKERS.sub("", r["answer"]).split())
            f = await faithfulness.ascore(
                user_input=r["question"], response=response, retrieved_contexts=contexts[r["id"]]
            )
            a = await relevancy.ascore(user_input=r["question"], response=response)
            faith.append(float(f.value))
            relevant.append(float(a.value))
        await client.close()
        return faith, relevant

    try:
        faith, relevant = asyncio.run(score_all())
    except Exception as exc:  # the judge endpoint failed or answered off-schema
        raise RuntimeError(f"ragas scoring with {provider.name} failed: {exc}") from exc

    def mean(values: list[float]) -> float | None:
        kept = [v for v in values if not math.isnan(v)]  # NaN: the judge found no statement
        return round(sum(kept) / len(kept), 4) if kept else None

    return {
        "judge": {"provider": provider.name, "model": provider.model},
        "scored": len(answered),
        "faithfulness": mean(faith),
        "answer_relevancy": mean(relevant),
    }
