"""Reading pairs in the product's own register: policies, handbooks, FAQs, timetables and price
tables, for the evidence model (`training.train_judge` learns from them beside HaluEval and
fitz-gov).

    python -m training.reading_data --out evals/out/reading

The documents (`training/reading/docs`: 17 policies, handbooks, FAQs, timetables and price
tables) and their 289 questions (`training/reading/questions.jsonl`) were written for training
only: they share no document with the product-register evaluation set
(`evals/datasets/register`), which is never trained on. Split by document: `VAL_DOCS` give
the model card's figures, the rest train.

The documents go through the real ingestion path (the chunks are the ones served, tables read
as rows with their headers); every question is then paired with chunks by rule:
- `positive`: the chunk holding the question's answer (`answer`, verbatim);
- `answer_dropped`: that chunk with the answering sentence taken out, so what is left is the
  heading and the neighbouring facts: a heading that matches is not an answer;
- `other_chunk`: the hybrid retriever's other top chunks (the same document's other sections
  first: the neighbouring fact is the near miss users notice);
- `qualifier_swap`: the question with one of its qualifiers (a group, place, plan, document
  kind) replaced by another of its kind that the document never mentions, against the positive
  chunk ("What is the hotel limit in London?" -> "... in Madrid?");
- `near_miss`, `never`: the hand-written questions the documents do not answer, against their
  top retrieved chunks.
Deterministic: no clock, randomness seeded by the question.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.answering.sentences import split_sentences
from training.judge_data import Windows, base_tokenizer_file, seeded_random, write_pairs

READING = Path(__file__).with_name("reading")
DOCUMENTS = READING / "docs"
QUESTIONS = READING / "questions.jsonl"
VAL_DOCS = frozenset({"clinic-hours.md", "car-park-notice.md"})
TIER = "internal"
RETRIEVE = 6
OTHER_CHUNKS = 3
UNANSWERED_CHUNKS = 3

# Qualifiers of the kind the product's questions hinge on, by kind. A swap replaces a word of
# one kind with another of the same kind, so the question stays well formed but asks about
# something its document does not cover.
QUALIFIERS: dict[str, tuple[str, ...]] = {
    "group": (
        "employees",
        "contractors",
        "interns",
        "managers",
        "engineers",
        "students",
        "children",
        "adults",
        "seniors",
        "visitors",
        "teachers",
        "members",
        "staff",
        "patients",
        "parents",
        "fathers",
        "mothers",
        "apprentices",
        "volunteers",
        "guests",
        "drivers",
        "customers",
    ),
    "place": (
        "London",
        "Dublin",
        "Paris",
        "Madrid",
        "Berlin",
        "Glasgow",
        "Leeds",
        "Cork",
        "Lisbon",
        "Vienna",
        "Northgate",
        "Riverside",
        "Eastfield",
        "Harlow",
        "Bristol",
        "Manchester",
    ),
    "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "thing": (
        "books",
        "DVDs",
        "magazines",
        "audiobooks",
        "invoices",
        "contracts",
        "laptops",
        "flights",
        "hotels",
        "meals",
        "trains",
        "taxis",
        "cars",
        "bicycles",
        "motorcycles",
    ),
    "plan": ("Free", "Team", "Business", "Enterprise", "Premium", "Starter"),
}


def questions() -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line]
    for i, row in enumerate(rows):
        row["id"] = f"reading-q{i:03d}"
        row["split"] = "val" if row["doc"] in VAL_DOCS else "train"
    return rows


def _mentions(text: str, word: str) -> bool:
    stem = word.lower().rstrip("s")
    return re.search(rf"\b{re.escape(stem)}", text.lower()) is not None


def swap_qualifier(question: str, document: str, seed: str) -> str | None:
    """The question with one qualifier it shares with its document replaced by another of the
    same kind the document never mentions; None when it has none."""
    rng = seeded_random("qualifier", seed)
    found = []
    for kind, words in QUALIFIERS.items():
        for word in words:
            if re.search(rf"\b{re.escape(word)}\b", question) and _mentions(document, word):
                found.append((kind, word))
    if not found:
        return None
    kind, word = rng.choice(sorted(found))
    pool = [w for w in QUALIFIERS[kind] if w != word and not _mentions(document, w)]
    if not pool:
        return None
    return re.sub(rf"\b{re.escape(word)}\b", rng.choice(pool), question, count=1)


def drop_sentence(text: str, answer: str) -> str | None:
    """`text` without the sentences holding `answer`, its layout (heading, paragraphs) kept;
    None when nothing of substance is left."""
    spans = [(a, b) for a, b in split_sentences(text) if answer in text[a:b]]
    if not spans:
        return None
    left = text
    for a, b in reversed(spans):
        left = left[:a] + left[b:]
    left = re.sub(r"[ \t]+", " ", left)
    left = re.sub(r"\n[ \t]*(\n[ \t]*)+", "\n\n", left).strip()
    if answer in left or len(left.split()) < 3:
        return None
    return left


def _chunks(out: Path) -> tuple[dict[str, list[str]], dict[str, list[dict[str, str]]]]:
    """Every chunk per document, and the top retrieved chunks per question, through the real
    ingestion and retrieval path."""
    from ingestion.runner import IngestRequest
    from service.container import Services
    from service.ingest import make_ingestor

    services = Services.scratch(out)
    try:
        job = make_ingestor(services).run(
            IngestRequest("reading", TIER, DOCUMENTS, "3650d", "reading-data")
        )
        if job.status != "succeeded":
            raise RuntimeError(f"ingesting the reading documents failed: {job.to_dict()}")
        by_doc: dict[str, list[tuple[int, str]]] = {}
        for payload in services.store.scroll(TIER):
            by_doc.setdefault(payload.doc_id, []).append((payload.chunk_index, payload.text))
        chunks = {d: [t for _, t in sorted(v)] for d, v in by_doc.items()}
        retrieved = {
            q["id"]: [
                {"doc_id": h.payload.doc_id, "text": h.payload.text}
                for h in services.retriever.retrieve(q["question"], [TIER], RETRIEVE)
            ]
            for q in questions()
        }
    finally:
        services.close()
    return chunks, retrieved


def reading_pairs(
    rows: list[dict[str, Any]],
    chunks: dict[str, list[str]],
    retrieved: dict[str, list[dict[str, str]]],
    windows: Windows,
) -> Iterator[dict[str, Any]]:
    for row in rows:
        question = row["question"]
        base = {"split": row["split"], "set": "reading", "qid": row["id"]}

        def pair(
            text: str, label: int, kind: str, asked: str = question, base: dict[str, Any] = base
        ) -> dict[str, Any]:
            passage = windows.cut(asked, text)
            return {**base, "question": asked, "passage": passage, "label": label, "kind": kind}

        top = retrieved[row["id"]]
        answer = row.get("answer")
        if not answer:
            for c in top[:UNANSWERED_CHUNKS]:
                yield pair(c["text"], 0, row["kind"])
            continue
        holding = [t for t in chunks[row["doc"]] if answer in t]
        if not holding:
            raise ValueError(f"{row['id']}: no chunk of {row['doc']} holds {answer!r}")
        positive = holding[0]
        yield pair(positive, 1, "positive")
        dropped = drop_sentence(positive, answer)
        if dropped:
            yield pair(dropped, 0, "answer_dropped")
        others = [c for c in top if answer not in c["text"]]
        others.sort(key=lambda c: c["doc_id"] != row["doc"])  # the same document's first
        for c in others[:OTHER_CHUNKS]:
            yield pair(c["text"], 0, "other_chunk")
        document = "\n".join(chunks[row["doc"]])
        swapped = swap_qualifier(question, document, row["id"])
        if swapped:
            yield pair(positive, 0, "qualifier_swap", asked=swapped)


def build(out: Path, progress: Any = print) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    chunks, retrieved = _chunks(out)
    pairs = list(reading_pairs(questions(), chunks, retrieved, Windows(base_tokenizer_file())))
    return write_pairs(pairs, out, ("split", "kind", "label"), progress)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("evals/out/reading"))
    args = parser.parse_args()
    build(args.out)


if __name__ == "__main__":
    main()
