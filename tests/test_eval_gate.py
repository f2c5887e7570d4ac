"""The quality gate: small fixed dev-split sets must not regress below the stored baseline."""

from __future__ import annotations

import json

import pytest

from evals.gate import BASELINE, GATED, regressions, run_gate

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_quality_does_not_regress(tmp_path, embedder):
    reports = run_gate(tmp_path)
    baseline = json.loads(BASELINE.read_text())
    assert set(baseline) == set(GATED)
    failures = regressions(reports, baseline)
    assert not failures, "\n".join(failures) + "\n" + json.dumps(reports, indent=2)


@pytest.mark.unit
def test_gate_catches_a_drop():
    baseline = {
        "halueval": dict.fromkeys(GATED["halueval"], 0.9),
        "fitzgov": dict.fromkeys(GATED["fitzgov"], 0.9),
        "verifier": dict.fromkeys(GATED["verifier"], 0.9),
    }
    report = {
        "retrieval": {"recall@5": 0.95, "mrr@10": 0.85},
        "answers": {
            "answer_rate": 0.95,
            "citation_validity": 1.0,
            "contains_reference": 0.95,
            "answered_citing_relevant": 0.95,
        },
        "refusal": {"recall": 0.95},
    }
    verifier = {
        "hallucinated_rejected": 0.95,
        "right_accepted": 0.8,
        "sample_claims": {"supported_accepted": 0.95, "unsupported_rejected": 0.95},
    }
    failures = regressions({"halueval": report, "fitzgov": report, "verifier": verifier}, baseline)
    assert failures == [
        "halueval retrieval.mrr@10: 0.8500 < baseline 0.9000 - 0.02",
        "verifier right_accepted: 0.8000 < baseline 0.9000 - 0.02",
    ]


def test_gate_fails_when_the_confidence_threshold_is_degraded(tmp_path, embedder):
    """The real golden run with the answer threshold pushed to 0.99 must fail the gate, naming
    the metrics that fell; the shipped settings pass the same comparison."""
    from evals.golden import run_golden

    baseline = json.loads(BASELINE.read_text())
    degraded = run_golden(tmp_path / "degraded", confidence_threshold=0.99)
    failures = regressions({"golden": degraded}, baseline)
    assert any(f.startswith("golden answers.answer_rate: ") for f in failures), failures
    assert any(f.startswith("golden behaviour.behaved: ") for f in failures), failures
    assert not any(f.startswith("golden refusal.recall") for f in failures)  # refusing more
