"""Prometheus metrics, defined once per process and exported at `/metrics`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ASKS = Counter(
    "ragops_asks_total", "Questions asked, by outcome and refusal reason.", ["outcome", "reason"]
)
STAGE_SECONDS = Histogram(
    "ragops_ask_stage_seconds",
    "Latency of each /ask stage.",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.1, 0.25, 0.5, 1.0, 2.5),
)
DOCUMENTS_INGESTED = Counter(
    "ragops_documents_ingested_total",
    "Documents processed by ingestion jobs, by outcome.",
    ["outcome"],
)
JOB_FAILURES = Counter("ragops_ingest_job_failures_total", "Ingestion jobs that failed.")
CHUNKS = Gauge("ragops_chunks", "Chunks stored, per trust tier.", ["tier"])
OVERDUE_SOURCES = Gauge("ragops_overdue_sources", "Sources not refreshed within their schedule.")
