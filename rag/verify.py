"""The answer verifier: does a cited passage support one sentence of a generated answer?

No NLI model ships in a reachable package, so the verifier is trained here the way the
answerability judge is (`python -m evals.train_verifier`, model card
`rag/models/verifier/MODEL_CARD.md`): MiniLM-L6 with a one-logit head, reading
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
  chosen on the calib split by the training command and kept in `verifier.json`.

    verifier = shared_verifier()
    check = verifier.check("When was it founded?", "It was founded in 1844.", ["... in 1844 ..."])
    check.supported, check.probability, check.missing
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.bm25 import tokenize
from rag.judge import AnswerabilityJudge
from rag.terms import QueryTerms

DEFAULT_VERIFIER_DIR = Path(__file__).with_name("models") / "verifier"
VERIFIER_CONFIG = "verifier.json"


def claim_text(question: str, claim: str) -> str:
    """The verifier's first text: the question gives a sentence its subject ("It was founded in
    1844." founded what?). Training (`evals.claim_data`) builds its pairs with this too."""
    return f"{question} {claim}"


def unsupported_specifics(question: str, claim: str, passages: Sequence[str]) -> list[str]:
    """The claim's names and numbers that neither the passages nor the question contain."""
    return _unsupported(question, claim, _terms(passages))


def restated_terms(question: str, claim: str, passages: Sequence[str]) -> tuple[int, float]:
    """How many content terms the claim adds to the question, and the share of them found in
    the passages."""
    return _restated(question, claim, _terms(passages))


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
        supported = (probs[best] >= self.threshold or restated) and not missing
        return ClaimCheck(supported, round(probs[best], 4), best, missing, round(share, 4))


_shared: dict[Path, ClaimVerifier] = {}
_lock = threading.Lock()


def shared_verifier(model_dir: Path | None = None) -> ClaimVerifier:
    """One verifier per model directory per process (its ONNX session is thread-safe)."""
    key = Path(model_dir or DEFAULT_VERIFIER_DIR).resolve()
    with _lock:
        if key not in _shared:
            _shared[key] = ClaimVerifier(key)
        return _shared[key]
