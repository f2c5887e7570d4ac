"""What a question asks about: content and specific terms, and its own words for them."""

from __future__ import annotations

import pytest

from rag.retrieval.terms import QueryTerms

pytestmark = pytest.mark.unit


def test_specific_terms_are_names_numbers_and_quoted_phrases():
    q = QueryTerms.of('Do engineers in Leeds get the 2027 bonus from the "blue star" plan?')
    assert q.specific == {"leed", "2027", "blue", "star"}
    # "Do" opens the question; "from" is a question word, not content.
    assert "do" not in q.content and "from" not in q.content
    assert {"engin", "bonus", "plan"} <= q.content


def test_terms_are_shown_as_the_question_wrote_them():
    q = QueryTerms.of("How do I fail over the MySQL database in São Paulo?")
    assert q.as_written(["paulo", "mysql"]) == ["MySQL", "Paulo"]
    assert q.as_written(["são"]) == ["São"]
    # A term no word of the question yields is shown as it is.
    assert q.as_written(["zzz"]) == ["zzz"]


def test_coverage_counts_specific_terms_double():
    q = QueryTerms.of("When does the Leeds office open?")
    assert q.coverage({"leed"}) == pytest.approx(2 / 4)
    assert q.coverage({"offic", "open"}) == pytest.approx(2 / 4)
    assert q.missing_specific({"offic"}) == ["leed"]


def test_codes_are_capitals_then_a_digit_not_ordinals_decades_quantities_or_typos():
    q = QueryTerms.of(
        "Who flies the A320 in week 2026-W50, on the 3rd, in the 1980s, at 7pm, with 100GB, "
        "in a2002 film?"
    )
    assert q.codes == {"a320", "w50"}
    assert {"2026", "3rd", "1980s", "7pm", "100gb", "a2002"} <= q.specific - q.codes
