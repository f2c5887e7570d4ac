"""The reading set's data engine (`training.reading_data`): its documents, questions and the rules
that turn them into the evidence model's training pairs."""

from __future__ import annotations

from collections import Counter

import pytest

from evals.register import DOCUMENTS as REGISTER_DOCUMENTS
from training.judge_data import Windows, base_tokenizer_file
from training.reading_data import (
    DOCUMENTS,
    VAL_DOCS,
    drop_sentence,
    questions,
    reading_pairs,
    swap_qualifier,
)

pytestmark = pytest.mark.unit


def test_every_question_names_its_document_and_an_answer_it_states_verbatim():
    rows = questions()
    assert len(rows) >= 120
    texts = {p.name: " ".join(p.read_text(encoding="utf-8").split()) for p in DOCUMENTS.iterdir()}
    kinds = Counter(r["kind"] for r in rows)
    assert set(kinds) == {"direct", "paraphrase", "near_miss", "never"}
    for row in rows:
        assert row["doc"] in texts, row
        if row["kind"] in ("direct", "paraphrase"):
            assert row["answer"] in texts[row["doc"]], row
        else:
            assert "answer" not in row, row
    # split by document, and both splits hold questions the documents do not answer
    assert {r["split"] for r in rows if r["doc"] in VAL_DOCS} == {"val"}
    for split in ("train", "val"):
        assert {r["kind"] for r in rows if r["split"] == split} == set(kinds)


def test_the_reading_set_shares_no_document_with_the_register_evaluation():
    trained = {p.read_text(encoding="utf-8") for p in DOCUMENTS.iterdir()}
    evaluated = {p.name for p in REGISTER_DOCUMENTS.rglob("*") if p.is_file()}
    assert not {p.name for p in DOCUMENTS.iterdir()} & evaluated
    for path in REGISTER_DOCUMENTS.rglob("*"):
        if path.is_file():
            assert path.read_text(encoding="utf-8") not in trained


def test_a_qualifier_swap_asks_about_something_of_the_same_kind_the_document_never_mentions():
    document = "The nightly hotel limit is 180 pounds in London. Adults can borrow 20 items."
    swapped = swap_qualifier("What is the hotel limit in London?", document, "q1")
    assert swapped is not None and swapped != "What is the hotel limit in London?"
    place = swapped.removeprefix("What is the hotel limit in ").removesuffix("?")
    assert place.lower() not in document.lower() and place[0].isupper()
    # deterministic, and nothing to swap when the question names no qualifier of the document
    assert swap_qualifier("What is the hotel limit in London?", document, "q1") == swapped
    assert swap_qualifier("How much is the hotel limit?", document, "q1") is None
    # a group is swapped for a group: never for one the document names (adult / Adults)
    group = swap_qualifier("How many items can adults borrow?", document + " Children too.", "q2")
    assert group is not None
    new = group.removeprefix("How many items can ").removesuffix(" borrow?")
    assert new not in ("adults", "children") and new.rstrip("s") not in document.lower()


def test_dropping_the_answering_sentence_keeps_the_heading_and_the_rest():
    chunk = "Mileage\n\nUse of a car is paid at 45 pence per mile. Tolls are paid back."
    assert drop_sentence(chunk, "45 pence") == "Mileage\n\nTolls are paid back."
    assert drop_sentence(chunk, "not there") is None
    assert drop_sentence("Meals\n\nUp to 45 pounds a day.", "45 pounds") is None  # no substance


def test_pairs_by_rule_label_the_answering_chunk_alone_positive():
    rows = [
        {
            "id": "r0",
            "split": "train",
            "doc": "a.md",
            "kind": "direct",
            "question": "What is the hotel limit in London?",
            "answer": "180 pounds",
        },
        {
            "id": "r1",
            "split": "val",
            "doc": "a.md",
            "kind": "near_miss",
            "question": "What is the hotel limit in Paris?",
        },
    ]
    hotels = "Hotels\n\nThe limit is 180 pounds in London. Breakfast is included."
    meals = "Meals\n\nMeals are paid up to 45 pounds a day."
    chunks = {"a.md": [meals, hotels]}
    top = [{"doc_id": "a.md", "text": hotels}, {"doc_id": "a.md", "text": meals}]
    pairs = list(
        reading_pairs(rows, chunks, {"r0": top, "r1": top}, Windows(base_tokenizer_file()))
    )
    got = Counter((p["qid"], p["kind"], p["label"]) for p in pairs)
    assert got == Counter(
        {
            ("r0", "positive", 1): 1,
            ("r0", "answer_dropped", 0): 1,
            ("r0", "other_chunk", 0): 1,
            ("r0", "qualifier_swap", 0): 1,
            ("r1", "near_miss", 0): 2,
        }
    )
    positive = next(p for p in pairs if p["kind"] == "positive")
    assert positive["passage"] == hotels and positive["split"] == "train"
    swap = next(p for p in pairs if p["kind"] == "qualifier_swap")
    assert swap["passage"] == hotels and "London" not in swap["question"]
    assert {p["split"] for p in pairs if p["qid"] == "r1"} == {"val"}
    with pytest.raises(ValueError, match="no chunk"):
        wrong = [{**rows[0], "answer": "90 pounds"}]
        list(reading_pairs(wrong, chunks, {"r0": top}, Windows(base_tokenizer_file())))
