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

from rag.ops.catalog import Catalog, DocumentState, SourceState
from rag.ops.db import as_utc, query_log
from rag.ops.feedback import FeedbackLog, RatedAsk, readable_by
from rag.ops.jobs import NOT_READ, JobLog
from rag.ops.report_models import (
    CitedDocument,
    DailyHits,
    DocumentRef,
    FailedFile,
    FlaggedChunk,
    FreshnessReport,
    GeneratorUsage,
    HitsReport,
    KnowledgeGap,
    LastRead,
    MissedAnswer,
    NeverRetrieved,
    OcrPage,
    RatedDocument,
    RatedQuestion,
    RatingCounts,
    RatingsReport,
    SourceFreshness,
    SourceHits,
    SourceRatings,
    StageLatency,
    TierFreshness,
    TierHits,
    TierRatings,
)
from rag.ops.schedules import is_overdue, next_run
from rag.retrieval.store import ChunkFilter, VectorStore
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
) -> FreshnessReport:
    by_source: dict[str, list[DocumentState]] = defaultdict(list)
    for doc in catalog.all_documents():
        by_source[doc.source].append(doc)
    sources = [
        _source_freshness(src, by_source.get(src.name, []), jobs, store, now)
        for src in catalog.sources()
        if tiers is None or src.tier in tiers
    ]
    tier_rows = []
    for tier in store.tiers:
        if tiers is not None and tier not in tiers:
            continue
        rows = [s for s in sources if s.tier == tier]
        tier_rows.append(
            TierFreshness(
                tier=tier,
                sources=len(rows),
                documents=sum(s.documents for s in rows),
                chunks=store.count(tier),
                chunks_expiring_24h=sum(s.chunks_expiring_24h for s in rows),
                chunks_expired_unswept=store.count(tier, ChunkFilter(expired_at=now)),
                chunks_flagged=store.count(tier, ChunkFilter(flagged=True)),
                chunks_ocr_flagged=store.count(tier, ChunkFilter(ocr_flagged=True)),
            )
        )
    return FreshnessReport(
        generated_at=iso(now),
        overdue_sources=[s.source for s in sources if s.overdue],
        sources=sources,
        tiers=tier_rows,
    )


def _source_freshness(
    src: SourceState, docs: list[DocumentState], jobs: JobLog, store: VectorStore, now: datetime
) -> SourceFreshness:
    modified = [d.source_modified_at for d in docs]
    ages: Counter[str] = Counter()
    for d in docs:
        age = now - d.source_modified_at
        ages[next(label for label, limit in AGE_BUCKETS if age < limit)] += 1
    last = jobs.recent(limit=1, source=src.name)
    last_job = jobs.get(last[0].job_id) if last else None
    indexed = src.tier in store.tiers
    soon = now + timedelta(hours=24)

    def count(**where: Any) -> int:
        return store.count(src.tier, ChunkFilter(source=src.name, **where)) if indexed else 0

    files = last_job.files if last_job else []
    unread = sum(f.status == "unchanged" and (f.reason or "").startswith(NOT_READ) for f in files)
    return SourceFreshness(
        source=src.name,
        tier=src.tier,
        kind=src.kind,
        path=src.path,
        commit=src.cursor if src.kind == "git" else None,
        ttl=src.ttl,
        schedule=src.schedule,
        documents=len(docs),
        chunks=sum(len(d.chunk_ids) for d in docs),
        newest_source_date=_iso(max(modified)) if modified else None,
        oldest_source_date=_iso(min(modified)) if modified else None,
        last_success_at=_iso(src.last_success_at),
        last_failure_at=_iso(src.last_failure_at),
        last_error=src.last_error,
        next_run_at=_iso(next_run(src.schedule, src.last_success_at, now))
        if src.schedule
        else None,
        overdue=source_overdue(src, now),
        chunks_expiring_24h=sum(len(d.chunk_ids) for d in docs if now < d.expires_at <= soon),
        chunks_expired_unswept=count(expired_at=now),
        chunks_flagged=count(flagged=True),
        flagged=_flagged(store, src.tier, src.name) if indexed else [],
        chunks_ocr_flagged=count(ocr_flagged=True),
        ocr_flagged=_ocr_flagged(store, src.tier, src.name) if indexed else [],
        last_job=last_job.to_dict(with_files=False) if last_job else None,
        last_read=LastRead(
            read=sum(f.status in ("added", "updated", "unchanged") for f in files) - unread,
            not_read=unread,
            failed=sum(f.status == "failed" for f in files),
        )
        if last_job
        else None,
        last_failures=[
            FailedFile(path=f.path, reason=f.reason) for f in files if f.status == "failed"
        ],
        age_distribution={label: ages.get(label, 0) for label, _ in AGE_BUCKETS},
    )


FLAGGED_SHOWN = 5


def _flagged(store: VectorStore, tier: str, source: str) -> list[FlaggedChunk]:
    """The first few of the source's chunks flagged at ingestion as trying to instruct a model,
    with their reason (an operator reads these before trusting the source)."""
    where = ChunkFilter(source=source, flagged=True)
    shown: list[FlaggedChunk] = []
    for p in store.scroll(tier, where, batch=FLAGGED_SHOWN):
        shown.append(FlaggedChunk(doc_id=p.doc_id, chunk_id=p.chunk_id, reason=p.injection))
        if len(shown) == FLAGGED_SHOWN:
            break
    return shown


# Flagged chunks read to find the distinct pages among them (a page is a few chunks).
OCR_CHUNKS_READ = 200


def _ocr_flagged(store: VectorStore, tier: str, source: str) -> list[OcrPage]:
    """The first of the source's pages read by OCR below the confidence floor, with their
    confidence (indexed and served; an operator checks them against the original)."""
    where = ChunkFilter(source=source, ocr_flagged=True)
    pages: dict[tuple[str, str], float | None] = {}
    for read, p in enumerate(store.scroll(tier, where, batch=FLAGGED_SHOWN * 4)):
        pages.setdefault((p.doc_id, p.section), p.ocr_confidence)
        if len(pages) == FLAGGED_SHOWN or read + 1 >= OCR_CHUNKS_READ:
            break
    return [
        OcrPage(doc_id=doc_id, page=page, confidence=conf)
        for (doc_id, page), conf in sorted(pages.items())
    ]


# Ratings that say the service got an ask wrong.
BAD_RATINGS = ("wrong", "should_refuse", "should_answer")
RATED_SHOWN = 10


def ratings_report(rated: list[RatedAsk]) -> RatingsReport:
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
    return RatingsReport(
        total=len(rated),
        by_rating=RatingCounts(**Counter(r.rating.rating for r in rated)),
        per_tier=[TierRatings(tier=t, **c) for t, c in sorted(per_tier.items())],
        per_source=[SourceRatings(source=s, **c) for s, c in sorted(per_source.items())],
        worst_questions=[
            RatedQuestion(question=example[q], bad_ratings=n)
            for q, n in bad_questions.most_common(RATED_SHOWN)
        ],
        worst_documents=[
            RatedDocument(source=s, doc_id=d, bad_ratings=n)
            for (s, d), n in bad_docs.most_common(RATED_SHOWN)
        ],
        should_answer=[
            MissedAnswer(
                question=r.ask["question"],
                refusal_reason=r.ask["refusal_reason"],
                correct_doc_id=r.rating.correct_doc_id,
                trace_id=r.rating.trace_id,
            )
            for r in rated
            if r.rating.rating == "should_answer" and r.ask["outcome"] == "refused"
        ][-RATED_SHOWN:],
    )


def _normalise_question(q: str) -> str:
    return " ".join(re.findall(r"\w+", q.lower()))


GeneratorKey = tuple[str, str | None, str | None]


def _count_generator(into: dict[GeneratorKey, GeneratorUsage], info: dict[str, Any] | None) -> None:
    if not info:
        return
    provider = info.get("provider")
    if provider is None and info.get("attempts"):
        provider = info["attempts"][0]["provider"]  # a fallback: the provider that failed first
    key = (info["kind"], provider, info.get("prompt_version"))
    row = into.setdefault(key, GeneratorUsage(kind=key[0], provider=key[1], prompt_version=key[2]))
    row.asks += 1
    row.fallbacks += bool(info.get("fallback_reason"))
    row.tokens_in += int(info.get("tokens_in") or 0)
    row.tokens_out += int(info.get("tokens_out") or 0)
    row.cost = round(row.cost + float(info.get("cost") or 0.0), 8)
    row.sentences_dropped += len(info.get("dropped_sentences") or [])


class _Tally:
    """What the hits report counts over the asks of its window, one ask at a time."""

    def __init__(self) -> None:
        self.answered = 0
        self.reasons: Counter[str] = Counter()
        self.tier_queried: Counter[str] = Counter()
        self.tier_hits: Counter[str] = Counter()
        self.source_retrieved: Counter[str] = Counter()
        self.source_cited: Counter[str] = Counter()
        self.doc_cited: Counter[tuple[str, str]] = Counter()
        self.retrieved_docs: set[tuple[str, str]] = set()
        self.gaps: Counter[str] = Counter()
        self.gap_example: dict[str, tuple[str, str]] = {}
        self.stages: dict[str, list[float]] = {s: [] for s in STAGES}
        self.generators: dict[GeneratorKey, GeneratorUsage] = {}
        self.daily: dict[str, list[tuple[bool, float]]] = defaultdict(list)

    def add(self, r: Any, day: str) -> None:
        self.tier_queried.update(r["queried_tiers"])
        self.tier_hits.update({c["tier"] for c in r["cited"]})
        self.source_retrieved.update({c["source"] for c in r["reranked"]})
        self.source_cited.update({c["source"] for c in r["cited"]})
        self.doc_cited.update({(c["source"], c["doc_id"]) for c in r["cited"]})
        self.retrieved_docs |= {(c["source"], c["doc_id"]) for c in r["retrieved"]}
        self.answered += r["outcome"] == "answered"
        if r["outcome"] == "refused":
            self.reasons[r["refusal_reason"]] += 1
            norm = _normalise_question(r["question"])
            self.gaps[norm] += 1
            self.gap_example[norm] = (r["question"], r["refusal_reason"])
        _count_generator(self.generators, r["generator"])
        latency = r["latency_ms"] or {}
        for stage in STAGES:
            if stage in latency:
                self.stages[stage].append(float(latency[stage]))
        self.daily[day].append((r["outcome"] == "answered", float(latency.get("total", 0.0))))


def hits_report(
    engine: Engine,
    catalog: Catalog,
    since: datetime,
    until: datetime,
    tiers: Collection[str] | None = None,
) -> HitsReport:
    rows = _asks(engine, since, until, tiers)
    t = _Tally()
    for r in rows:
        t.add(r, (as_utc(r["asked_at"]) or since).date().isoformat())
    asks = len(rows)
    answered = t.answered
    catalog_docs = {
        (d.source, d.doc_id) for d in catalog.all_documents() if tiers is None or d.tier in tiers
    }
    never = sorted(catalog_docs - t.retrieved_docs)
    return HitsReport(
        since=iso(since),
        until=iso(until),
        asks=asks,
        answered=answered,
        refused=asks - answered,
        answer_rate=_rate(answered, asks),
        refusals_by_reason=dict(t.reasons.most_common()),
        tiers=[
            TierHits(tier=x, asks=n, hits=t.tier_hits[x], hit_rate=_rate(t.tier_hits[x], n))
            for x, n in t.tier_queried.most_common()
        ],
        sources=[
            SourceHits(
                source=s,
                retrieved=t.source_retrieved[s],
                cited=t.source_cited[s],
                hit_rate=_rate(t.source_cited[s], asks),
            )
            for s in sorted(set(t.source_retrieved) | set(t.source_cited))
        ],
        most_cited_documents=[
            CitedDocument(source=s, doc_id=d, citations=n)
            for (s, d), n in t.doc_cited.most_common(10)
        ],
        never_retrieved=NeverRetrieved(
            count=len(never), documents=[DocumentRef(source=s, doc_id=d) for s, d in never[:50]]
        ),
        knowledge_gaps=[
            KnowledgeGap(question=t.gap_example[q][0], asked=n, refusal_reason=t.gap_example[q][1])
            for q, n in t.gaps.most_common(10)
        ],
        ratings=ratings_report(
            [r for r in FeedbackLog(engine).rated(since, tiers) if r.rating.rated_at < until]
        ),
        generators=sorted(t.generators.values(), key=lambda g: -g.asks),
        cost_total=round(sum(g.cost for g in t.generators.values()), 6),
        latency_ms={
            stage: StageLatency(p50=_percentile(v, 50), p95=_percentile(v, 95))
            for stage, v in t.stages.items()
        },
        daily=[
            DailyHits(
                date=day,
                asks=len(outcomes),
                answered=sum(ok for ok, _ in outcomes),
                refused=sum(not ok for ok, _ in outcomes),
                answer_rate=round(sum(ok for ok, _ in outcomes) / len(outcomes), 4),
                p95_ms=_percentile([ms for _, ms in outcomes], 95),
            )
            for day, outcomes in sorted(t.daily.items())
        ],
    )


def _asks(
    engine: Engine, since: datetime, until: datetime, tiers: Collection[str] | None
) -> list[Any]:
    """The window's asks that a reader of `tiers` may see (made with a key reading no more)."""
    with engine.connect() as conn:
        rows = list(
            conn.execute(
                select(query_log)
                .where((query_log.c.asked_at >= since) & (query_log.c.asked_at < until))
                .order_by(query_log.c.asked_at)
            ).mappings()
        )
    return [r for r in rows if readable_by(r["allowed_tiers"], tiers)]


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
