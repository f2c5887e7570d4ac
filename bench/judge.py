"""How many candidates should the judge read? Question-level separation and cost per depth.

    python -m bench.judge [--split calib] [--depths 1 2 3 5] [--judge rag/answering/models/judge]

Uses the candidates `training.judge_data` retrieved for every dev question (our hybrid
retriever, cached in evals/out/judge/retrieved.jsonl). For each depth N, a question's score is
the judge's best logit over its top-N candidate windows; printed per set: the ROC AUC of that
score (answerable vs not; HaluEval: the question against its own passage set vs the same
question with its relevant passage removed from the candidates), the best balanced rate, and
the median / p95 milliseconds of the batched judge call.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from evals.datasets import fitz_cases, halueval_rows, judge_split
from evals.metrics import auc, percentile
from rag.answering.judge import DEFAULT_JUDGE_DIR, AnswerabilityJudge
from rag.retrieval.terms import QueryTerms


def _questions(split: str) -> list[dict[str, Any]]:
    out = [
        {
            "id": f"halueval-q{r['index']}",
            "question": r["question"],
            "set": "halueval",
            "answerable": True,
            "relevant": {f"halueval-{r['index']}"},
        }
        for r in halueval_rows()
        if judge_split("halueval", f"halueval-q{r['index']}") == split
    ]
    out += [
        {
            "id": c["id"],
            "question": c["question"],
            "set": "fitzgov",
            "answerable": c["answerable"],
            "relevant": set(c["relevant_doc_ids"]),
        }
        for c in fitz_cases()
        if judge_split("fitzgov", c["id"]) == split
    ]
    return out


def best_balanced(labels: np.ndarray, scores: np.ndarray) -> float:
    """max over thresholds of min(answer rate on positives, refusal rate on negatives)."""
    best = 0.0
    for t in np.unique(scores):
        pos = (scores[labels == 1] >= t).mean()
        neg = (scores[labels == 0] < t).mean()
        best = max(best, min(pos, neg))
    return float(best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="calib")
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 2, 3, 5])
    parser.add_argument("--judge", type=Path, default=DEFAULT_JUDGE_DIR)
    parser.add_argument("--retrieved", type=Path, default=Path("evals/out/judge/retrieved.jsonl"))
    args = parser.parse_args()
    retrieved = {r["qid"]: r["candidates"] for r in map(json.loads, args.retrieved.open())}
    judge = AnswerabilityJudge(args.judge)
    rows = []
    for q in _questions(args.split):
        cands = retrieved[q["id"]]
        rows.append((q, cands))
        if q["set"] == "halueval":
            # The same question once its passage is gone: what a near-miss corpus looks like.
            rows.append(
                ({**q, "answerable": False}, [c for c in cands if c["doc_id"] not in q["relevant"]])
            )
    report: dict[str, Any] = {"split": args.split, "command": "python -m bench.judge"}
    for depth in args.depths:
        scores, labels, sets, ms = [], [], [], []
        for q, cands in rows:
            terms = QueryTerms.of(q["question"])
            windows = []
            for c in cands[:depth]:
                a, b = judge.window(terms, c["text"])
                windows.append(c["text"][a:b])
            start = time.perf_counter()
            logits = judge.logits(q["question"], windows)
            ms.append((time.perf_counter() - start) * 1000)
            scores.append(float(logits.max()) if len(logits) else -20.0)
            labels.append(1 if q["answerable"] else 0)
            sets.append(q["set"])
        s, y, names = np.array(scores), np.array(labels), np.array(sets)
        report[f"top{depth}"] = {
            name: {
                "auc": round(auc(y[names == name], s[names == name]), 4),
                "best_balanced": round(best_balanced(y[names == name], s[names == name]), 4),
            }
            for name in ("halueval", "fitzgov")
        } | {
            "judge_ms_p50": round(percentile(ms, 50), 1),
            "judge_ms_p95": round(percentile(ms, 95), 1),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
