"""The one place that turns Settings into wired components (used by the API, CLI and worker,
and by the evaluation, the lab and the benchmarks): each process builds one `Services`.

Everything heavy is built on first use: listing jobs never loads the model or opens the store.

    services = Services(); services.store.count("verified")
    scratch = Services.scratch(tmp_path)           # a fresh data dir, no sources, no scheduler
"""

from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from rag.answering.answer import Answerer, ExtractiveAnswerer
from rag.answering.confidence import ConfidenceModel
from rag.answering.judge import AnswerabilityJudge, shared_judge
from rag.answering.qualifiers import QualifierReader, shared_qualifier_reader
from rag.ask import AskPipeline
from rag.durations import parse_duration
from rag.ops.auth import KeyStore
from rag.ops.catalog import Catalog
from rag.ops.db import connect
from rag.ops.feedback import FeedbackLog
from rag.ops.jobs import JobLog
from rag.ops.querylog import QueryLog
from rag.retrieval.bm25 import BM25Encoder
from rag.retrieval.embedding import SentenceTransformerEmbedder, shared_embedder
from rag.retrieval.hybrid import HybridRetriever
from rag.retrieval.rerank import make_reranker
from rag.retrieval.store import VectorStore, open_store
from rag.settings import Settings


def configure(**overrides: Any) -> Settings:
    """The settings: the environment (`RAG_*`, `.env`), then `overrides`. Every `Settings` of
    the product is built here."""
    return Settings(**overrides)


class Services:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else configure()
        self._lock = threading.Lock()

    @classmethod
    def scratch(cls, workdir: Path, **overrides: Any) -> Services:
        """Services over a data dir of their own under `workdir`, with no declared sources and
        no scheduler: what an evaluation, a training data build or a benchmark runs on."""
        defaults: dict[str, Any] = {
            "data_dir": workdir / "data",
            "sources_file": workdir / "none.toml",
            "scheduler_enabled": False,
        }
        return cls(configure(**(defaults | overrides)))

    @cached_property
    def engine(self) -> Engine:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        return connect(self.settings.resolved_database_url)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.engine)

    @cached_property
    def jobs(self) -> JobLog:
        return JobLog(self.engine)

    @cached_property
    def embedder(self) -> SentenceTransformerEmbedder:
        s = self.settings
        embedder = shared_embedder(s.embedding_model, s.embedding_batch_size)
        embedder.configure_queries(s.batch_max_size, s.batch_wait_ms)
        return embedder

    @cached_property
    def judge(self) -> AnswerabilityJudge:
        s = self.settings
        return shared_judge(s.judge_model, s.judge_threads, s.judge_concurrent_threads)

    @cached_property
    def qualifiers(self) -> QualifierReader:
        return shared_qualifier_reader()

    @cached_property
    def bm25(self) -> BM25Encoder:
        return BM25Encoder(self.settings.bm25_k1, self.settings.bm25_b)

    @cached_property
    def store(self) -> VectorStore:
        s = self.settings
        with self._lock:
            return open_store(
                s.store_backend,
                s.tiers,
                lambda: self.embedder.dim,
                edge_dir=s.edge_dir,
                url=s.qdrant_url,
                prefix=s.collection_prefix,
                api_key=s.qdrant_api_key,
                min_free_bytes=int(s.store_min_free_mb * 1024 * 1024),
                search_threads=s.store_search_threads,
            )

    @cached_property
    def keys(self) -> KeyStore:
        return KeyStore(self.engine)

    @cached_property
    def query_log(self) -> QueryLog:
        return QueryLog(self.engine)

    @cached_property
    def feedback(self) -> FeedbackLog:
        return FeedbackLog(self.engine)

    @cached_property
    def retriever(self) -> HybridRetriever:
        s = self.settings
        return HybridRetriever(
            self.store,
            self.embedder,
            self.bm25,
            fusion=s.fusion,
            tier_weights={t: s.tier_weight(t) for t in s.tiers},
        )

    @cached_property
    def asker(self) -> AskPipeline:
        s = self.settings
        return AskPipeline(
            retriever=self.retriever,
            reranker=make_reranker(s.reranker),
            confidence=ConfidenceModel.load(s.calibration_file),
            answerer=self.answerer,
            judge=self.judge,
            log=self.query_log,
            candidates=s.candidates,
            threshold=s.confidence_threshold,
            judge_depth=s.judge_depth,
            judge_rerank=s.judge_rerank,
            qualifiers=self.qualifiers,
        )

    @cached_property
    def answerer(self) -> Answerer:
        """Extractive by default; generative when LLM providers are configured, with the
        extractive answerer as its fallback."""
        s = self.settings
        extractive = ExtractiveAnswerer(qualifiers=self.qualifiers)
        if not s.llm_providers:
            return extractive
        from rag.answering.generate import LLMAnswerer, PromptSet
        from rag.answering.llm import CircuitBreaker, ProviderClient
        from rag.answering.verify import DEFAULT_VERIFIER_DIR, ClaimVerifier, shared_verifier

        cooldown = parse_duration(s.llm_breaker_cooldown).total_seconds()
        verifier = (
            shared_verifier(s.verifier_model)
            if s.verifier_threshold is None
            else ClaimVerifier(s.verifier_model or DEFAULT_VERIFIER_DIR, s.verifier_threshold)
        )
        return LLMAnswerer(
            providers=[
                ProviderClient(
                    p, s.llm_retries, breaker=CircuitBreaker(s.llm_breaker_failures, cooldown)
                )
                for p in s.llm_providers
            ],
            prompts=PromptSet.load(s.prompts_dir),
            verifier=verifier,
            fallback=extractive,
            count_tokens=self.judge.count_tokens,
            context_tokens=s.llm_context_tokens,
            # The least trusted tier's passages reach the model marked as untrusted material.
            untrusted_tiers=frozenset(s.tiers[-1:]),
        )

    def close(self) -> None:
        closer = getattr(self.__dict__.get("answerer"), "close", None)
        if closer is not None:
            closer()  # a generative answerer holds one HTTP connection pool per provider
        if "store" in self.__dict__:
            self.store.close()
            del self.__dict__["store"]
        if "engine" in self.__dict__:
            self.engine.dispose()
