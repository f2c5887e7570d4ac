"""The lab's judge training (`training/`): the command end to end, the CPU training tricks
(each leaves the loss and gradient exact), the recipes' pair choice and the sweep."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rag.answering.judge import DEFAULT_JUDGE_DIR, AnswerabilityJudge


@pytest.mark.slow
@pytest.mark.integration
def test_training_command_rebuilds_a_loadable_judge(tmp_path: Path):
    """`python -m training.train_judge` end to end on a few pairs: train, export, validate."""
    pairs = tmp_path / "pairs.jsonl"
    rows = []
    for i in range(24):
        q = f"What colour is item {i}?"
        split = "val" if i % 4 == 0 else "train"
        base = {"split": split, "set": "fitzgov", "qid": f"c{i}", "question": q}
        rows.append({**base, "passage": f"Item {i} is blue.", "label": 1, "kind": "positive"})
        rows.append({**base, "passage": f"Item {i + 50} is red.", "label": 0, "kind": "abstention"})
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    reading = tmp_path / "reading.jsonl"
    reading.write_text("")
    out = tmp_path / "judge"
    command = ["--pairs", str(pairs), "--reading", str(reading), "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "training.train_judge", *command],
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


QUESTIONS = ["Who wrote it?", "When did the bridge open to traffic?", "Where?", "Why so?"]
PASSAGES = [
    "It was written by Ann Lee in 1999, the year the press opened.",
    "Bridge.",
    "The new bridge over the river opened to traffic on 3 May 1932 after four years.",
    "Because the council voted for it.",
]


def _loss_and_gradients(model, loss) -> tuple[float, dict]:
    """One training step's loss on the four pairs above (a padded batch) and the gradient of
    every parameter."""
    import torch

    model.zero_grad(set_to_none=True)
    value = loss([QUESTIONS, PASSAGES], torch.tensor([1.0, 0.0, 1.0, 0.0]))
    value.backward()
    named = model.model.named_parameters()
    return value.item(), {n: p.grad.clone() for n, p in named if p.grad is not None}


def _assert_same_step(step: tuple[float, dict], expected: tuple[float, dict]) -> None:
    import torch

    assert step[0] == pytest.approx(expected[0], rel=1e-5)
    assert step[1].keys() == expected[1].keys()
    for name, grad in expected[1].items():
        assert not step[1][name].is_sparse, name  # the optimizer gets dense gradients
        torch.testing.assert_close(step[1][name], grad, rtol=1e-4, atol=1e-6)


@pytest.fixture
def base_model():
    """The judge's starting point, in eval mode: dropout off, so that steps compare exactly."""
    import torch

    from training.train_judge import MAX_LENGTH, base_cross_encoder

    torch.manual_seed(0)
    model = base_cross_encoder(None, MAX_LENGTH, "cpu")
    model.eval()
    return model


@pytest.mark.integration
def test_a_batch_in_length_sorted_chunks_has_the_whole_batchs_loss_and_gradient(base_model):
    """The CPU trainer's speed-up must not change what a step learns."""
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    from training.cpu import sorted_chunks_loss

    whole = _loss_and_gradients(base_model, BinaryCrossEntropyLoss(base_model))
    chunked = _loss_and_gradients(base_model, sorted_chunks_loss(base_model, 3))  # 3 + 1 pairs
    _assert_same_step(chunked, whole)


@pytest.mark.integration
def test_a_last_layer_of_cls_only_has_the_models_loss_and_gradient(base_model):
    """The CPU trainer computes the last layer at [CLS] only (what the head reads): a step must
    learn the same, with SDPA attention and with the trainer's own, and the layer is whole again
    afterwards."""
    import torch
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    from training.cpu import cls_only_last_layer, pcg_dropout

    loss = BinaryCrossEntropyLoss(base_model)
    whole = _loss_and_gradients(base_model, loss)
    with cls_only_last_layer(base_model):
        _assert_same_step(_loss_and_gradients(base_model, loss), whole)
        with pcg_dropout(base_model, seed=1):
            _assert_same_step(_loss_and_gradients(base_model, loss), whole)
    last = base_model.model.bert.encoder.layer[-1]
    assert "forward" not in vars(last)
    features = base_model.tokenizer(QUESTIONS, PASSAGES, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = base_model.model.bert(**features).last_hidden_state
    assert states.shape[1] == features["input_ids"].shape[1]  # every position again


@pytest.mark.integration
def test_a_frozen_recipe_trains_only_above_the_frozen_layers(base_model, tmp_path: Path):
    """`frozen=1`: the embeddings and the first BERT layer keep the base weights through
    training, every weight above learns, and the returned model can learn everywhere again."""
    import torch

    from training.train_judge import train

    labels = [1, 0, 1, 0]
    rows = [
        {"question": q, "passage": p, "label": y}
        for q, p, y in zip(QUESTIONS, PASSAGES, labels, strict=True)
    ] * 8
    model = train(rows, tmp_path, epochs=2, frozen=1)  # 4 steps, the first of them warm-up
    base = dict(base_model.model.bert.named_parameters())
    trained = dict(model.model.bert.named_parameters())
    assert trained.keys() == base.keys()
    for name, weight in trained.items():
        frozen = name.startswith(("embeddings.", "encoder.layer.0."))
        assert torch.equal(weight, base[name]) == frozen, name
        assert weight.requires_grad, name


def test_a_tail_average_leaves_the_mean_of_the_sampled_steps_learning_weights(base_model):
    """`averaged_tail` samples the learning weights every AVERAGE_EVERY steps within the last
    share of training, the last step included, and leaves the model with their mean; weights
    that do not learn keep their own last value, and without a share nothing is hooked."""
    from types import SimpleNamespace

    import torch

    from training.cpu import averaged_tail
    from training.recipes import AVERAGE_EVERY

    class Trainer:
        def __init__(self) -> None:
            self.callbacks: list = []

        def add_callback(self, callback) -> None:
            self.callbacks.append(callback)

    head = base_model.model.classifier
    frozen = base_model.model.bert.pooler.dense.bias
    frozen.requires_grad_(False)
    steps = 4 * AVERAGE_EVERY
    trainer = Trainer()
    with torch.no_grad(), averaged_tail(trainer, base_model, share=0.5):
        for step in range(1, steps + 1):
            head.weight.fill_(step)
            frozen.fill_(step)
            for callback in trainer.callbacks:
                callback.on_step_end(None, SimpleNamespace(max_steps=steps, global_step=step), None)
    sampled = [steps - AVERAGE_EVERY, steps]  # within the last half: 10 or 0 steps left
    assert torch.all(head.weight == sum(sampled) / len(sampled))
    assert torch.all(frozen == steps)
    unhooked = Trainer()
    with averaged_tail(unhooked, base_model, share=None):
        pass
    assert not unhooked.callbacks


@pytest.mark.integration
def test_pcg_dropout_drops_at_the_models_rate_and_gives_the_model_back_as_it_was(base_model):
    """The CPU trainer's dropout: in eval mode the model computes what it computes without it
    (attention over a padded batch included); in training every dropout, attention's too, drops
    at its rate from a stream the seed repeats; leaving gives back the model's own modules and
    SDPA attention, which the ONNX export traces."""
    import torch

    from training.cpu import ATTENTION, pcg_dropout

    model = base_model
    network = model.model
    features = model.tokenizer(QUESTIONS, PASSAGES, padding=True, return_tensors="pt")
    assert not features["attention_mask"].all()  # the batch is padded

    def logits() -> torch.Tensor:
        with torch.no_grad():
            return network(**features).logits

    expected = logits()
    with pcg_dropout(model, seed=1):
        assert network.config._attn_implementation == ATTENTION
        torch.testing.assert_close(logits(), expected, rtol=1e-5, atol=1e-5)
        network.train()
        first, second = logits(), logits()
        assert not torch.equal(first, second)
        kept = network.bert.embeddings.dropout(torch.ones(200_000))
        assert (kept == 0).float().mean().item() == pytest.approx(0.1, abs=0.004)
        torch.testing.assert_close(kept.unique(), torch.tensor([0.0, 1 / 0.9]))
        hidden = [m for n, m in network.named_modules() if n.endswith("dropout")]
        attention = [layer.attention.self.dropout for layer in network.bert.encoder.layer]
        for module in hidden:
            if module not in attention:
                module.p = 0.0
        assert not torch.allclose(logits(), expected, atol=1e-4)  # attention still drops
    with pcg_dropout(model, seed=1):
        network.train()
        torch.testing.assert_close(logits(), first)  # the same draws again
    assert network.config._attn_implementation == "sdpa"
    dropouts = [m for n, m in network.named_modules() if n.endswith("dropout")]
    assert dropouts and all(type(m) is torch.nn.Dropout and m.p == 0.1 for m in dropouts)
    network.eval()
    torch.testing.assert_close(logits(), expected)


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
    from training.recipes import RECIPE, RECIPES
    from training.train_judge import training_rows

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
        _pair("d1", "fitzgov", "dispute", 1),
        _pair("d1", "fitzgov", "dispute_retrieved", 0),
        _pair("g1", "fitzgov", "grounding", 0),
        _pair("r1", "reading", "positive", 1),
        _pair("r1", "reading", "qualifier_swap", 0),
        _pair("r2", "reading", "positive", 1, split="val"),
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
    # the shipped judge learns no reading-set pair; "reading-3" each train pair three times
    assert "reading" not in " ".join(shipped)
    reading = kinds(RECIPES["reading-3"])
    assert reading.count("reading positive") == reading.count("reading qualifier_swap") == 3
    # the training-only categories' pairs when asked for, once each (only `positive` is copied)
    extra = kinds(replace(RECIPE, fitz_training_only=("dispute", "grounding", "relevance")))
    assert [k for k in extra if k not in shipped] == [
        "fitzgov dispute",
        "fitzgov dispute_retrieved",
        "fitzgov grounding",
    ]
    grounding = kinds(replace(RECIPE, fitz_training_only=("grounding",)))
    assert [k for k in grounding if k not in shipped] == ["fitzgov grounding"]
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
def test_questions_whose_positives_share_no_term_with_them_are_left_out_when_asked():
    from training.recipes import RECIPE
    from training.train_judge import off_topic_questions, training_rows

    def pair(qid: str, question: str, passage: str, kind: str, label: int) -> dict:
        return {**_pair(qid, "fitzgov", kind, label), "question": question, "passage": passage}

    gig, leave, tax = "What is the gig economy?", "How long is parental leave?", "When is tax due?"
    pairs = [
        # fitz-gov's slip: another question's document listed as the answer
        pair("gig", gig, "Voters rank candidates by preference.", "positive", 1),
        pair("gig", gig, "The gig economy pays work by the task.", "hard_negative", 0),
        pair("leave", leave, "Staff get 16 weeks of parental leave.", "positive", 1),
        pair("leave", leave, "The canteen opens at noon.", "hard_negative", 0),
        # one positive on the question's terms keeps it
        pair("tax", tax, "Returns are filed online.", "positive", 1),
        pair("tax", tax, "Tax is due on 31 January.", "positive", 1),
    ]
    assert off_topic_questions(pairs) == {"gig"}
    assert {r["qid"] for r in training_rows(pairs, replace(RECIPE, drop_off_topic=True))} == {
        "leave",
        "tax",
    }
    assert "gig" in {r["qid"] for r in training_rows(pairs, replace(RECIPE, drop_off_topic=False))}


@pytest.mark.unit
def test_the_sweep_chooses_the_threshold_on_one_split_and_reads_the_other_at_it():
    from training.judge_sweep import decision_figures

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


@pytest.mark.integration
def test_the_sweep_scores_several_judges_as_the_probability_of_their_mean_logit():
    from training.judge_sweep import _Shipped

    # The answer verifier is a cross-encoder in the judge's format: a second, different model.
    verifier_dir = DEFAULT_JUDGE_DIR.with_name("verifier")
    items = [
        ("How long is parental leave?", "Parental leave lasts sixteen weeks at full pay."),
        ("How long is parental leave?", "The canteen serves lunch from noon."),
    ]
    both = _Shipped([DEFAULT_JUDGE_DIR, verifier_dir]).predict(items)
    judge, verifier = AnswerabilityJudge(DEFAULT_JUDGE_DIR), AnswerabilityJudge(verifier_dir)
    a = np.array([judge.logits(q, [p])[0] for q, p in items])
    b = np.array([verifier.logits(q, [p])[0] for q, p in items])
    np.testing.assert_allclose(both, 1 / (1 + np.exp(-(a + b) / 2)), atol=1e-6)
    # not the mean of the two probabilities
    mean_probability = (1 / (1 + np.exp(-a)) + 1 / (1 + np.exp(-b))) / 2
    assert np.abs(both - mean_probability).max() > 1e-3
    np.testing.assert_allclose(_Shipped([DEFAULT_JUDGE_DIR]).predict(items), 1 / (1 + np.exp(-a)))


@pytest.mark.unit
def test_fitz_gov_categories_outside_the_evaluation_give_training_pairs_only():
    """Dispute, grounding and relevance cases: development ids only, none an evaluated case;
    their own documents are answers (dispute) or near misses, their best retrieved chunk from
    another document a negative, and every pair is in `train`."""
    from evals.datasets import FITZ_TRAINING_ONLY, fitz_cases, fitz_training_only_cases, is_fitz_dev
    from training.judge_data import Windows, base_tokenizer_file, fitz_training_only_pairs

    cases = fitz_training_only_cases()
    assert {c["category"] for c in cases} == set(FITZ_TRAINING_ONLY)
    assert all(is_fitz_dev(c["id"]) for c in cases)
    assert not {c["id"] for c in cases} & {c["id"] for c in fitz_cases()}
    assert all(c["answerable"] == (c["category"] == "dispute") for c in cases)

    documents = {"a": "Study A puts the vaccine's efficacy at 95 percent.", "b": "Other text."}
    picked = [
        {"id": "d1", "question": "How effective is the vaccine?", "category": "dispute",
         "answerable": True, "doc_ids": ["a", "missing"]},
        {"id": "g1", "question": "How effective is the flu shot?", "category": "grounding",
         "answerable": False, "doc_ids": ["a"]},
    ]  # fmt: skip
    retrieved = {
        "d1": [{"doc_id": "a", "text": documents["a"]}, {"doc_id": "b", "text": "Other text."}],
        "g1": [{"doc_id": "a", "text": documents["a"]}],
    }
    pairs = list(
        fitz_training_only_pairs(picked, documents, retrieved, Windows(base_tokenizer_file()))
    )
    assert [(p["qid"], p["kind"], p["label"], p["passage"]) for p in pairs] == [
        ("d1", "dispute", 1, documents["a"]),
        ("d1", "dispute_retrieved", 0, "Other text."),
        ("g1", "grounding", 0, documents["a"]),
    ]
    assert {p["split"] for p in pairs} == {"train"}
