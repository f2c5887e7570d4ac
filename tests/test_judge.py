"""The answerability judge: its window, its question trimming, and the shipped weights."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from factories import candidate

from rag.judge import DEFAULT_JUDGE_DIR, AnswerabilityJudge, passage_window, shared_judge
from rag.terms import QueryTerms
from rag.verify import DEFAULT_VERIFIER_DIR


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
        3.0635,
    ),
    (
        "How long is parental leave?",
        "The canteen serves lunch from noon.",
        0.1883,
    ),
    (
        "What tactics did Hannibal use at the Battle of Zama in 202 BCE?",
        "The Battle of Cannae in 216 BCE demonstrated Hannibal's famous double-envelopment "
        "tactic, killing an estimated 50,000 Roman soldiers.",
        -3.5847,
    ),
    (
        "What tactics did Hannibal use at the Battle of Zama in 202 BCE?",
        "At Zama in 202 BCE Scipio's open lanes let Hannibal's elephants pass harmlessly, and "
        "the Roman cavalry returned to strike Hannibal's infantry from behind.",
        1.2304,
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
    leave = judge.logits(PINNED[0][0], [PINNED[0][1], PINNED[1][1]])
    assert leave[0] - leave[1] > 2.0
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


@pytest.mark.slow
@pytest.mark.integration
def test_training_command_rebuilds_a_loadable_judge(tmp_path: Path):
    """`python -m evals.train_judge` end to end on a few pairs: train, export, validate."""
    pairs = tmp_path / "pairs.jsonl"
    rows = []
    for i in range(24):
        q = f"What colour is item {i}?"
        split = "val" if i % 4 == 0 else "train"
        base = {"split": split, "set": "fitzgov", "qid": f"c{i}", "question": q}
        rows.append({**base, "passage": f"Item {i} is blue.", "label": 1, "kind": "positive"})
        rows.append({**base, "passage": f"Item {i + 50} is red.", "label": 0, "kind": "abstention"})
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "judge"
    done = subprocess.run(
        [sys.executable, "-m", "evals.train_judge", "--pairs", str(pairs), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # The trainer logs its own dicts on stdout; the command's report is the last JSON block.
    report = json.loads(done.stdout[done.stdout.rindex("\n{\n") + 1 :])
    assert report["pairs"] == 12 and 0.0 <= report["auc"] <= 1.0
    assert "Validation" in (out / "MODEL_CARD.md").read_text()
    trained = AnswerabilityJudge(out)
    assert trained.score("What colour is item 3?", ["Item 3 is blue."]).shape == (1,)


@pytest.mark.integration
def test_a_batch_in_length_sorted_chunks_has_the_whole_batchs_loss_and_gradient():
    """The CPU trainer's speed-up must not change what a step learns (dropout off to compare)."""
    import torch
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    from evals.train_judge import MAX_LENGTH, base_cross_encoder, sorted_chunks_loss

    torch.manual_seed(0)
    model = base_cross_encoder(None, MAX_LENGTH, "cpu")
    model.eval()
    questions = ["Who wrote it?", "When did the bridge open to traffic?", "Where?", "Why so?"]
    passages = [
        "It was written by Ann Lee in 1999, the year the press opened.",
        "Bridge.",
        "The new bridge over the river opened to traffic on 3 May 1932 after four years.",
        "Because the council voted for it.",
    ]
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0])

    def grads(loss: torch.nn.Module) -> tuple[float, dict[str, torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        value = loss([questions, passages], labels)
        value.backward()
        named = model.model.named_parameters()
        return value.item(), {n: p.grad.clone() for n, p in named if p.grad is not None}

    whole, whole_grads = grads(BinaryCrossEntropyLoss(model))
    chunked, chunked_grads = grads(sorted_chunks_loss(model, 3))  # sorted, then 3 + 1 pairs
    assert chunked == pytest.approx(whole, rel=1e-5)
    assert whole_grads.keys() == chunked_grads.keys()
    for name, grad in whole_grads.items():
        assert not chunked_grads[name].is_sparse, name  # the optimizer gets dense gradients
        torch.testing.assert_close(chunked_grads[name], grad, rtol=1e-4, atol=1e-6)


@pytest.mark.unit
@pytest.mark.parametrize("model_dir", [DEFAULT_JUDGE_DIR, DEFAULT_VERIFIER_DIR])
def test_shipped_models_keep_no_int8_weights(model_dir):
    """int8 weights saturate in ONNX Runtime on x86 CPUs without VNNI (evals.train_judge.
    uint8_weights); a VNNI machine passes the pinned-output tests either way, so check the file."""
    import onnx

    model = onnx.load(str(model_dir / "model.onnx"))
    weights = {t.name: t.data_type for t in model.graph.initializer}
    matmuls = [n for n in model.graph.node if n.op_type == "MatMulInteger"]
    assert matmuls
    assert all(weights[n.input[1]] == onnx.TensorProto.UINT8 for n in matmuls)


def _pair(qid: str, set_: str, kind: str, label: int, split: str = "train") -> dict:
    return {
        "split": split,
        "set": set_,
        "qid": qid,
        "question": qid,
        "passage": kind,
        "label": label,
        "kind": kind,
    }


@pytest.mark.unit
def test_training_recipes_choose_pairs_as_they_say():
    from evals.train_judge import RECIPE, training_rows

    pairs = []
    for i in range(6):
        q = f"halueval-q{i}"
        pairs += [
            _pair(q, "halueval", "positive", 1),
            _pair(q, "halueval", "hard_negative", 0),
            _pair(q, "halueval", "hard_negative", 0),
            _pair(q, "halueval", "near_miss_drop", 0),
        ]
        if i % 2:
            pairs.append(_pair(q, "halueval", "near_miss_swap", 0))
    pairs += [
        _pair("f1", "fitzgov", "positive", 1),
        _pair("f1", "fitzgov", "abstention", 0),
        _pair("f2", "fitzgov", "positive", 1, split="val"),
    ]

    def kinds(recipe):
        rows = training_rows(pairs, recipe)
        assert all(r["split"] == "train" for r in rows)
        return sorted(f"{r['set']} {r['kind']}" for r in rows)

    shipped = kinds(RECIPE)  # questions 0 and 3 left out (every third)
    assert shipped.count("halueval positive") == 4
    assert shipped.count("halueval hard_negative") == 4
    # one near miss each: the swap where there is one (questions 1 and 5), else the drop
    assert shipped.count("halueval near_miss_swap") == 2
    assert shipped.count("halueval near_miss_drop") == 2
    assert shipped.count("fitzgov positive") == 2 and shipped.count("fitzgov abstention") == 1
    every = kinds(
        replace(RECIPE, halueval_every=0, hard_negatives=2, near_misses=2, fitz_positive_copies=3)
    )
    assert every.count("halueval positive") == 6
    assert every.count("halueval hard_negative") == 12
    assert every.count("halueval near_miss_drop") == 6
    assert every.count("halueval near_miss_swap") == 3
    assert every.count("fitzgov positive") == 3
    assert "halueval near_miss_drop" not in kinds(replace(RECIPE, near_misses=0))


@pytest.mark.unit
def test_the_sweep_chooses_the_threshold_on_one_split_and_reads_the_other_at_it():
    from evals.judge_sweep import decision_figures

    questions = [
        {"set": "halueval", "answerable": True},
        {"set": "halueval", "answerable": True},
        {"set": "fitzgov", "answerable": True},
        {"set": "fitzgov", "answerable": False},
        {"set": "fitzgov", "answerable": False},
    ]
    # Each question's best window counts: 0.9, 0.7, 0.6 answerable; 0.4, 0.65 not.
    probs = [np.array(p) for p in ([0.1, 0.9], [0.7], [0.6, 0.2], [0.4, 0.3], [0.65])]
    chosen = decision_figures(questions, probs)
    # No cut separates all five: the best worst rate is 0.5, at 0.6 (the abstention at 0.65 is
    # answered); any higher cut refuses the answerable fitz-gov question.
    assert chosen["worst"] == 0.5
    assert chosen["threshold"] == 0.6
    assert chosen["fitzgov answer_rate"] == 1.0 and chosen["fitzgov refusal_recall"] == 0.5
    assert chosen["fitzgov question auc"] == 0.5
    read = decision_figures(questions, probs, threshold=0.95)
    assert read["threshold"] == 0.95 and read["halueval answer_rate"] == 0.0
    assert read["fitzgov refusal_recall"] == 1.0
