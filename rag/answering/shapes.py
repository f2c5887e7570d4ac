"""The shape of the answer a question asks for, and whether a sentence has it.

"When does the first ferry from Dunmore depart?" wants a time: of two sentences that cover the
question's words equally ("Harbour Line runs ferries between Dunmore and Kilrush." and the row
"Route: Dunmore to Kilrush; Departs: 07:15"), the one holding a time answers. "How much ...?"
wants an amount, "How long ...?" a duration, "How often ...?" a frequency, "Which days ...?"
days. Only questions whose opening says so get a shape; the rest (who, what, why, where) are
left to the words they share with the sentence.

A price, an amount, a duration or a frequency must be in the answer (`must_hold`): "How much
does colour printing cost?" is not answered by "Colour printing needs a cost centre code." —
the evidence speaks of the thing, not of what was asked (the answerer's `contrast`).

A sentence's clock times also name their part of the day, so "the afternoon sailing" finds the
row that departs at 16:00.
"""

from __future__ import annotations

import re
from enum import StrEnum

from rag.retrieval.bm25 import tokenize


class Shape(StrEnum):
    TIME = "time"
    DAYS = "days"
    PRICE = "price"
    AMOUNT = "amount"
    DURATION = "duration"
    FREQUENCY = "frequency"


# The question's opening that asks for each shape; checked in this order ("how many days" is a
# duration before it is an amount).
_ASKS = [
    (Shape.DURATION, r"how long|for how long|how many (?:minutes|hours|days|weeks|months|years)"),
    (Shape.FREQUENCY, r"how often|how frequently|how many times"),
    (Shape.DAYS, r"(?:on )?(?:which|what) days?\b"),
    (
        Shape.TIME,
        r"when|until when|by when|(?:at |by |until |from )?what time|"
        r"(?:in |on )?(?:what|which) (?:year|date|month)",
    ),
    (
        Shape.PRICE,
        r"how much (?:\w+ ){0,8}?(?:costs?|pay|charged?|prices?|fees?|fares?|spend|claim|"
        r"reimbursed|refunded|allowances?)|"
        r"what(?: is|'s| are| was| were) the (?:\w+ )?(?:costs?|prices?|fees?|fares?|charges?)\b",
    ),
    (
        Shape.AMOUNT,
        r"how (?:much|many|old|far|big|large|heavy)|"
        r"what (?:is|are) the (?:\w+ )?(?:amount|limit|number|rate)s?\b",
    ),
]
_QUESTION = [(shape, re.compile(rf"^\s*(?:{pattern})\b", re.I)) for shape, pattern in _ASKS]

_NUMBER_WORDS = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|"
    r"forty|fifty|sixty|hundred|thousand|million|billion|half|quarter|dozen|single|double|twice"
)
_NUMBER = rf"\d|\b(?:{_NUMBER_WORDS})\b"
_WEEKDAYS = r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekdays?|weekends?|daily"
_MONTHS = r"january|february|march|april|may|june|july|august|september|october|november|december"
_UNITS = r"seconds?|minutes?|hours?|days?|nights?|weeks?|fortnights?|months?|years?|decades?"
_CLOCK = r"\b\d{1,2}[:.]\d{2}\b|\b\d{1,2} ?(?:am|pm|a\.m\.|p\.m\.)|\bnoon\b|\bmidday\b|\bmidnight\b"
_MONEY = (
    r"[£$€¥]|\b(?:pounds?|pence|euros?|cents?|dollars?|usd|eur|gbp|free|no charge|no cost|"
    r"nothing|included|full|half|percent|per cent)\b|\d ?%"
)
# Each shape may also be answered without a number: "unlimited", "until you leave", "not on a
# schedule; immediately when a compromise is suspected".
_HAS = {
    Shape.PRICE: _MONEY,
    Shape.AMOUNT: rf"{_NUMBER}|\b(?:free|no charge|nothing|none|no limit|unlimited|all)\b",
    Shape.DURATION: (
        rf"{_NUMBER}|\b(?:{_UNITS}|until|indefinitely|permanently|no limit|unlimited)\b"
    ),
    Shape.FREQUENCY: (
        rf"{_NUMBER}|\b(?:every|each|per|once|daily|weekly|monthly|yearly|annually|hourly|"
        r"quarterly|fortnightly|times|always|never|regularly|schedule|scheduled|immediately|"
        r"whenever)\b"
    ),
    Shape.DAYS: rf"\b(?:{_WEEKDAYS}|every day|public holidays?|bank holidays?)\b",
    Shape.TIME: (
        rf"{_CLOCK}|\d|\b(?:{_WEEKDAYS}|{_MONTHS}|{_UNITS}|morning|afternoon|evening|"
        r"before|after|within|until|during|since|holidays?|spring|summer|autumn|winter)\b"
    ),
}
_SENTENCE = {shape: re.compile(pattern, re.I) for shape, pattern in _HAS.items()}

# What the question asks for, as a refusal names it. A sentence without it does not answer
# ("How long is the warranty?" / "The warranty covers parts and labour."): these shapes are
# narrow enough to say so; a time ("When ...?") is too often answered in words ("on arrival").
ASKED_FOR = {
    Shape.PRICE: "a price",
    Shape.AMOUNT: "an amount",
    Shape.DURATION: "a duration",
    Shape.FREQUENCY: "how often",
}
# A question that describes what it asks about ("How old is the fossil record of the order
# that contains the dugong?") is answered in steps, the first of which names the thing and
# holds no amount: such questions are left alone (measured on HaluEval's two-step questions).
_DESCRIBES = re.compile(r"\b(?:that|which|who|whom|whose)\b", re.I)

# Parts of the day by the hour a clock time falls in (24-hour clock), latest first.
_DAY_PARTS = [(22, "night"), (18, "evening"), (12, "afternoon"), (5, "morning")]
DAY_PARTS = frozenset(t for _, name in _DAY_PARTS for t in tokenize(name))
# "16:00", "4pm", "4.30 p.m." (not "14.00 euros": a 24-hour time is written with a colon here).
_TIME_OF_DAY = re.compile(
    r"\b(?:([01]?\d|2[0-3]):[0-5]\d\b|(1[0-2]|0?\d)(?:[:.][0-5]\d)? ?([ap])\.?m\b\.?)", re.I
)


def asked_shape(question: str) -> Shape | None:
    """The shape of answer the question's opening asks for, if it asks for one."""
    return next((shape for shape, pattern in _QUESTION if pattern.match(question)), None)


def must_hold(question: str) -> Shape | None:
    """The shape a sentence must hold to answer the question, when the question asks for one
    that narrow (`ASKED_FOR`) and names its thing plainly; else None."""
    shape = asked_shape(question)
    if shape not in ASKED_FOR or _DESCRIBES.search(question):
        return None
    return shape


def has_shape(shape: Shape, sentence: str) -> bool:
    return _SENTENCE[shape].search(sentence) is not None


def day_part_terms(sentence: str) -> frozenset[str]:
    """The analysed terms of the parts of the day the sentence's clock times fall in."""
    parts: set[str] = set()
    for clock, twelve, half in _TIME_OF_DAY.findall(sentence):
        h = int(clock) if clock else int(twelve) % 12 + (12 if half.lower() == "p" else 0)
        parts.add(next((name for start, name in _DAY_PARTS if h >= start), "night"))
    return frozenset(t for part in parts for t in tokenize(part))
