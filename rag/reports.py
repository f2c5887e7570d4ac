"""Operator reports, computed from the store and the ops database. Routes and CLI only format.

- `freshness_report`: per source and tier, what is indexed, how old it is, when it was last
  refreshed and runs next, what is overdue, expiring or expired-but-not-swept, what failed.
- `hits_report`: over a window of the query log, how often questions find evidence (per tier
  and source), what gets cited, what is never retrieved, which questions are refused (the
  knowledge gaps), and latency per stage, with a daily series.

Both take the `tiers` the reader may read (an API key's): sources, documents and tiers outside
them are left out, and so are the asks of keys that may read more (their questions, and what
was retrieved and cited for them). None shows everything (the CLI, loopback without keys).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from rag.catalog import Catalog, SourceState
from rag.db import as_utc, query_log
from rag.feedback import RATINGS, FeedbackLog, RatedAsk
from rag.jobs import JobLog
from rag.schedules import is_overdue, next_run
from rag.store import ChunkFilter, VectorStore
from rag.types import Stage, iso

AGE_BUCKETS = (
    ("< 1 day", timedelta(days=1)),
    ("1-7 days", timedelta(days=7)),
    ("7-30 days", timedelta(days=30)),
    ("30-90 days", timedelta(days=90)),
    ("90-365 days", timedelta(days=365)),
    ("> 1 year", timedelta.max),
)
STAGES = tuple(Stage)


def _iso(ts: datetime | None) -> str | None:
    return iso(ts) if ts else None


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (k - low), 3)


def source_overdue(src: SourceState, now: datetime) -> bool:
    """A scheduled source not refreshed within its schedule."""
    return bool(src.schedule) and is_overdue(src.schedule or "", src.last_success_at, now)


def overdue_sources(catalog: Catalog, now: datetime) -> list[str]:
    """Cheap enough for every metrics scrape: reads only the sources table."""
    return [src.name for src in catalog.sources() if source_overdue(src, now)]


def freshness_report(
    catalog: Catalog,
    jobs: JobLog,
    store: VectorStore,
    now: datetime,
    tiers: Collection[str] | None = None,
) -> dict[str, Any]:
    by_source: dict[str, list[Any]] = defaultdict(list)
    for doc in catalog.all_documents():
        by_source[doc.source].append(doc)
    soon = now + timedelta(hours=24)
    sources: list[dict[str, Any]] = []
    for src in catalog.sources():
        if tiers is not None and src.tier not in tiers:
            continue
        docs = by_source.get(src.name, [])
        modified = [d.source_modified_at for d in docs]
        ages: Counter[str] = Counter()
        for d in docs:
            age = now - d.source_modified_at
            ages[next(label for label, limit in AGE_BUCKETS if age < limit)] += 1
        last = jobs.recent(limit=1, source=src.name)
        last_job = jobs.get(last[0].job_id) if last else None
        failures = (
            [{"path": f.path, "reason": f.reason} for f in last_job.files if f.status == "failed"]
            if last_job
            else []
        )
        sources.append(
            {
                "source": src.name,
                "tier": src.tier,
                "path": src.path,
                "ttl": src.ttl,
                "schedule": src.schedule,
                "documents": len(docs),
                "chunks": sum(len(d.chunk_ids) for d in docs),
                "newest_source_date": _iso(max(modified)) if modified else None,
                "oldest_source_date": _iso(min(modified)) if modified else None,
                "last_success_at": _iso(src.last_success_at),
                "last_failure_at": _iso(src.last_failure_at),
                "last_error": src.last_error,
                "next_run_at": _iso(next_run(src.schedule, src.last_success_at, now))
                if src.schedule
                else None,
                "overdue": source_overdue(src, now),
                "chunks_expiring_24h": sum(
                    len(d.chunk_ids) for d in docs if now < d.expires_at <= soon
                ),
                "chunks_expired_unswept": store.count(
                    src.tier, ChunkFilter(source=src.name, expired_at=now)
                )
                if src.tier in store.tiers
                else 0,
                **_flagged(store, src.tier, src.name),
                **_ocr_flagged(store, src.tier, src.name),
                "last_job": last_job.to_dict(with_files=False) if last_job else None,
                "last_failures": failures,
                "age_distribution": {label: ages.get(label, 0) for label, _ in AGE_BUCKETS},
            }
        )
    tier_rows = []
    for tier in store.tiers:
        if tiers is not None and tier not in tiers:
            continue
        rows = [s for s in sources if s["tier"] == tier]
        tier_rows.append(
            {
                "tier": tier,
                "sources": len(rows),
                "documents": sum(s["documents"] for s in rows),
                "chunks": store.count(tier),
                "chunks_expiring_24h": sum(s["chunks_expiring_24h"] for s in rows),
                "chunks_expired_unswept": store.count(tier, ChunkFilter(expired_at=now)),
                "chunks_flagged": store.count(tier, ChunkFilter(flagged=True)),
                "chunks_ocr_flagged": store.count(tier, ChunkFilter(ocr_flagged=True)),
            }
        )
    return {
        "generated_at": iso(now),
        "overdue_sources": [s["source"] for s in sources if s["overdue"]],
        "sources": sources,
        "tiers": tier_rows,
    }


FLAGGED_SHOWN = 5


def _flagged(store: VectorStore, tier: str, source: str) -> dict[str, Any]:
    """The source's chunks flagged at ingestion as trying to instruct a model: how many, and
    the first few with their reason (an operator reads these before trusting the source)."""
    if tier not in store.tiers:
        return {"chunks_flagged": 0, "flagged": []}
    where = ChunkFilter(source=source, flagged=True)
    shown = []
    for p in store.scroll(tier, where, batch=FLAGGED_SHOWN):
        shown.append({"doc_id": p.doc_id, "chunk_id": p.chunk_id, "reason": p.injection})
        if len(shown) == FLAGGED_SHOWN:
            break
    return {"chunks_flagged": store.count(tier, where), "flagged": shown}


# Ratings that say the service got an ask wrong.
BAD_RATINGS = ("wrong", "should_refuse", "should_answer")
RATED_SHOWN = 10


def ratings_report(rated: list[RatedAsk]) -> dict[str, Any]:
    """Operators' ratings: counts per rating, per tier searched and per source cited; the
    worst-rated questions and documents; and refusals rated "should_answer", which sit beside
    the knowledge gaps (a gap the documents do cover)."""
    per_tier: dict[str, Counter[str]] = defaultdict(Counter)
    per_source: dict[str, Counter[str]] = defaultdict(Counter)
    bad_questions: Counter[str] = Counter()
    example: dict[str, str] = {}
    bad_docs: Counter[tuple[str, str]] = Counter()
    for r in rated:
        kind, ask = r.rating.rating, r.ask
        for tier in ask["queried_tiers"]:
            per_tier[tier][kind] += 1
        for source in {c["source"] for c in ask["cited"]}:
            per_source[source][kind] += 1
        if kind in BAD_RATINGS:
            norm = _normalise_question(ask["question"])
            bad_questions[norm] += 1
            example[norm] = ask["question"]
            for key in {(c["source"], c["doc_id"]) for c in ask["cited"]}:
                bad_docs[key] += 1

    def counts(c: Counter[str]) -> dict[str, int]:
        return {kind: c[kind] for kind in RATINGS}

    return {
        "total": len(rated),
        "by_rating": counts(Counter(r.rating.rating for r in rated)),
        "per_tier": [{"tier": t, **counts(c)} for t, c in sorted(per_tier.items())],
        "per_source": [{"source": s, **counts(c)} for s, c in sorted(per_source.items())],
        "worst_questions": [
            {"question": example[q], "bad_ratings": n}
            for q, n in bad_questions.most_common(RATED_SHOWN)
        ],
        "worst_documents": [
            {"source": s, "doc_id": d, "bad_ratings": n}
            for (s, d), n in bad_docs.most_common(RATED_SHOWN)
        ],
        "should_answer": [
            {
                "question": r.ask["question"],
                "refusal_reason": r.ask["refusal_reason"],
                "correct_doc_id": r.rating.correct_doc_id,
                "trace_id": r.rating.trace_id,
            }
            for r in rated
            if r.rating.rating == "should_answer" and r.ask["outcome"] == "refused"
        ][-RATED_SHOWN:],
    }


# Flagged chunks read to find the distinct pages among them (a page is a few chunks).
OCR_CHUNKS_READ = 200


def _ocr_flagged(store: VectorStore, tier: str, source: str) -> dict[str, Any]:
    """The source's pages read by OCR below the confidence floor: how many chunks, and the first
    pages with their confidence (indexed and served; an operator checks them against the
    original)."""
    if tier not in store.tiers:
        return {"chunks_ocr_flagged": 0, "ocr_flagged": []}
    where = ChunkFilter(source=source, ocr_flagged=True)
    pages: dict[tuple[str, str], float | None] = {}
    for read, p in enumerate(store.scroll(tier, where, batch=FLAGGED_SHOWN * 4)):
        pages.setdefault((p.doc_id, p.section), p.ocr_confidence)
        if len(pages) == FLAGGED_SHOWN or read + 1 >= OCR_CHUNKS_READ:
            break
    shown = [
        {"doc_id": doc_id, "page": page, "confidence": conf}
        for (doc_id, page), conf in sorted(pages.items())
    ]
    return {"chunks_ocr_flagged": store.count(tier, where), "ocr_flagged": shown}


def _normalise_question(q: str) -> str:
    return " ".join(re.findall(r"\w+", q.lower()))


def _count_generator(
    into: dict[tuple[str, str | None, str | None], dict[str, Any]], info: dict[str, Any] | None
) -> None:
    if not info:
        return
    provider = info.get("provider")
    if provider is None and info.get("attempts"):
        provider = info["attempts"][0]["provider"]  # a fallback: the provider that failed first
    key = (info["kind"], provider, info.get("prompt_version"))
    row = into.setdefault(
        key,
        {
            "kind": key[0],
            "provider": key[1],
            "prompt_version": key[2],
            "asks": 0,
            "fallbacks": 0,
            "tokens_in": 0,
            "tokens_out": 0,
            "cost": 0.0,
            "sentences_dropped": 0,
        },
    )
    row["asks"] += 1
    row["fallbacks"] += bool(info.get("fallback_reason"))
    row["tokens_in"] += int(info.get("tokens_in") or 0)
    row["tokens_out"] += int(info.get("tokens_out") or 0)
    row["cost"] = round(row["cost"] + float(info.get("cost") or 0.0), 8)
    row["sentences_dropped"] += len(info.get("dropped_sentences") or [])


def hits_report(
    engine: Engine,
    catalog: Catalog,
    since: datetime,
    until: datetime,
    tiers: Collection[str] | None = None,
) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = list(
            conn.execute(
                select(query_log)
                .where((query_log.c.asked_at >= since) & (query_log.c.asked_at < until))
                .order_by(query_log.c.asked_at)
            ).mappings()
        )
    if tiers is not None:
        readable = set(tiers)
        rows = [r for r in rows if set(r["allowed_tiers"]) <= readable]
    asks = len(rows)
    answered = [r for r in rows if r["outcome"] == "answered"]
    reasons = Counter(r["refusal_reason"] for r in rows if r["outcome"] == "refused")
    tier_queried: Counter[str] = Counter()
    tier_hits: Counter[str] = Counter()
    source_retrieved: Counter[str] = Counter()
    source_cited: Counter[str] = Counter()
    doc_cited: Counter[tuple[str, str]] = Counter()
    retrieved_docs: set[tuple[str, str]] = set()
    gaps: Counter[str] = Counter()
    gap_example: dict[str, tuple[str, str]] = {}
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    generators: dict[tuple[str, str | None, str | None], dict[str, Any]] = {}
    daily: dict[str, dict[str, Any]] = {}
    for r in rows:
        for tier in r["queried_tiers"]:
            tier_queried[tier] += 1
        cited_tiers = {c["tier"] for c in r["cited"]}
        for tier in cited_tiers:
            tier_hits[tier] += 1
        for source in {c["source"] for c in r["reranked"]}:
            source_retrieved[source] += 1
        for source in {c["source"] for c in r["cited"]}:
            source_cited[source] += 1
        for key in {(c["source"], c["doc_id"]) for c in r["cited"]}:
            doc_cited[key] += 1
        retrieved_docs |= {(c["source"], c["doc_id"]) for c in r["retrieved"]}
        if r["outcome"] == "refused":
            norm = _normalise_question(r["question"])
            gaps[norm] += 1
            gap_example[norm] = (r["question"], r["refusal_reason"])
        _count_generator(generators, r["generator"])
        for stage in STAGES:
            if stage in (r["latency_ms"] or {}):
                stages[stage].append(float(r["latency_ms"][stage]))
        day = (as_utc(r["asked_at"]) or since).date().isoformat()
        bucket = daily.setdefault(
            day, {"date": day, "asks": 0, "answered": 0, "refused": 0, "totals": []}
        )
        bucket["asks"] += 1
        bucket["answered" if r["outcome"] == "answered" else "refused"] += 1
        bucket["totals"].append(float((r["latency_ms"] or {}).get("total", 0.0)))
    catalog_docs = {
        (d.source, d.doc_id) for d in catalog.all_documents() if tiers is None or d.tier in tiers
    }
    never = sorted(catalog_docs - retrieved_docs)
    return {
        "since": iso(since),
        "until": iso(until),
        "asks": asks,
        "answered": len(answered),
        "refused": asks - len(answered),
        "answer_rate": round(len(answered) / asks, 4) if asks else None,
        "refusals_by_reason": dict(reasons.most_common()),
        "tiers": [
            {
                "tier": t,
                "asks": tier_queried[t],
                "hits": tier_hits[t],
                "hit_rate": round(tier_hits[t] / tier_queried[t], 4) if tier_queried[t] else None,
            }
            for t in sorted(tier_queried, key=lambda t: -tier_queried[t])
        ],
        "sources": [
            {
                "source": s,
                "retrieved": source_retrieved[s],
                "cited": source_cited[s],
                "hit_rate": round(source_cited[s] / asks, 4) if asks else None,
            }
            for s in sorted(set(source_retrieved) | set(source_cited))
        ],
        "most_cited_documents": [
            {"source": s, "doc_id": d, "citations": n} for (s, d), n in doc_cited.most_common(10)
        ],
        "never_retrieved": {
            "count": len(never),
            "documents": [{"source": s, "doc_id": d} for s, d in never[:50]],
        },
        "knowledge_gaps": [
            {"question": gap_example[q][0], "asked": n, "refusal_reason": gap_example[q][1]}
            for q, n in gaps.most_common(10)
        ],
        "ratings": ratings_report(
            [r for r in FeedbackLog(engine).rated(since, tiers) if r.rating.rated_at < until]
        ),
        # Which answerer, provider and prompt version answered, what it cost, and how often the
        # generator fell back to the extractive answer (a changed prompt is a new row).
        "generators": sorted(generators.values(), key=lambda g: -g["asks"]),
        "cost_total": round(sum(g["cost"] for g in generators.values()), 6),
        "latency_ms": {
            stage: {"p50": _percentile(v, 50), "p95": _percentile(v, 95)}
            for stage, v in stages.items()
        },
        "daily": [
            {
                "date": b["date"],
                "asks": b["asks"],
                "answered": b["answered"],
                "refused": b["refused"],
                "answer_rate": round(b["answered"] / b["asks"], 4),
                "p95_ms": _percentile(b["totals"], 95),
            }
            for b in sorted(daily.values(), key=lambda b: b["date"])
        ],
    }
