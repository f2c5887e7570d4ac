"""The qualifier rules: a near miss is not answered with the neighbouring fact, and a question
about a thing no document names is `not_covered` (rag.answering.qualifiers), on spaCy's real
parser, and end to end through /ask over documents written for these tests."""

from __future__ import annotations

import pytest
from conftest import make_settings
from factories import candidate
from fastapi.testclient import TestClient

from api.main import create_app
from ingestion.runner import IngestRequest
from rag.answering.answer import ExtractiveAnswerer
from rag.answering.qualifiers import QualifierReader, shared_qualifier_reader
from rag.retrieval.terms import QueryTerms
from rag.rows import row_cells, row_sentence
from service.ingest import make_ingestor


@pytest.fixture(scope="module")
def reader() -> QualifierReader:
    return shared_qualifier_reader()


@pytest.mark.parametrize(
    "question, sentence, kind, found, asked",
    [
        (
            "How many first aiders must be on site during the early shift?",
            "The night shift runs from 22:00 to 06:00, and at least two first aiders must be on "
            "site during it.",
            "modifier",
            "night shift",
            "early shift",
        ),
        (
            "How long must patients fast before a glucose test?",
            "Patients must fast for eight hours before a cholesterol test.",
            "modifier",
            "cholesterol test",
            "glucose test",
        ),
        (
            "How much can contractors claim for meals per day?",
            "Employees travelling overnight may claim up to 45 pounds per day for meals.",
            "subject",
            "Employees claim",
            "contractors claim",
        ),
        (
            "How much can employees claim for taxis?",
            "Employees may claim up to 45 pounds per day for meals.",
            "object",
            "meals",
            "taxis",
        ),
        (
            "How much storage can a team request for a shared mailbox?",
            "Teams can request up to 1 TB for a shared team folder.",
            "object",
            "shared team folder",
            "shared mailbox",
        ),
        # Two adjectives of one set of values that exclude each other.
        (
            "Can quarterly plans be refunded?",
            "Annual plans are refunded pro rata within 30 days.",
            "modifier",
            "Annual plans",
            "quarterly plans",
        ),
        (
            "How is overtime paid for hours that are not approved in advance?",
            "Overtime is paid at one and a half times the hourly rate for hours approved in "
            "advance.",
            "negation",
            "approved",
            "not approved in",
        ),
    ],
)
def test_a_sentence_about_another_qualifier_contrasts(
    reader, question, sentence, kind, found, asked
):
    contrast = reader.contrast(question, sentence)
    assert contrast is not None
    assert (contrast.kind, contrast.found, contrast.asked) == (kind, found, asked)
    assert found in contrast.describe()


def test_a_row_is_read_back_as_it_was_written():
    labels = ["Passenger", "Single", "Day ticket", ""]
    sentence = row_sentence(labels, ["Adult", "2.80 euros", "", "no refunds"], "Route 42 fares")
    assert sentence == "Route 42 fares — Passenger: Adult; Single: 2.80 euros; no refunds"
    assert row_cells(sentence) == [
        ("Passenger", "Adult"),
        ("Single", "2.80 euros"),
        ("", "no refunds"),
    ]
    # Prose with a dash and a colon is no row.
    assert row_cells("Note — parking: free for staff.") is None


ROW = "Route 42 fares — Passenger: Adult; Single: 2.80 euros; Day ticket: 6.50 euros"


def test_a_row_about_another_kind_of_thing_contrasts(reader):
    contrast = reader.contrast("How much is a senior citizen single fare?", ROW)
    assert contrast is not None and contrast.kind == "row"
    assert contrast.describe() == 'the evidence is about "Passenger: Adult", not "senior citizen"'


@pytest.mark.parametrize(
    "question",
    [
        "How much is an adult single fare on route 42?",  # names the row's key
        "How much is a day ticket on route 42?",  # names nothing the row lacks
    ],
)
def test_a_row_that_may_answer_does_not_contrast(reader, question):
    assert reader.contrast(question, ROW) is None


@pytest.mark.parametrize(
    "question, sentence, context",
    [
        # The answer itself, worded alike.
        (
            "How many first aiders must be on site during the night shift?",
            "The night shift runs from 22:00 to 06:00, and at least two first aiders must be on "
            "site during it.",
            "",
        ),
        # A paraphrase words things differently: no word of one stands where the other's does.
        (
            "My boiler died in January and the flat is freezing. How soon will someone come out?",
            "Emergency repairs, such as a burst pipe or no heating in winter, are attended "
            "within 4 hours.",
            "",
        ),
        # Counting and ordering words do not delimit: "how many days" is asked of "unused days".
        (
            "How many days of holiday can I carry over?",
            "Up to five unused days can be carried over to the next year.",
            "",
        ),
        # The heading the sentence is read with names the question's qualifier.
        (
            "How much sick pay do employees get after two years of service?",
            "After two years of service this rises to 12 weeks at full pay.",
            "Sick leave policy Sick pay",
        ),
        # Two adjectives of no such set: as often one thing seen twice as two things.
        (
            "Is vertical farming more water-efficient than traditional agriculture?",
            "Vertical farming uses 95 percent less water than conventional agriculture.",
            "",
        ),
        # The same verb, preposition and object.
        (
            "How much can employees claim for meals?",
            "Employees may claim up to 45 pounds per day for meals.",
            "",
        ),
        # A light verb says too little to contrast its objects.
        (
            "What do I need for the ferry?",
            "You need a valid ticket for every sailing.",
            "",
        ),
        # A negation the sentence shares is no contrast.
        (
            "What is the allowance for trips that are not overnight?",
            "Trips that are not overnight get no meal allowance.",
            "",
        ),
    ],
)
def test_a_sentence_that_answers_does_not_contrast(reader, question, sentence, context):
    assert reader.contrast(question, sentence, context) is None


@pytest.mark.parametrize(
    "question, thing",
    [
        ("Is there a gym in the building?", "gym"),
        ("Is there a company gym membership?", "company gym membership"),
        ("Are there any lockers for visitors?", "lockers"),
        ("Do the clinics offer flu vaccinations?", "flu vaccinations"),
        ("How long is parental leave?", None),
        ("Can I get a puppy?", None),
    ],
)
def test_the_thing_a_question_asks_the_existence_of(reader, question, thing):
    found = reader.asked_thing(question)
    assert (found.text if found else None) == thing


HANDBOOK = """# Warehouse handbook

## Shifts

The night shift runs from 22:00 to 06:00, and at least two first aiders must be on site during
it. Cold store visits are limited to 45 minutes.

## Meals

Employees travelling overnight may claim up to 45 pounds per day for meals.

## Building

The building manager has an office on the ground floor, open Monday to Friday from 9:00 to
13:00.

## Parking

Staff may park in the north yard with a parking permit from the building manager.
"""


@pytest.fixture(scope="module")
def client(tmp_path_factory, embedder):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("qualifiers")
    docs = tmp / "docs"
    docs.mkdir()
    (docs / "warehouse-handbook.md").write_text(HANDBOOK)
    with TestClient(create_app(make_settings(tmp))) as c:
        services = c.app.state.services  # type: ignore[attr-defined]
        job = make_ingestor(services).run(IngestRequest("hb", "internal", docs, "30d"))
        assert job.status == "succeeded"
        yield c


def ask(client: TestClient, question: str) -> dict:
    response = client.post("/ask", json={"question": question})
    assert response.status_code == 200
    return response.json()


@pytest.mark.integration
def test_the_neighbouring_fact_is_not_an_answer(client):
    right = ask(client, "How many first aiders must be on site during the night shift?")
    assert not right["refused"], right
    assert "two first aiders" in right["answer"]
    near = ask(client, "How many first aiders must be on site during the early shift?")
    assert near["refused"] and near["refusal_reason"] in ("low_confidence", "not_covered")
    assert 'the evidence is about "night shift", not "early shift"' in near["refusal_detail"]


@pytest.mark.integration
def test_a_qualifier_no_document_names_is_not_covered(client):
    body = ask(client, "How much can contractors claim for meals per day?")
    assert body["refused"] and body["refusal_reason"] == "not_covered", body
    assert body["refusal_detail"].startswith(
        "no document in the tiers searched mentions: contractors"
    )


@pytest.mark.integration
def test_a_thing_no_document_names_is_not_covered(client):
    body = ask(client, "Is there a gym in the building?")
    assert body["refused"] and body["refusal_reason"] == "not_covered", body
    assert body["refusal_detail"] == "no document in the tiers searched mentions: gym"


@pytest.mark.integration
def test_evidence_without_the_asked_price_is_not_an_answer(client):
    where = ask(client, "Where can staff park?")
    assert not where["refused"] and "north yard" in where["answer"], where
    price = ask(client, "How much does a parking permit cost?")
    assert price["refused"] and price["refusal_reason"] == "low_confidence", price
    assert price["refusal_detail"].startswith(
        "the question asks for a price; the best evidence gives none"
    )


def test_a_row_tied_with_the_lead_answers_when_it_is_the_one_asked_about(reader):
    rows = [
        "Memberships — Membership: Standard; Monthly fee: 15 euros; Classes: 2 per week",
        "Memberships — Membership: Unlimited; Monthly fee: 25 euros; Classes: all",
    ]
    answerer = ExtractiveAnswerer(qualifiers=reader)
    chunk = [candidate("\n".join(rows))]
    # Both rows cover the question alike ("per" in one, "unlimited" in the other); the
    # Standard row leads by position only.
    query = QueryTerms.of("How much does the unlimited membership cost per month?")
    assert answerer.contrast(query, chunk) is None
    assert "25 euros" in answerer.answer(query, chunk).text
    asked_for_another = QueryTerms.of("How much does the family membership cost per month?")
    assert answerer.contrast(asked_for_another, chunk) is not None
