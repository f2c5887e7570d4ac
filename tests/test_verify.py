"""The shipped answer verifier: pinned outputs, the overlap rule, and its training command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rag.answering.verify import (
    ClaimVerifier,
    Restatement,
    quotes,
    restated_terms,
    shared_verifier,
    unsupported_specifics,
)

PASSAGE = (
    "Passwords for company accounts must be at least 14 characters long. Passwords are not "
    "rotated on a schedule; they must be changed immediately when a compromise is suspected."
)
QUESTION = "How long must passwords be?"


@pytest.mark.unit
def test_names_and_numbers_must_come_from_the_sources():
    assert unsupported_specifics(QUESTION, "At least 14 characters.", [PASSAGE]) == []
    assert unsupported_specifics(QUESTION, "At least 16 characters.", [PASSAGE]) == ["16"]
    # A name the question gives may be repeated; one from nowhere may not.
    assert unsupported_specifics("Is MFA needed for Okta?", "Okta needs MFA.", [PASSAGE]) == []
    assert unsupported_specifics(QUESTION, "Accounts on Okta need 14.", [PASSAGE]) == ["okta"]


@pytest.mark.unit
def test_a_restatement_is_counted_on_the_words_the_question_lacks():
    # "passwords" and "long" come from the question; the rest is the sentence's own.
    claim = "Company account passwords must be at least 14 characters long."
    assert restated_terms(QUESTION, claim, [PASSAGE]) == (5, 1.0)
    # rotated, every, 90, days: only "rotated" is in the passage.
    assert restated_terms(QUESTION, "Passwords must be rotated every 90 days.", [PASSAGE]) == (
        4,
        0.25,
    )
    rule = Restatement(min_terms=4, min_share=0.7)
    assert rule.accepts(5, 1.0) and not rule.accepts(3, 1.0) and not rule.accepts(5, 0.6)


@pytest.mark.unit
@pytest.mark.parametrize(
    "claim, quoted",
    [
        ("Passwords for company accounts must be at least 14 characters long.", True),
        # Case, spacing and function words may differ.
        ("passwords of  company accounts must be at least 14 characters long", True),
        ("They must be changed immediately when a compromise is suspected.", True),
        # A negation is never a function word: dropping or adding one changes the claim.
        ("Passwords are rotated on a schedule.", False),
        ("They must not be changed immediately when a compromise is suspected.", False),
        # A number, a word or a qualifier changed or dropped is not a quote.
        ("Passwords for company accounts must be at least 16 characters long.", False),
        ("Passwords must be at least 14 characters long.", False),
        # Too short to be a claim: a noun phrase copied from the passage is an answer fragment.
        ("Company accounts.", False),
        ("The company accounts' passwords", False),
    ],
)
def test_a_verbatim_or_near_verbatim_quote_of_a_passage(claim, quoted):
    assert quotes(claim, ["Unrelated text first.", PASSAGE]) is quoted


@pytest.mark.unit
def test_number_formatting_does_not_break_a_quote():
    passage = "The annual budget is 1,000 euros per team and the fee is 4.50 euros."
    assert quotes("The annual budget is 1000 euros per team.", [passage])
    assert quotes("The fee is 4.5 euros.", [passage]) is False  # 3 words: too short
    fee = "The monthly team fee is 4.50 euros."
    assert quotes("the monthly team fee is 4.5 euros", [fee])
    assert not quotes("the monthly team fee is 5.4 euros", [fee])


MAGAZINES = (
    "Arthur's Magazine (1844-1846) was an American literary periodical published in "
    "Philadelphia in the 19th century. First for Women is a woman's magazine published by Bauer "
    "Media Group in the USA. The magazine was started in 1989."
)
FIRST = "Which magazine was started first, Arthur's Magazine or First for Women?"
PINNED = [
    # HaluEval's kind of pair, where the model does the work: right answer, hallucinated one.
    (FIRST, "Arthur's Magazine", MAGAZINES, 0.9366),
    (FIRST, "First for Women was started first.", MAGAZINES, 0.0378),
    # Policy prose, which the model reads poorly (supported, paraphrased, unsupported all ~0.05):
    # the restatement and overlap rules decide these.
    (QUESTION, "Passwords must be at least 14 characters long.", PASSAGE, 0.0567),
    (QUESTION, "Company passwords need fourteen characters or more.", PASSAGE, 0.0455),
    (QUESTION, "Passwords must be rotated every 90 days.", PASSAGE, 0.0498),
]


@pytest.mark.integration
def test_shipped_verifier_outputs_are_pinned():
    verifier = shared_verifier()
    got = [verifier.probabilities(q, claim, [p])[0] for q, claim, p, _ in PINNED]
    assert got == pytest.approx([e for *_, e in PINNED], abs=1e-3)
    right = verifier.check(FIRST, "Arthur's Magazine", [MAGAZINES])
    wrong = verifier.check(FIRST, "First for Women was started first.", [MAGAZINES])
    assert right.supported and not wrong.supported and "p=0.04" in (wrong.reason or "")


@pytest.mark.integration
def test_supported_sentences_pass_and_fabrications_fail():
    verifier = shared_verifier()
    restated = "Company account passwords must be at least 14 characters long."
    good = verifier.check(QUESTION, restated, [PASSAGE])
    assert good.supported and good.reason is None and good.restated == 1.0
    made_up = verifier.check(QUESTION, "Passwords must be at least 16 characters long.", [PASSAGE])
    assert not made_up.supported and made_up.missing == ["16"]
    assert "16" in (made_up.reason or "")
    assert not verifier.check(QUESTION, "Anything at all.", []).supported


@pytest.mark.integration
def test_a_sentence_copied_from_its_passage_is_supported_whatever_the_model_says():
    verifier = shared_verifier()
    # Nearly every word is the question's, so the restatement rule cannot speak for it, and the
    # model rates the policy's own sentence far below its threshold.
    question = "How long must passwords for company accounts be?"
    claim = "Passwords for company accounts must be at least 14 characters long."
    check = verifier.check(question, claim, [PASSAGE])
    assert check.probability < verifier.threshold
    assert check.supported and check.quoted and check.reason is None
    # The same sentence with its number changed is still rejected.
    changed = verifier.check(question, claim.replace("14", "12"), [PASSAGE])
    assert not changed.supported and not changed.quoted and changed.missing == ["12"]


@pytest.mark.integration
def test_the_threshold_can_be_overridden(tmp_path):
    strict = ClaimVerifier(threshold=0.999)
    check = strict.check(QUESTION, "Company passwords need fourteen characters or more.", [PASSAGE])
    assert not check.supported and "not supported" in (check.reason or "")


@pytest.mark.slow
@pytest.mark.integration
def test_training_command_rebuilds_a_working_verifier(tmp_path: Path):
    """`python -m training.train_verifier` end to end on a few pairs: train, calibrate, export."""
    rows = []
    for i in range(24):
        split = ("val", "calib", "train", "train")[i % 4]
        base = {"split": split, "set": "halueval", "qid": f"halueval-q{i}"}
        base |= {"question": f"What colour is item {i}?", "passage": f"Item {i} is blue."}
        rows.append({**base, "claim": "Blue", "label": 1, "kind": "right_answer"})
        rows.append({**base, "claim": f"Item {i} is red.", "label": 0, "kind": "hallucinated"})
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "verifier"
    command = [
        sys.executable,
        "-m",
        "training.train_verifier",
        "--pairs",
        str(pairs),
        "--epochs",
        "1",
    ]
    done = subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # The trainer logs its own dicts on stdout; the command's report is the last JSON block.
    report = json.loads(done.stdout[done.stdout.rindex("\n{\n") + 1 :])
    assert 0 < report["threshold"] < 1 and report["validation"]["pairs"] == 12
    for name in ("model.onnx", "tokenizer.json", "judge.json", "verifier.json", "MODEL_CARD.md"):
        assert (out / name).is_file()
    rebuilt = ClaimVerifier(out)
    assert (
        0.0 <= rebuilt.probabilities("What colour is item 3?", "Blue", ["Item 3 is blue."])[0] <= 1
    )
