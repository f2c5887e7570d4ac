"""The shape of answer a question asks for (rag.answering.shapes), and what the extractive
answerer does with it: prefers a sentence holding it, and finds no answer in evidence that
holds none."""

from __future__ import annotations

import pytest
from factories import candidate

from rag.answering.answer import ExtractiveAnswerer
from rag.answering.shapes import Shape, asked_shape, day_part_terms, has_shape, must_hold
from rag.retrieval.bm25 import tokenize
from rag.retrieval.terms import QueryTerms

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("question", "shape"),
    [
        ("When does the first ferry depart?", Shape.TIME),
        ("What time does the 12:30 sailing reach Kilrush?", Shape.TIME),
        ("In what year was the bridge built?", Shape.TIME),
        ("On which days does the Inishbeg ferry sail?", Shape.DAYS),
        ("How long is parental leave?", Shape.DURATION),
        ("How many days of leave do I get?", Shape.DURATION),
        ("How often must the licence be renewed?", Shape.FREQUENCY),
        ("How much does a replacement badge cost?", Shape.PRICE),
        ("What is the fee for refunding an unused ticket?", Shape.PRICE),
        ("How much can contractors claim for meals per day?", Shape.PRICE),
        ("How much paid partner leave can fathers take?", Shape.AMOUNT),
        ("How many first aiders must be on site?", Shape.AMOUNT),
        ("What was he charged with?", None),
        ("Who approves purchases?", None),
        ("Where is the badge office?", None),
    ],
)
def test_the_shape_a_question_asks_for(question, shape):
    assert asked_shape(question) is shape


@pytest.mark.parametrize(
    ("shape", "sentence", "holds"),
    [
        (Shape.PRICE, "Car with driver: 38.00 euros", True),
        (Shape.PRICE, "Children under 4 travel free.", True),
        (Shape.PRICE, "Your badge opens it between 6:00 and 22:00.", False),
        (Shape.AMOUNT, "At least two first aiders must be on site.", True),
        (Shape.AMOUNT, "First aiders are trained every year.", False),
        (Shape.DURATION, "Leave lasts sixteen weeks.", True),
        (Shape.DURATION, "The warranty covers parts and labour.", False),
        (Shape.FREQUENCY, "The licence must be renewed every three years.", True),
        (Shape.FREQUENCY, "Only licence holders may drive.", False),
        # An answer without a number: none is set.
        (
            Shape.FREQUENCY,
            "Passwords are not rotated on a schedule; they must be changed immediately when a "
            "compromise is suspected.",
            True,
        ),
        (Shape.AMOUNT, "Premium members may book unlimited classes.", True),
        (Shape.DURATION, "Access lasts until you leave the company.", True),
        (Shape.DAYS, "Sails Monday to Saturday.", True),
        (Shape.TIME, "Harbour Line runs ferries between Dunmore and Kilrush.", False),
    ],
)
def test_whether_a_sentence_holds_a_shape(shape, sentence, holds):
    assert has_shape(shape, sentence) is holds


@pytest.mark.parametrize(
    ("sentence", "parts"),
    [
        ("Departs: 16:00; Arrives: 17:30", {"afternoon"}),
        ("Open 9am to 4.30 p.m.", {"morning", "afternoon"}),
        ("The night shift runs from 22:00 to 06:00.", {"night", "morning"}),
        ("Adult: 14.00 euros", set()),  # a price, not a 24-hour time
    ],
)
def test_clock_times_name_their_part_of_the_day(sentence, parts):
    assert day_part_terms(sentence) == {t for p in parts for t in tokenize(p)}


TIMETABLE = (
    "Harbour Line runs ferries between Dunmore and Kilrush.\n"
    "Departures — Route: Dunmore to Kilrush; Departs: 09:40; Days: Monday to Saturday\n"
    "Departures — Route: Dunmore to Kilrush; Departs: 16:00; Days: Friday and Sunday"
)


def test_the_sentence_holding_the_asked_shape_answers():
    answerer = ExtractiveAnswerer(max_sentences=1)
    chunk = [candidate(TIMETABLE)]
    # The intro covers "ferries", "Dunmore" and "Kilrush" as well as a row covers the question.
    first = answerer.answer(QueryTerms.of("When does the Dunmore to Kilrush ferry depart?"), chunk)
    assert "Departs: 09:40" in first.text
    afternoon = answerer.answer(
        QueryTerms.of("On which days can I sail from Dunmore to Kilrush in the afternoon?"), chunk
    )
    assert "Friday and Sunday" in afternoon.text


def test_evidence_without_the_asked_shape_does_not_answer():
    answerer = ExtractiveAnswerer()
    chunk = [candidate("Staff may park in the north yard with a permit from reception.")]
    contrast = answerer.contrast(QueryTerms.of("How much does a parking permit cost?"), chunk)
    assert contrast is not None and contrast.kind == "shape"
    assert contrast.describe() == (
        'the question asks for a price; the best evidence gives none: "Staff may park in the '
        'north yard with a permit from reception."'
    )
    assert answerer.contrast(QueryTerms.of("Where may staff park?"), chunk) is None
    priced = [candidate("A parking permit costs 5 pounds a month from reception.")]
    assert answerer.contrast(QueryTerms.of("How much does a parking permit cost?"), priced) is None


def test_a_question_that_describes_its_thing_is_left_to_its_steps():
    # A two-step question's first step names the thing whose age a later sentence gives.
    chunk = [candidate("The River Aire runs through Leeds and past the old mill.")]
    answerer = ExtractiveAnswerer()
    described = QueryTerms.of("How old is the mill on the river that runs through Leeds?")
    assert must_hold(described.text) is None
    assert answerer.contrast(described, chunk) is None
    plain = QueryTerms.of("How old is the mill on the River Aire?")
    assert must_hold(plain.text) is Shape.AMOUNT
    assert answerer.contrast(plain, chunk) is not None
