"""Every supported format loads with its structure; every bad input is a clear LoadError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingestion.loaders import LoadError, LoadLimits, load_file, read_jsonl

pytestmark = pytest.mark.integration

CORPORA = Path(__file__).resolve().parent.parent / "corpora"
MAX = 10_000_000
LIMITS = LoadLimits(max_bytes=MAX)


@pytest.mark.parametrize(
    "relpath, expect_text, expect_section",
    [
        ("verified/security-policy.md", "at least 14 characters", "Passwords and multi-factor"),
        ("internal/onboarding.html", "security training", "Accounts"),
        ("verified/leave-policy.pdf", "28 days of paid annual leave", "page 1"),
        ("verified/expense-policy.docx", "75 euros per day", "Meals"),
        ("internal/release-freeze.eml", "14 December 2026", ""),
        ("internal/oncall-rota.csv", "primary: Lukas Brandt", ""),
        ("unverified/scraped-notes.txt", "second office in Lisbon", ""),
    ],
)
def test_sample_formats_load_with_sections(relpath, expect_text, expect_section):
    doc = load_file(CORPORA / relpath, relpath, LIMITS)
    assert doc.doc_id == relpath
    assert expect_text in doc.text
    holder = next(s for s in doc.sections if expect_text in doc.text[s.start : s.end])
    assert expect_section in " > ".join(holder.heading_path)
    # sections tile the text in order, never overlapping
    assert all(a.end <= b.start for a, b in zip(doc.sections, doc.sections[1:]))


def test_pptx_loads_slide_titles(tmp_path):
    from pptx import Presentation

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Quarterly goals"
    slide.placeholders[1].text = "Ship the billing service by the end of June."
    path = tmp_path / "goals.pptx"
    deck.save(path)
    doc = load_file(path, "goals.pptx", LIMITS)
    assert "billing service" in doc.text
    assert doc.title == "Quarterly goals"


def test_json_file_flattens_to_key_values(tmp_path):
    path = tmp_path / "svc.json"
    path.write_text(json.dumps({"service": "billing", "owner": {"team": "payments", "pager": 42}}))
    doc = load_file(path, "svc.json", LIMITS)
    assert "service: billing" in doc.text
    assert "team: payments" in doc.text


def test_latin1_text_is_decoded(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(
        "Le café de l'équipe ouvre à huit heures, près de la réception.".encode("latin-1")
    )
    doc = load_file(path, "notes.txt", LIMITS)
    assert "café de l'équipe" in doc.text


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("tool.exe", b"MZ\x90\x00", "unsupported file type '.exe'"),
        ("empty.md", b"", "empty file"),
        ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf\n%%EOF", "cannot parse pdf file"),
        ("junk.txt", bytes(range(256)) * 20, "binary content"),
        ("broken.docx", b"PK\x03\x04 not a zip at all", "cannot parse docx file"),
        ("bad.json", b'{"a": 1,,}', "invalid JSON at line 1"),
        ("blank.md", b"   \n\n  \n", "no text could be extracted"),
    ],
)
def test_bad_files_raise_clear_errors(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LoadError, match=reason.replace("(", r"\(").replace(".", r"\.")):
        load_file(path, name, LIMITS)


def test_file_over_size_limit(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("word " * 1000)
    with pytest.raises(LoadError, match="over the 100-byte limit"):
        load_file(path, "big.txt", LoadLimits(max_bytes=100))


def test_jsonl_rows_and_line_numbered_errors(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps(
                    {
                        "id": "a",
                        "text": "Alpha text.",
                        "title": "A",
                        "modified_at": "2026-01-02T03:04:05Z",
                    }
                ),
                "{not json",
                json.dumps({"id": "c"}),
                json.dumps({"text": "no id"}),
                "",
                json.dumps({"id": "e", "text": "Echo.", "modified_at": "yesterday"}),
                json.dumps({"id": "f", "text": "Foxtrot paragraph one.\n\nParagraph two."}),
            ]
        )
    )
    rows = list(read_jsonl(path, MAX))
    by_line = {r.line: r for r in rows}
    assert by_line[1].doc is not None and by_line[1].doc.modified_at.year == 2026
    assert by_line[1].doc.title == "A"
    assert "line 2: not valid JSON" in (by_line[2].error or "")
    assert by_line[3].error == "line 3: missing required field(s) text"
    assert by_line[4].error == "line 4: missing required field(s) id"
    assert 5 not in by_line  # blank lines are skipped, numbering stays true to the file
    assert "line 6" in (by_line[6].error or "")
    assert (
        by_line[7].doc is not None
        and by_line[7].doc.text == "Foxtrot paragraph one.\n\nParagraph two."
    )
