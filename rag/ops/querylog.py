"""The query log: one row per ask, with what was retrieved, reranked and cited, the outcome and
per-stage latency. The retrieval-hit report reads it; `trace_id` ties a response to its row."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from rag.ops.db import as_utc, query_log


@dataclass
class Trace:
    trace_id: str
    asked_at: datetime
    question: str
    key_name: str | None
    allowed_tiers: list[str]
    queried_tiers: list[str]
    outcome: str  # "answered" | "refused"
    refusal_reason: str | None
    confidence: float | None
    retrieved: list[dict[str, Any]] = field(default_factory=list)
    reranked: list[dict[str, Any]] = field(default_factory=list)
    cited: list[dict[str, Any]] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)
    # How the answer was produced (GeneratorInfo); None for refusals before any answerer ran.
    generator: dict[str, Any] | None = None


class QueryLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, trace: Trace) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(query_log).values(**trace.__dict__))

    def get(self, trace_id: str) -> Trace | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(query_log).where(query_log.c.trace_id == trace_id))
                .mappings()
                .first()
            )
        if row is None:
            return None
        values = dict(row)
        values["asked_at"] = as_utc(values["asked_at"])
        return Trace(**values)
