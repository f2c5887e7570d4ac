"""Claim-verification pairs for the answer verifier, from the HaluEval development rows only.

    python -m training.claim_data --out evals/out/verifier

The verifier reads (question + one answer sentence, passage) and gives P(the passage supports
the sentence). Deterministic (no clock, no unseeded randomness); split by question with the
judge's own split (`evals.datasets.judge_split`), so a question in the judge's val split is in
the verifier's val split too, and the CI gate's rows are left out. Per question:
- `right_answer` (1): HaluEval's right answer against its knowledge passage;
- `hallucinated` (0): HaluEval's hallucinated answer against the same passage;
- `passage_sentence` (1): the passage's own sentence that states the right answer: a claim in
  sentence form, as a generator writes, so supported claims are not all short;
- `swapped_sentence` (0): that sentence with the answer replaced by another question's answer
  the passage never mentions: sentence form, one wrong name or number;
- `other_passage` (0): the right answer against the passage of another question that shares
  the most terms with it, where the answer is absent: a citation of the wrong passage;
- `restated_right` (1): the hallucinated answer with its one made-up name or number replaced
  by the right answer: a sentence that restates the question, as generators write, supported;
  its twin, the hallucinated answer, differs only in that name;
- `short_wrong` (0): another question's short answer against this passage.
The last two keep form from giving the label away: without them short claims were nearly all
supported and question-restating sentences nearly all hallucinated, and a model learned that
instead of reading the passage (it rejected "Passwords must be at least 14 characters long."
against the policy saying so).
Passages are cut with the judge's `passage_window` around the claim, as at serving time.

Writes `pairs.jsonl` ({"split", "set", "qid", "question", "claim", "passage", "label",
"kind"}) and `summary.json`.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evals.datasets import halueval_rows, judge_split
from rag.answering.verify import claim_text
from rag.retrieval.bm25 import tokenize
from rag.retrieval.terms import QUESTION_WORDS
from training.judge_data import (
    SENTENCE_END,
    Windows,
    base_tokenizer_file,
    seeded_random,
    write_pairs,
)


def _answer_sentence(passage: str, answer: str) -> str | None:
    hits = [s.strip() for s in SENTENCE_END.split(passage) if answer.lower() in s.lower()]
    return hits[0] if hits and len(hits[0].split()) >= 4 else None


_SPAN = re.compile(
    r"(?:[A-Z][\w'’-]*|\d[\d,.]*\d|\d)(?:\s+(?:of|the|de|and|&|[A-Z][\w'’-]*|\d[\d,.]*\d|\d))*"
)


def _restate_right(question: str, passage: str, wrong: str, right: str) -> str | None:
    """`wrong` with its one name or number that neither the question nor the passage has
    replaced by `right`; None unless there is exactly one such span and `right` is short."""
    if len(right.split()) > 6 or right.lower() in ("yes", "no"):
        return None
    asked = set(tokenize(question))
    spans = [
        m
        for m in _SPAN.finditer(wrong)
        if m.start() > 0
        and tokenize(m.group(0))
        and not set(tokenize(m.group(0))) <= asked
        and m.group(0).lower() not in passage.lower()
    ]
    if len(spans) != 1:
        return None
    return wrong[: spans[0].start()] + right + wrong[spans[0].end() :]


def _swap_answer(
    sentence: str, answer: str, passage: str, donors: list[str], rng: Any
) -> str | None:
    numeric = bool(re.fullmatch(r"[\d,.\s]+", answer))
    pool = [
        d
        for d in donors
        if bool(re.fullmatch(r"[\d,.\s]+", d)) == numeric
        and d.lower() not in passage.lower()
        and d.lower() != answer.lower()
    ]
    if not pool:
        return None
    return re.sub(re.escape(answer), rng.choice(pool), sentence, flags=re.I)


class _Neighbours:
    """The other passage sharing the most content terms with a text (a small inverted index)."""

    def __init__(self, passages: list[str]) -> None:
        self.passages = passages
        self.index: dict[str, list[int]] = defaultdict(list)
        for i, p in enumerate(passages):
            for t in set(tokenize(p)) - QUESTION_WORDS:
                self.index[t].append(i)

    def nearest(self, text: str, exclude: int, answer: str) -> str | None:
        votes: Counter[int] = Counter()
        for t in set(tokenize(text)) - QUESTION_WORDS:
            postings = self.index.get(t, [])
            if len(postings) < 200:  # common terms say little and cost much
                votes.update(postings)
        for i, _ in sorted(votes.items(), key=lambda kv: (-kv[1], kv[0])):
            if i != exclude and answer.lower() not in self.passages[i].lower():
                return self.passages[i]
        return None


def claim_pairs(rows: list[dict[str, Any]], windows: Windows) -> Iterator[dict[str, Any]]:
    donors = sorted(
        {r["right_answer"].strip() for r in rows if len(r["right_answer"].split()) <= 4}
    )
    neighbours = _Neighbours([r["knowledge"] for r in rows])
    for r in rows:
        qid = f"halueval-q{r['index']}"
        split = judge_split("halueval", qid)
        if split == "gate":
            continue
        question, passage = r["question"], r["knowledge"]
        right, wrong = r["right_answer"].strip(), r["hallucinated_answer"].strip()
        base = {"split": split, "set": "halueval", "qid": qid, "question": question}

        def pair(claim: str, text: str, label: int, kind: str, base: dict[str, Any] = base):
            cut = windows.cut(claim_text(base["question"], claim), text)
            return {**base, "claim": claim, "passage": cut, "label": label, "kind": kind}

        yield pair(right, passage, 1, "right_answer")
        yield pair(wrong, passage, 0, "hallucinated")
        sentence = _answer_sentence(passage, right)
        if sentence:
            yield pair(sentence, passage, 1, "passage_sentence")
            swapped = _swap_answer(
                sentence, right, passage, donors, seeded_random("claim-swap", qid)
            )
            if swapped:
                yield pair(swapped, passage, 0, "swapped_sentence")
        other = neighbours.nearest(f"{question} {right}", r["index"], right)
        if other:
            yield pair(right, other, 0, "other_passage")
        restated = _restate_right(question, passage, wrong, right)
        if restated:
            yield pair(restated, passage, 1, "restated_right")
        donor = _swap_answer(right, right, passage, donors, seeded_random("claim-short", qid))
        if donor:
            yield pair(donor, passage, 0, "short_wrong")


def build(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    pairs = list(claim_pairs(list(halueval_rows()), Windows(base_tokenizer_file())))
    return write_pairs(pairs, out, ("split", "kind"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("evals/out/verifier"))
    build(parser.parse_args().out)


if __name__ == "__main__":
    main()
