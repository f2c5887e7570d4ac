"""Retrieval, answer and refusal metrics over eval RESULTS rows and their dataset rows."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np


def doc_ranking(retrieved: Sequence[dict[str, Any]]) -> list[str]:
    """Document ids in rank order, each once (a document may have several chunks)."""
    seen: dict[str, None] = {}
    for r in retrieved:
        seen.setdefault(r["doc_id"], None)
    return list(seen)


def recall_at(ranking: list[str], relevant: set[str], k: int) -> float:
    return 1.0 if relevant & set(ranking[:k]) else 0.0


def mrr_at(ranking: list[str], relevant: set[str], k: int) -> float:
    for i, doc in enumerate(ranking[:k], start=1):
        if doc in relevant:
            return 1.0 / i
    return 0.0


def ndcg_at(ranking: list[str], relevant: set[str], k: int) -> float:
    dcg = sum(1.0 / math.log2(i + 1) for i, d in enumerate(ranking[:k], start=1) if d in relevant)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(k, len(relevant)) + 1))
    return dcg / ideal if ideal else 0.0


def ranking_quality(rankings: list[list[str]], relevant: list[set[str]]) -> dict[str, float]:
    """Mean recall@5, MRR@10 and nDCG@10 of document rankings against their relevant sets."""
    n = len(rankings)
    return {
        "recall@5": sum(recall_at(r, s, 5) for r, s in zip(rankings, relevant)) / n,
        "mrr@10": sum(mrr_at(r, s, 10) for r, s in zip(rankings, relevant)) / n,
        "ndcg@10": sum(ndcg_at(r, s, 10) for r, s in zip(rankings, relevant)) / n,
    }


def group_rates(scored: Sequence[tuple[float, tuple[str, int]]], t: float) -> dict[str, float]:
    """Per (set, answerable) group of (score, (set, label)) decisions at threshold `t`: the
    answer rate of answerable questions, the refusal recall of the others."""
    rates: dict[str, float] = {}
    for group in sorted({g for _, g in scored}):
        members = [s for s, g in scored if g == group]
        ok = sum(1 for s in members if (s >= t) == bool(group[1]))
        key = f"{group[0]} {'answer_rate' if group[1] else 'refusal_recall'}"
        rates[key] = round(ok / len(members), 4)
    return rates


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = (len(ordered) - 1) * p / 100.0
    low, high = math.floor(index), math.ceil(index)
    return ordered[low] + (ordered[high] - ordered[low]) * (index - low)


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def contains_reference(answer: str | None, reference: str | None) -> bool:
    return bool(answer and reference and _norm(reference) in _norm(answer))


def summarize(results: list[dict[str, Any]], dataset: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The report: retrieval quality on answerable rows, refusals, answers, citations, latency."""
    answerable = [r for r in results if dataset[r["id"]]["answerable"]]
    unanswerable = [r for r in results if not dataset[r["id"]]["answerable"]]
    retrieval: dict[str, list[float]] = {
        "recall@5": [],
        "recall@10": [],
        "mrr@10": [],
        "ndcg@10": [],
    }
    cited_relevant = 0
    contains = []
    for r in answerable:
        relevant = set(dataset[r["id"]]["relevant_doc_ids"])
        ranking = doc_ranking(r["retrieved"])
        retrieval["recall@5"].append(recall_at(ranking, relevant, 5))
        retrieval["recall@10"].append(recall_at(ranking, relevant, 10))
        retrieval["mrr@10"].append(mrr_at(ranking, relevant, 10))
        retrieval["ndcg@10"].append(ndcg_at(ranking, relevant, 10))
        if not r["refused"] and relevant & {c["doc_id"] for c in r["citations"]}:
            cited_relevant += 1
        reference = dataset[r["id"]].get("reference_answer")
        if reference and not r["refused"]:
            contains.append(contains_reference(r["answer"], reference))
    refused = [r for r in results if r["refused"]]
    true_refusals = sum(1 for r in unanswerable if r["refused"])
    answered = [r for r in results if not r["refused"]]
    valid = [r.get("citations_valid", False) for r in answered]
    latencies = [r["latency_ms"]["total"] for r in results]

    def mean(xs: Sequence[float]) -> float | None:
        return round(sum(xs) / len(xs), 4) if xs else None

    return {
        "questions": len(results),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "retrieval": {k: mean(v) for k, v in retrieval.items()},
        "refusal": {
            "precision": round(true_refusals / len(refused), 4) if refused else None,
            "recall": round(true_refusals / len(unanswerable), 4) if unanswerable else None,
            "refused": len(refused),
        },
        "answers": {
            "answer_rate": mean([0.0 if r["refused"] else 1.0 for r in answerable]),
            "answered_citing_relevant": round(cited_relevant / len(answerable), 4)
            if answerable
            else None,
            "contains_reference": mean([1.0 if c else 0.0 for c in contains]),
            "citation_validity": mean([1.0 if v else 0.0 for v in valid]),
        },
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 2),
            "p95": round(percentile(latencies, 95), 2),
        },
        "generation": _generation(answered),
        **(
            {"behaviour": behaviour(results, dataset)}
            if any("kind" in d for d in dataset.values())
            else {}
        ),
    }


# The reasons a question without evidence may be refused with; the others (citation_check_failed,
# no_permitted_tiers) mean something else went wrong.
EVIDENCE_REFUSALS = ("no_evidence", "not_covered", "low_confidence")


def behaved(result: dict[str, Any], row: dict[str, Any]) -> str | None:
    """Why a golden-set answer misbehaved, or None: answerable questions are answered citing a
    relevant document; the rest are refused for lack of evidence; nothing from a tier outside
    the row's `tiers` (when it names them) is retrieved, cited or shown."""
    if row.get("tiers"):
        shown = result["citations"] + result["retrieved"] + result.get("closest_sources", [])
        leaked = sorted({c["tier"] for c in shown} - set(row["tiers"]))
        if leaked:
            return f"shows tier(s) {', '.join(leaked)} outside {row['tiers']}"
    if row["answerable"]:
        if result["refused"]:
            return f"refused ({result['refusal_reason']})"
        if not set(row["relevant_doc_ids"]) & {c["doc_id"] for c in result["citations"]}:
            return "answered without citing a relevant document"
        return None
    if not result["refused"]:
        return "answered: " + (result["answer"] or "")[:80]
    if result["refusal_reason"] not in EVIDENCE_REFUSALS:
        return f"refused for the wrong reason ({result['refusal_reason']})"
    return None


def behaviour(results: list[dict[str, Any]], dataset: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per-kind share of golden-set questions that behaved, and what the others did."""
    kinds: dict[str, list[float]] = {}
    misbehaved = {}
    for r in results:
        row = dataset[r["id"]]
        problem = behaved(r, row)
        kinds.setdefault(row.get("kind", "other"), []).append(0.0 if problem else 1.0)
        if problem:
            misbehaved[r["id"]] = f"{row['question']} -> {problem}"
    scores = [x for xs in kinds.values() for x in xs]
    return {
        "behaved": round(sum(scores) / len(scores), 4),
        "by_kind": {k: round(sum(v) / len(v), 4) for k, v in sorted(kinds.items())},
        "misbehaved": misbehaved,
    }


def _generation(answered: list[dict[str, Any]]) -> dict[str, Any]:
    """How answers were produced: generated vs extractive, fallbacks, dropped sentences, cost."""
    generators = [r["generator"] for r in answered if r.get("generator")]
    return {
        "llm_answers": sum(g["kind"] == "llm" for g in generators),
        "extractive_answers": sum(g["kind"] == "extractive" for g in generators),
        "fallbacks": sum(bool(g.get("fallback_reason")) for g in generators),
        "sentences_dropped": sum(len(g.get("dropped_sentences") or []) for g in generators),
        "tokens_in": sum(int(g.get("tokens_in") or 0) for g in generators),
        "tokens_out": sum(int(g.get("tokens_out") or 0) for g in generators),
        "cost": round(sum(float(g.get("cost") or 0.0) for g in generators), 6),
    }


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by ranks (ties share their mean rank)."""
    from scipy.stats import rankdata

    pos = labels == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
