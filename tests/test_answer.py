"""The extractive answerer and the citation check, on hand-made candidates."""

from __future__ import annotations

import pytest
from factories import candidate

from rag.answering.answer import ExtractiveAnswerer, check_citations
from rag.retrieval.terms import QueryTerms
from rag.types import Citation

pytestmark = pytest.mark.unit

LEAVE = (
    "Parental leave\n"
    "Parental leave lasts sixteen weeks at full pay. "
    "The canteen serves lunch from noon. "
    "Leave can be split into two blocks of eight weeks."
)


def test_quotes_verbatim_sentences_with_markers():
    c = candidate(LEAVE)
    reply = ExtractiveAnswerer().answer(QueryTerms.of("How long is parental leave?"), [c])
    text, cites = reply.text, reply.citations
    assert cites and all(ct.quote in LEAVE for ct in cites)
    assert [ct.marker for ct in cites] == list(range(1, len(cites) + 1))
    assert text == " ".join(f"{ct.quote} [{ct.marker}]" for ct in cites)
    assert text.startswith("Parental leave lasts sixteen weeks at full pay. [1]")
    assert "canteen" not in text  # covers none of the question
    assert check_citations(text, cites) == []


def test_prefers_the_sentence_that_covers_the_question():
    text = "The office opens at eight. Passwords must be at least 14 characters long."
    cites = (
        ExtractiveAnswerer(max_sentences=1)
        .answer(QueryTerms.of("How long must passwords be?"), [candidate(text)])
        .citations
    )
    assert [c.quote for c in cites] == ["Passwords must be at least 14 characters long."]


def test_an_faq_question_is_context_never_the_answer():
    faq = (
        "What are the help desk's opening hours?\n\n"
        "The help desk is staffed from 08:00 to 18:00, Monday to Friday."
    )
    reply = ExtractiveAnswerer().answer(
        QueryTerms.of("What are the help desk's opening hours?"), [candidate(faq)]
    )
    assert [c.quote for c in reply.citations] == [
        "The help desk is staffed from 08:00 to 18:00, Monday to Friday."
    ]


def test_a_heading_inside_the_chunk_is_never_added_to_an_answer():
    # The sample handbook's annual-leave sentence, then the next section's heading: the
    # heading covers "sick", the sentence before it the rest, but a heading states nothing.
    text = (
        "Full-time employees receive 28 days of paid annual leave per calendar year.\n"
        "Sick leave\n"
        "Employees must call their manager before 9:00 on the first day off."
    )
    reply = ExtractiveAnswerer().answer(
        QueryTerms.of("How many days of paid sick leave do employees get per year?"),
        [candidate(text)],
    )
    assert "Sick leave" not in [c.quote for c in reply.citations]


def test_a_sentence_restating_the_section_heading_or_title_is_not_quoted():
    c = candidate("Remote work allowance\n\nEach employee receives 400 euros once.")
    c.payload.section = "Remote work policy > Remote work allowance"
    reply = ExtractiveAnswerer().answer(QueryTerms.of("What is the remote work allowance?"), [c])
    assert [q.quote for q in reply.citations] == ["Each employee receives 400 euros once."]
    # A chunk that is only its heading (and a question) has nothing to quote.
    bare = candidate("Remote work allowance\n\nHow much is it?")
    bare.payload.section = "Remote work allowance"
    assert ExtractiveAnswerer().answer(QueryTerms.of("remote work allowance"), [bare]).text == ""


def test_heading_lines_are_not_the_answer():
    cites = (
        ExtractiveAnswerer().answer(QueryTerms.of("parental leave"), [candidate(LEAVE)]).citations
    )
    assert cites and all(c.quote != "Parental leave" for c in cites)


@pytest.mark.parametrize("limit", [1, 2])
def test_never_more_than_max_sentences(limit: int):
    # Every sentence adds a question term the others lack: only the limit stops them.
    text = " ".join(f"Leave rule {i} says leave is leave." for i in range(1, 10))
    answerer = ExtractiveAnswerer(max_sentences=limit)
    cites = answerer.answer(QueryTerms.of("leave rule 1 2 3 4 5?"), [candidate(text)]).citations
    assert len(cites) == limit


def test_a_two_step_question_gets_the_sentence_of_each_step():
    text = (
        "Lance Stephenson is an American basketball player for the Indiana Pacers. "
        "The Pacers were founded in 1967. "
        "They play their home games at Bankers Life Fieldhouse."
    )
    query = QueryTerms.of("Where does Lance Stephenson of the Indiana Pacers play his home games?")
    reply = ExtractiveAnswerer().answer(query, [candidate(text)])
    answer, cites = reply.text, reply.citations
    assert [c.quote for c in cites] == [
        "Lance Stephenson is an American basketball player for the Indiana Pacers.",
        "They play their home games at Bankers Life Fieldhouse.",
    ]
    assert "founded" not in answer  # adds no term the first sentence lacks


def test_a_sentence_that_adds_nothing_new_is_left_out():
    text = "Parental leave lasts sixteen weeks. Parental leave is popular with parents."
    cites = (
        ExtractiveAnswerer()
        .answer(QueryTerms.of("How long is parental leave?"), [candidate(text)])
        .citations
    )
    assert [c.quote for c in cites] == ["Parental leave lasts sixteen weeks."]


def test_nothing_to_quote_gives_an_empty_answer():
    assert ExtractiveAnswerer().answer(QueryTerms.of("parental leave"), []).text == ""


TEXT = "Leave lasts sixteen weeks. Pay is full."
SOURCE = candidate(TEXT)


def _cites(*quotes: str) -> list[Citation]:
    return [Citation(marker=i, quote=q, candidate=SOURCE) for i, q in enumerate(quotes, start=1)]


def test_check_citations_passes_a_good_answer():
    good = _cites("Leave lasts sixteen weeks.", "Pay is full.")
    assert check_citations("Leave lasts sixteen weeks. [1] Pay is full. [2]", good) == []


@pytest.mark.parametrize(
    "answer, quotes, problem",
    [
        (
            "Leave lasts sixteen weeks. [1] Pay is full.",
            ["Leave lasts sixteen weeks."],
            "uncited text: 'Pay is full.'",
        ),
        (
            "Leave lasts sixteen weeks. [2]",
            ["Leave lasts sixteen weeks."],
            "marker [2] has no citation",
        ),
        (
            "Leave lasts forty weeks. [1]",
            ["Leave lasts forty weeks."],
            f"quote [1] is not in chunk {SOURCE.chunk_id}",
        ),
        (
            "Other words. [1]",
            ["Leave lasts sixteen weeks."],
            "sentence before [1] is not its quote",
        ),
        ("", [], "empty answer"),
    ],
    ids=["uncited sentence", "unknown marker", "quote not in chunk", "not its quote", "empty"],
)
def test_check_citations_flags_each_problem(answer: str, quotes: list[str], problem: str):
    assert check_citations(answer, _cites(*quotes)) == [problem]


def test_reads_the_chunk_the_judge_rated_best():
    wrong = candidate("Parental leave at Acme lasts ten weeks.", "acme.md", score=2.0, judge=-3.0)
    right = candidate("Parental leave here lasts sixteen weeks.", "ours.md", score=1.0, judge=2.5)
    query = QueryTerms.of("How long is parental leave?")
    cites = ExtractiveAnswerer().answer(query, [wrong, right]).citations
    assert [c.candidate.payload.doc_id for c in cites] == ["ours.md"]


def test_the_judged_window_breaks_a_coverage_tie():
    # Both sentences cover the question equally; unjudged, the first one wins.
    text = "Leave is generous here. Parental leave lasts sixteen weeks."
    query = QueryTerms.of("Who gets leave?")
    first = ExtractiveAnswerer(max_sentences=1).answer(query, [candidate(text)]).citations
    assert first[0].quote == "Leave is generous here."
    judged = candidate(text, judge=3.0, window=(text.index("Parental"), len(text)))
    cites = ExtractiveAnswerer(max_sentences=1).answer(query, [judged]).citations
    assert cites[0].quote == "Parental leave lasts sixteen weeks."


def test_a_chunk_the_judge_did_not_read_is_not_quoted():
    # The judge stopped after the first chunk (it settled the gate); the second shares "long".
    leave = candidate("Parental leave lasts sixteen weeks.", "leave.md", judge=3.0)
    passwords = candidate("Passwords must be at least 14 characters long.", "security.md")
    cites = (
        ExtractiveAnswerer()
        .answer(QueryTerms.of("How long is parental leave?"), [leave, passwords])
        .citations
    )
    assert [c.candidate.payload.doc_id for c in cites] == ["leave.md"]
