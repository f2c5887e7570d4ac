"""The answer verifier: does a cited passage support one sentence of a generated answer?

No NLI model ships in a reachable package, so the verifier is trained here the way the
answerability judge is (`python -m training.train_verifier`, model card
`rag/answering/models/verifier/MODEL_CARD.md`): MiniLM-L6 with a one-logit head, reading
(question + sentence, passage window) and giving P(the passage supports the sentence), shipped
as int8 ONNX and run by the judge's own cross-encoder runtime. Beside the model, two rules:
- overlap: a sentence that states a name or number that neither its cited passages nor the
  question contain is unsupported, whatever the model says (a fabricated date is the commonest
  hallucination, and the one a small model misses most);
- restatement: a sentence of several words of its own (beyond the question's) nearly all found
  in its cited passages is supported even where the model doubts it. The model learned
  HaluEval's trivia well and reads other prose poorly (it rates a policy's own sentence against
  that policy below its threshold); word overlap cannot judge a short answer ("Paris" against
  a passage naming Paris and Lyon), so it only speaks for longer sentences. Its two numbers are
  chosen on the calib split by the training command and kept in `verifier.json`;
- quote: a sentence that is a verbatim or near-verbatim quote of a cited passage (the same
  words in the same order, function words, case and number formatting aside) is supported. No
  model should have to learn that a passage supports its own words; the shipped one rated a
  policy's own sentence 0.06. Negations are never function words here: "may not carry over"
  does not quote "may carry over".

    verifier = shared_verifier()
    check = verifier.check("When was it founded?", "It was founded in 1844.", ["... in 1844 ..."])
    check.supported, check.probability, check.missing
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.answering.judge import AnswerabilityJudge
from rag.retrieval.bm25 import tokenize
from rag.retrieval.terms import QueryTerms

DEFAULT_VERIFIER_DIR = Path(__file__).with_name("models") / "verifier"
VERIFIER_CONFIG = "verifier.json"


def claim_text(question: str, claim: str) -> str:
    """The verifier's first text: the question gives a sentence its subject ("It was founded in
    1844." founded what?). Training (`training.claim_data`) builds its pairs with this too."""
    return f"{question} {claim}"


def unsupported_specifics(question: str, claim: str, passages: Sequence[str]) -> list[str]:
    """The claim's names and numbers that neither the passages nor the question contain."""
    return _unsupported(question, claim, _terms(passages))


def restated_terms(question: str, claim: str, passages: Sequence[str]) -> tuple[int, float]:
    """How many content terms the claim adds to the question, and the share of them found in
    the passages."""
    return _restated(question, claim, _terms(passages))


# Words a near-verbatim quote may add, drop or change. Negations (no, not, never, without) are
# deliberately absent: they reverse what a sentence says.
QUOTE_FUNCTION_WORDS = frozenset(
    "a an the of to in on at for by with and or is are was were be been being it its this that "
    "these those as from per each s".split()  # "s": the possessive of "Woman's"
)
# A quote must carry this many words beyond function words: a name or noun phrase copied from
# a passage ("Matilda Bay Brewing Company") is an answer fragment, not a claim the passage
# supports. HaluEval calib: no hallucinated answer quotes its passage at 4 words or more (3 do
# at 3); 5 keeps a margin, since 2 val fragments have 4 words.
QUOTE_MIN_WORDS = 5
_QUOTE_WORD = re.compile(r"\d+(?:[.,:]\d+)*|\w+")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?:\D|$))")


def quote_words(text: str) -> list[str]:
    """A text's words for quote matching: case-folded, function words dropped, numbers in one
    format (`1,000` -> `1000`, `4.50` -> `4.5`)."""
    words = []
    for word in _QUOTE_WORD.findall(unicodedata.normalize("NFKC", text).casefold()):
        if word[0].isdigit():
            word = _THOUSANDS.sub("", word)
            if re.fullmatch(r"\d+\.\d+", word):
                word = word.rstrip("0").rstrip(".")
        elif word in QUOTE_FUNCTION_WORDS:
            continue
        words.append(word)
    return words


def quotes(claim: str, passages: Sequence[str]) -> bool:
    """The claim is a verbatim or near-verbatim quote of one of the passages."""
    words = quote_words(claim)
    n = len(words)
    if n < QUOTE_MIN_WORDS:
        return False
    for passage in passages:
        text = quote_words(passage)
        if any(text[i : i + n] == words for i in range(len(text) - n + 1)):
            return True
    return False


def _terms(texts: Sequence[str]) -> set[str]:
    seen: set[str] = set()
    for text in texts:
        seen |= set(tokenize(text))
    return seen


# Both rules read the passages' terms: `ClaimVerifier.check` tokenizes them once for both.
def _unsupported(question: str, claim: str, seen: set[str]) -> list[str]:
    return sorted(QueryTerms.of(claim).specific - seen - set(tokenize(question)))


def _restated(question: str, claim: str, seen: set[str]) -> tuple[int, float]:
    asked = set(tokenize(question))
    new = [t for t in QueryTerms.of(claim).content if t not in asked]
    return len(new), (sum(t in seen for t in new) / len(new) if new else 1.0)


@dataclass(frozen=True)
class Restatement:
    """Accept a sentence whose own words come from its sources: at least `min_terms` terms
    beyond the question's, `min_share` of them in the cited passages."""

    min_terms: int
    min_share: float

    def accepts(self, new_terms: int, share: float) -> bool:
        return new_terms >= self.min_terms and share >= self.min_share


@dataclass(frozen=True)
class ClaimCheck:
    supported: bool
    probability: float  # the model's best P(supported) over the cited passages
    best: int  # index of the passage the model rated best
    missing: list[str]  # names/numbers of the sentence found in no cited passage
    restated: float = 0.0  # share of the sentence's own terms found in its cited passages
    quoted: bool = False  # the sentence quotes a cited passage (near-)verbatim

    @property
    def reason(self) -> str | None:
        if self.supported:
            return None
        if self.missing:
            return "states what its sources never mention: " + ", ".join(self.missing)
        return f"not supported by its sources (p={self.probability:.2f})"


class ClaimVerifier:
    def __init__(self, model_dir: Path = DEFAULT_VERIFIER_DIR, threshold: float | None = None):
        model_dir = Path(model_dir)
        self.model = AnswerabilityJudge(model_dir)
        config = json.loads((model_dir / VERIFIER_CONFIG).read_text())
        # Chosen on the calib split by the training command; a caller may override it.
        self.threshold = float(config["threshold"] if threshold is None else threshold)
        self.use_overlap = bool(config.get("overlap_rule", True))
        rule = config.get("restatement")
        self.restatement = Restatement(**rule) if rule else None

    def probabilities(self, question: str, claim: str, passages: Sequence[str]) -> list[float]:
        text = claim_text(question, claim)
        terms = QueryTerms.of(text)
        windows = []
        for p in passages:
            a, b = self.model.window(terms, p)
            windows.append(p[a:b])
        return [float(x) for x in self.model.score(text, windows)]

    def check(self, question: str, claim: str, passages: Sequence[str]) -> ClaimCheck:
        if not passages:
            return ClaimCheck(False, 0.0, -1, [])
        probs = self.probabilities(question, claim, passages)
        best = max(range(len(probs)), key=probs.__getitem__)
        seen = _terms(passages)
        missing = _unsupported(question, claim, seen) if self.use_overlap else []
        new_terms, share = _restated(question, claim, seen)
        restated = self.restatement is not None and self.restatement.accepts(new_terms, share)
        quoted = quotes(claim, passages)
        supported = (probs[best] >= self.threshold or restated or quoted) and not missing
        return ClaimCheck(supported, round(probs[best], 4), best, missing, round(share, 4), quoted)


_shared: dict[Path, ClaimVerifier] = {}
_lock = threading.Lock()


def shared_verifier(model_dir: Path | None = None) -> ClaimVerifier:
    """One verifier per model directory per process (its ONNX session is thread-safe)."""
    key = Path(model_dir or DEFAULT_VERIFIER_DIR).resolve()
    with _lock:
        if key not in _shared:
            _shared[key] = ClaimVerifier(key)
        return _shared[key]
