"""The answer verifier on HaluEval QA: are right answers accepted and hallucinated ones rejected?

    python -m evals.verifier                  # the val split (what the README quotes)
    python -m evals.verifier --split gate     # the CI gate's 200 rows

Each row's right answer and hallucinated answer are checked against the row's knowledge
passage through the serving code (`ClaimVerifier.check`: the model's window and threshold,
the overlap rule and the restatement rule), and for each part alone. Goal (issue 8):
hallucinated answers rejected >= 0.90, right answers rejected <= 0.10.

HaluEval's answers are not a generator's sentences, so the run also scores
`evals/datasets/claims_samples.jsonl`: 31 sentences written by hand against passages of the
sample corpora (paraphrases that are supported; changed numbers, names and rules that are
not). Nothing is trained or tuned on it: it shows whether the verifier reads prose it has
never seen the like of.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evals.datasets import halueval_rows, judge_split
from rag.answering.verify import (
    ClaimVerifier,
    restated_terms,
    shared_verifier,
    unsupported_specifics,
)

COMMAND = "python -m evals.verifier"
SAMPLE_CLAIMS = Path(__file__).with_name("datasets") / "claims_samples.jsonl"


def split_rows(split: str) -> list[dict[str, Any]]:
    return [
        r for r in halueval_rows() if judge_split("halueval", f"halueval-q{r['index']}") == split
    ]


def verifier_figures(rows: Iterable[dict[str, Any]], verifier: ClaimVerifier) -> dict[str, Any]:
    verdicts: dict[str, list[tuple[bool, ...]]] = {"right": [], "hallucinated": []}
    ms: list[float] = []
    for r in rows:
        for kind, answer in (
            ("right", r["right_answer"]),
            ("hallucinated", r["hallucinated_answer"]),
        ):
            started = time.perf_counter()
            check = verifier.check(r["question"], answer, [r["knowledge"]])
            ms.append((time.perf_counter() - started) * 1000)
            model_ok = check.probability >= verifier.threshold
            overlap_ok = not unsupported_specifics(r["question"], answer, [r["knowledge"]])
            rule = verifier.restatement
            restated = rule is not None and rule.accepts(
                *restated_terms(r["question"], answer, [r["knowledge"]])
            )
            verdicts[kind].append((check.supported, model_ok, overlap_ok, restated, check.quoted))

    def rejected(kind: str, part: int) -> float:
        return round(sum(not v[part] for v in verdicts[kind]) / len(verdicts[kind]), 4)

    return {
        "rows": len(verdicts["right"]),
        "threshold": verifier.threshold,
        "hallucinated_rejected": rejected("hallucinated", 0),
        "right_rejected": rejected("right", 0),
        "right_accepted": round(1 - rejected("right", 0), 4),
        "model_alone": {
            "hallucinated_rejected": rejected("hallucinated", 1),
            "right_rejected": rejected("right", 1),
        },
        "overlap_rule_alone": {
            "hallucinated_rejected": rejected("hallucinated", 2),
            "right_rejected": rejected("right", 2),
        },
        "restatement_rule_alone": {
            "hallucinated_rejected": rejected("hallucinated", 3),
            "right_rejected": rejected("right", 3),
        },
        "quote_rule_alone": {
            "hallucinated_rejected": rejected("hallucinated", 4),
            "right_rejected": rejected("right", 4),
        },
        "ms_per_check_p50": round(statistics.median(ms), 2),
    }


def sample_claim_figures(verifier: ClaimVerifier, path: Path = SAMPLE_CLAIMS) -> dict[str, Any]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    good = [r for r in rows if r["supported"]]
    bad = [r for r in rows if not r["supported"]]

    def accepted(r: dict[str, Any]) -> bool:
        return verifier.check(r["question"], r["claim"], [r["passage"]]).supported

    return {
        "claims": len(rows),
        "supported_accepted": round(sum(map(accepted, good)) / len(good), 4),
        "unsupported_rejected": round(sum(not accepted(r) for r in bad) / len(bad), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="val", choices=["gate", "calib", "val"])
    parser.add_argument("--model", type=Path, help="a verifier directory (default: shipped)")
    args = parser.parse_args()
    verifier = ClaimVerifier(args.model) if args.model else shared_verifier()
    figures = verifier_figures(split_rows(args.split), verifier)
    figures["sample_claims"] = sample_claim_figures(verifier)
    print(json.dumps({"command": f"{COMMAND} --split {args.split}", **figures}, indent=2))


if __name__ == "__main__":
    main()
