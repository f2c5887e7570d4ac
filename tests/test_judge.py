"""The answerability judge: its window, its question trimming, and the shipped weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
from factories import candidate

from rag.answering.judge import DEFAULT_JUDGE_DIR, AnswerabilityJudge, passage_window, shared_judge
from rag.answering.verify import DEFAULT_VERIFIER_DIR
from rag.retrieval.terms import QueryTerms


def _words(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


TEXT = (
    "The office opens at eight. Parking is free for staff. "
    "Parental leave lasts sixteen weeks at full pay. It can be split in two blocks. "
    "The canteen serves lunch from noon."
)


@pytest.mark.unit
def test_window_is_the_whole_passage_when_it_fits():
    assert passage_window(QueryTerms.of("parental leave?"), TEXT, 100, _words) == (0, len(TEXT))


@pytest.mark.unit
def test_window_centres_on_the_sentence_that_covers_the_question():
    a, b = passage_window(QueryTerms.of("How long is parental leave?"), TEXT, 14, _words)
    window = TEXT[a:b]
    assert "Parental leave lasts sixteen weeks" in window
    assert len(window.split()) <= 14
    assert "office opens" not in window  # neighbours join only while they fit
    assert TEXT[a:b] == window and a > 0


@pytest.mark.unit
def test_window_keeps_one_long_sentence_whole():
    text = "word " * 50 + "leave."
    a, b = passage_window(QueryTerms.of("leave?"), text.strip(), 10, _words)
    assert (a, b) == (0, len(text.strip()))


@pytest.fixture(scope="session")
def judge() -> AnswerabilityJudge:
    return shared_judge()


@pytest.mark.integration
def test_shipped_judge_is_in_the_package_with_its_card():
    for name in ("model.onnx", "tokenizer.json", "judge.json", "MODEL_CARD.md"):
        assert (DEFAULT_JUDGE_DIR / name).is_file(), name
    assert (DEFAULT_JUDGE_DIR / "model.onnx").stat().st_size < 50 * 1024 * 1024
    config = json.loads((DEFAULT_JUDGE_DIR / "judge.json").read_text())
    assert config["max_length"] >= config["window_tokens"] + config["question_tokens"]


# Outputs of the shipped weights on fixed pairs, pinned: a retrained or corrupted model shows
# here first. Regenerate with the snippet in the test's failure message after `make judge`.
PINNED = [
    (
        "How long is parental leave?",
        "Parental leave lasts sixteen weeks at full pay.",
        2.5219,
    ),
    (
        "How long is parental leave?",
        "The canteen serves lunch from noon.",
        0.9078,
    ),
    (
        "What tactics did Hannibal use at the Battle of Zama in 202 BCE?",
        "The Battle of Cannae in 216 BCE demonstrated Hannibal's famous double-envelopment "
        "tactic, killing an estimated 50,000 Roman soldiers.",
        -3.1013,
    ),
    (
        "What tactics did Hannibal use at the Battle of Zama in 202 BCE?",
        "At Zama in 202 BCE Scipio's open lanes let Hannibal's elephants pass harmlessly, and "
        "the Roman cavalry returned to strike Hannibal's infantry from behind.",
        0.5747,
    ),
]


@pytest.mark.integration
def test_shipped_judge_outputs_are_pinned(judge):
    got = [float(judge.logits(q, [p])[0]) for q, p, _ in PINNED]
    expected = [e for _, _, e in PINNED]
    assert None not in expected, f"pin these logits: {[round(g, 4) for g in got]}"
    np.testing.assert_allclose(got, expected, atol=1e-3)


@pytest.mark.integration
def test_judge_ranks_answers_above_off_topic_text_and_near_misses(judge):
    # The calibrated gate turns logits into decisions; the judge must order them, by a margin.
    # (Short off-topic sentences are unlike the retrieved windows it learns from: the canteen
    # reads 0.91, the previous judge's office hours 2.01 against the meals limit.)
    leave = judge.logits(PINNED[0][0], [PINNED[0][1], PINNED[1][1]])
    assert leave[0] - leave[1] > 1.5
    zama = judge.logits(PINNED[2][0], [PINNED[3][1], PINNED[2][1]])
    assert zama[0] - zama[1] > 2.0
    assert judge.score(PINNED[0][0], [PINNED[0][1]])[0] > 0.9


@pytest.mark.integration
def test_a_pairs_score_does_not_depend_on_the_others_and_odd_input_is_scored(judge):
    passages = [PINNED[0][1], PINNED[1][1], "", "x" * 5000]
    together = judge.logits(PINNED[0][0], passages)
    one_by_one = [judge.logits(PINNED[0][0], [p])[0] for p in passages]
    assert together.tolist() == one_by_one
    assert judge.logits("q?", []).shape == (0,)
    long_question = "Why " * 3000 + "is leave sixteen weeks?"
    assert np.isfinite(judge.logits(long_question, [PINNED[0][1]])).all()


@pytest.mark.integration
def test_read_goes_in_rank_order_and_stops_at_the_first_logit_above_the_bar(judge):
    query = QueryTerms.of(PINNED[0][0])
    texts = [PINNED[1][1], PINNED[0][1], "Leave can be split into two blocks."]
    full = [candidate(t, f"{i}.md") for i, t in enumerate(texts)]
    assert judge.read(query, full) == 3
    assert all(c.judge is not None and c.window is not None for c in full)
    bar = (full[0].judge + full[1].judge) / 2  # the canteen is below it, the answer above
    early = [candidate(t, f"{i}.md") for i, t in enumerate(texts)]
    assert judge.read(query, early, stop_above=bar) == 2
    assert [c.judge for c in early[:2]] == [c.judge for c in full[:2]]
    assert early[2].judge is None and early[2].window is None


@pytest.mark.unit
@pytest.mark.parametrize("model_dir", [DEFAULT_JUDGE_DIR, DEFAULT_VERIFIER_DIR])
def test_shipped_models_keep_no_int8_weights(model_dir):
    """int8 weights saturate in ONNX Runtime on x86 CPUs without VNNI (training.train_judge.
    uint8_weights); a VNNI machine passes the pinned-output tests either way, so check the file."""
    import onnx

    model = onnx.load(str(model_dir / "model.onnx"))
    weights = {t.name: t.data_type for t in model.graph.initializer}
    matmuls = [n for n in model.graph.node if n.op_type == "MatMulInteger"]
    assert matmuls
    assert all(weights[n.input[1]] == onnx.TensorProto.UINT8 for n in matmuls)
