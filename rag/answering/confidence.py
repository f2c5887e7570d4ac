"""Answerability: one confidence in [0, 1] per question, from the evidence actually retrieved.

The main input is the answerability judge's best logit over the candidates it read (and the
runner-up's: two passages that each answer make a surer answer). Beside it, features of the top
evidence: dense similarity, BM25 strength per question term, how much of the question's terms
the best chunk and the top three chunks cover, and whether the question's specific terms
(names, numbers) are missing from all of them. A logistic model over these, fitted on the
development splits' `calib` questions by `python -m evals.calibrate`, gives the confidence;
answers below the threshold are refused. The model and its threshold live in a JSON file
(`RAG_CALIBRATION_FILE`, default: the one shipped in this package).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag.answering.sentences import split_sentences
from rag.retrieval.bm25 import tokenize
from rag.retrieval.terms import QueryTerms
from rag.types import Candidate

DEFAULT_CALIBRATION = Path(__file__).with_name("calibration.json")
# A question whose candidates the judge did not read (none retrieved) scores this.
JUDGE_FLOOR = -10.0
FEATURES = (
    "judge_max",
    "judge_second",
    "dense_top",
    "bm25_per_term",
    "coverage_top",
    "coverage_top3",
    "specific_missing",
    "specific_missing_top",
    "sentence_coverage",
    "sentence_specific_missing",
    "has_specific",
)


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


@dataclass
class Evidence:
    """The features of one question's evidence, and what the gate saw missing."""

    features: dict[str, float]
    missing_specific: list[str]

    def vector(self) -> list[float]:
        return [self.features[name] for name in FEATURES]

    @property
    def misses_every_specific_term(self) -> bool:
        """The question names something (MySQL, 2018, Zama) and none of it is in the top
        chunks: a near miss whatever the judge says. Measured on the calib split: fitz-gov
        refusal recall 0.763 -> 0.776 at the same answer rate; HaluEval answers 0.923 -> 0.915."""
        return self.features.get("specific_missing", 0.0) >= 1.0


def evidence_features(query: QueryTerms, ranked: list[Candidate], depth: int = 3) -> Evidence:
    if not ranked:
        empty = dict.fromkeys(FEATURES, 0.0) | {
            "judge_max": JUDGE_FLOOR,
            "judge_second": JUDGE_FLOOR,
        }
        return Evidence(empty, sorted(query.specific))
    top = ranked[0]
    top_terms = set(tokenize(top.payload.text))
    union = set(top_terms)
    for c in ranked[1:depth]:
        union |= set(tokenize(c.payload.text))
    missing = query.missing_specific(union)
    # The best single sentence: an answer is a sentence, and a question whose terms are only
    # spread over several passages (Hannibal here, Zama there) is not answered by any of them.
    best_cov, best_missing = 0.0, 1.0 if query.specific else 0.0
    for c in ranked[:depth]:
        text = c.payload.text
        for a, b in split_sentences(text):
            sentence_terms = set(tokenize(text[a:b]))
            cov = query.coverage(sentence_terms)
            if cov > best_cov:
                best_cov = cov
                gone = query.missing_specific(sentence_terms)
                best_missing = len(gone) / len(query.specific) if query.specific else 0.0
    n_specific = len(query.specific)
    judged = sorted((c.judge for c in ranked if c.judge is not None), reverse=True)
    judged += [JUDGE_FLOOR, JUDGE_FLOOR]
    features = {
        "judge_max": judged[0],
        "judge_second": judged[1],
        "dense_top": top.dense,
        "bm25_per_term": top.bm25 / max(1, len(query.content)),
        "coverage_top": query.coverage(top_terms),
        "coverage_top3": query.coverage(union),
        "specific_missing": len(missing) / n_specific if n_specific else 0.0,
        "specific_missing_top": len(query.missing_specific(top_terms)) / n_specific
        if n_specific
        else 0.0,
        "sentence_coverage": best_cov,
        "sentence_specific_missing": best_missing,
        "has_specific": 1.0 if query.specific else 0.0,
    }
    return Evidence(features, missing)


@dataclass
class ConfidenceModel:
    """Logistic model over FEATURES; `threshold` is where answering starts."""

    weights: dict[str, float]
    bias: float
    threshold: float
    fitted_on: dict[str, object] = field(default_factory=dict)

    def confidence(self, evidence: Evidence) -> float:
        z = self.bias + sum(self.weights.get(k, 0.0) * v for k, v in evidence.features.items())
        return sigmoid(z)

    def judge_logit_settling(self, threshold: float) -> float | None:
        """The judge logit above which this model answers at `threshold` whatever else the
        evidence holds, so the judge may stop reading there; None when another feature weighs
        in (then every judged candidate counts) or the threshold is not a probability."""
        weight = self.weights.get("judge_max", 0.0)
        others = any(v for k, v in self.weights.items() if k != "judge_max")
        if weight <= 0 or others or not 0.0 < threshold < 1.0:
            return None
        return (math.log(threshold / (1.0 - threshold)) - self.bias) / weight

    @classmethod
    def load(cls, path: Path | None = None) -> ConfidenceModel:
        data = json.loads((path or DEFAULT_CALIBRATION).read_text())
        return cls(
            weights={k: float(v) for k, v in data["weights"].items()},
            bias=float(data["bias"]),
            threshold=float(data["threshold"]),
            fitted_on=data.get("fitted_on", {}),
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
