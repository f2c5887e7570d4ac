"""Documents as teams have them: tables read as rows with their headers in every format, scans
and images through OCR, spreadsheets; each bad file a per-file reason. All files generated."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from evals.documents import (
    CAPTION,
    HEADER,
    ROW_0805,
    ROWS,
    image_pdf,
    mixed_pdf,
    render_page,
    write_pdf,
    write_timetables,
    write_xlsx,
)
from ingestion.loaders import LoadError, LoadLimits, load_file
from ingestion.loaders import ocr as ocr_module
from ingestion.runner import IngestRequest
from rag.ops.reports import freshness_report
from rag.types import utc_now
from service.ingest import make_ingestor

pytestmark = pytest.mark.integration

LIMITS = LoadLimits()
needs_tesseract = pytest.mark.skipif(
    not ocr_module.available(), reason="tesseract is not installed (`make ocr` installs it)"
)
BUS_QUESTION = "When does the 08:05 bus from Station Road reach the hospital?"
PARKING = [
    "Visitor parking policy",
    "Visitors may park in bays 20 to 35 on weekdays.",
    "The barrier opens at 07:30 and closes at 19:00.",
]
BADGES = [
    "Lost badges",
    "A lost badge is replaced at reception for a fee of 12 euros.",
    "Report the loss to security within one working day.",
]


def blocks(doc) -> list[str]:  # type: ignore[no-untyped-def]
    return doc.text.split("\n\n")


@pytest.fixture(scope="module")
def timetables(tmp_path_factory) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    return write_timetables(tmp_path_factory.mktemp("timetables"))


# Tables as rows with their headers ----------------------------------------------------------


@pytest.mark.parametrize("ext", ["html", "md", "docx", "pptx", "pdf", "xlsx"])
def test_each_format_reads_a_table_row_with_its_headers_and_caption(timetables, ext):
    doc = load_file(timetables[ext], f"timetable.{ext}", LIMITS)
    rows = [b for b in blocks(doc) if "Station Road:" in b]
    assert rows == [
        f"{CAPTION} — " + "; ".join(f"{h}: {v}" for h, v in zip(HEADER, r)) for r in ROWS
    ]
    assert f"{CAPTION} — {ROW_0805}" in rows
    # The header is a label, never a row of its own.
    assert not any(b.startswith(f"{CAPTION} — Station Road; Market Square") for b in blocks(doc))


def test_csv_rows_keep_their_header_pairs(timetables):
    doc = load_file(timetables["csv"], "timetable.csv", LIMITS)
    assert ROW_0805 in blocks(doc)


def test_html_merged_header_cells_caption_and_row_headers(tmp_path):
    path = tmp_path / "hours.html"
    path.write_text(
        "<html><body><h1>Branches</h1><table><caption>Branch opening hours</caption>"
        "<thead><tr><th rowspan=2>Branch</th><th colspan=2>Weekdays</th><th>Saturday</th></tr>"
        "<tr><th>Open</th><th>Close</th><th>Hours</th></tr></thead>"
        "<tbody><tr><th>Leeds</th><td>08:00</td><td>18:00</td><td>closed</td></tr>"
        "<tr><th>York</th><td>09:00</td><td>17:30</td><td>10:00-14:00</td></tr></tbody>"
        "</table><p>Bank holidays follow the Saturday hours.</p></body></html>"
    )
    doc = load_file(path, "hours.html", LIMITS)
    assert blocks(doc) == [
        "Branches",
        "Branch opening hours — Branch: Leeds; Weekdays Open: 08:00; Weekdays Close: 18:00; "
        "Saturday Hours: closed",
        "Branch opening hours — Branch: York; Weekdays Open: 09:00; Weekdays Close: 17:30; "
        "Saturday Hours: 10:00-14:00",
        "Bank holidays follow the Saturday hours.",
    ]
    # Rows stay under the heading they sit under.
    assert [s.heading_path for s in doc.sections] == [("Branches",)]


def test_docx_merged_header_cells_label_both_columns(tmp_path):
    from docx import Document

    document = Document()
    document.add_heading("Opening hours", 1)
    table = document.add_table(rows=3, cols=4)
    for (i, j), text in {
        (0, 0): "Branch",
        (0, 1): "Weekdays",
        (0, 3): "Saturday",
        (1, 1): "Open",
        (1, 2): "Close",
        (1, 3): "Hours",
    }.items():
        table.cell(i, j).text = text
    table.cell(0, 1).merge(table.cell(0, 2))
    table.cell(0, 0).merge(table.cell(1, 0))
    for j, value in enumerate(["Leeds", "08:00", "18:00", "closed"]):
        table.cell(2, j).text = value
    path = tmp_path / "hours.docx"
    document.save(path)
    doc = load_file(path, "hours.docx", LIMITS)
    assert (
        "Opening hours — Branch: Leeds; Weekdays Open: 08:00; Weekdays Close: 18:00; "
        "Saturday Hours: closed"
    ) in blocks(doc)


@pytest.mark.parametrize("repeat_header", [True, False])
def test_pdf_table_over_pages_keeps_its_header_on_each_page(tmp_path, repeat_header):
    path = tmp_path / "long.pdf"
    rows = [[f"{h:02d}:05", f"{h:02d}:14", f"{h:02d}:20", f"{h:02d}:32"] for h in range(6, 12)]
    write_pdf(path, rows, pages=2, repeat_header=repeat_header)
    doc = load_file(path, "long.pdf", LIMITS)
    read = [b for b in blocks(doc) if " — Station Road:" in b]
    assert len(read) == len(rows)
    assert (
        read[-1]
        == f"{CAPTION} — Station Road: 11:05; Market Square: 11:14; Library: 11:20; Hospital: 11:32"
    )
    pages = {doc.section_at(doc.text.index(r)).heading_path for r in read}
    assert pages == {("page 1",), ("page 2",)}


def test_a_table_of_forged_spans_is_refused_before_it_is_spread(tmp_path):
    import resource

    path = tmp_path / "spans.html"
    row = "<tr>" + '<td colspan="1000" rowspan="1000">x</td>' * 50 + "</tr>"
    path.write_text(f"<html><body><table>{row * 200}</table></body></html>")  # ~0.5 MB
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(LoadError, match="more than 200000 cells"):
        load_file(path, "spans.html", LIMITS)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 200_000  # kB


def test_layout_tables_are_read_as_paragraphs(tmp_path):
    path = tmp_path / "layout.html"
    long = "The office is open to visitors from nine to five on every working day of the week. " * 3
    path.write_text(
        f"<html><body><table><tr><td>{long}</td><td>{long}</td></tr></table></body></html>"
    )
    assert blocks(load_file(path, "layout.html", LIMITS)) == [long.strip()]


# Spreadsheets ---------------------------------------------------------------------------------


def test_xlsx_sheets_are_sections_and_hidden_sheets_are_skipped_and_said(tmp_path):
    path = tmp_path / "buses.xlsx"
    write_xlsx(path, hidden_sheet=True)
    doc = load_file(path, "buses.xlsx", LIMITS)
    assert f"{CAPTION} — {ROW_0805}" in blocks(doc)
    assert {s.heading_path for s in doc.sections} == {("Route 7",)}
    assert "555-0101" not in doc.text
    assert doc.notes == ["hidden sheets skipped: Drivers"]
    assert doc.title == "buses"


def test_xlsx_formulas_read_as_their_cached_values(tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Fares"
    sheet.append(["Ticket", "Price"])
    sheet.append(["Single", 2.5])
    sheet.append(["Return", "=B2*2"])
    made = tmp_path / "made.xlsx"
    book.save(made)
    # openpyxl leaves a formula's cached value empty; a spreadsheet application stores the
    # result next to the formula, as here.
    path = tmp_path / "fares.xlsx"
    with zipfile.ZipFile(made) as src, zipfile.ZipFile(path, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            dst.writestr(name, data.replace(b"<f>B2*2</f><v></v>", b"<f>B2*2</f><v>5</v>"))
    doc = load_file(path, "fares.xlsx", LIMITS)
    assert blocks(doc) == ["Fares — Ticket: Single; Price: 2.5", "Fares — Ticket: Return; Price: 5"]


def test_spreadsheet_over_the_cell_limit_is_refused(tmp_path):
    path = tmp_path / "big.xlsx"
    write_xlsx(path, [["08:05"] * 4] * 50)
    with pytest.raises(LoadError, match=r"more than 100 cells.*RAG_SHEET_MAX_CELLS"):
        load_file(path, "big.xlsx", LoadLimits(sheet_max_cells=100))


def test_corrupt_xlsx_is_refused_with_a_reason(tmp_path):
    path = tmp_path / "broken.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook>not really</workbook>")
    with pytest.raises(LoadError, match="cannot parse xlsx file"):
        load_file(path, "broken.xlsx", LIMITS)
    (tmp_path / "noise.xlsx").write_bytes(b"this is no zip archive at all")
    with pytest.raises(LoadError, match="not a valid zip archive"):
        load_file(tmp_path / "noise.xlsx", "noise.xlsx", LIMITS)


# Scans and images through OCR -----------------------------------------------------------------


@needs_tesseract
def test_scanned_pdf_with_a_sideways_page_is_read_page_by_page(tmp_path):
    path = tmp_path / "scan.pdf"
    image_pdf([render_page(PARKING), render_page(BADGES).rotate(90, expand=True)], path)
    doc = load_file(path, "scan.pdf", LIMITS)
    assert blocks(doc) == [*PARKING[:1], " ".join(PARKING[1:]), *BADGES]
    assert [(s.heading_path, s.ocr_confidence is not None) for s in doc.sections] == [
        (("page 1",), True),
        (("page 2",), True),
    ]
    assert all(s.ocr_confidence > 0.9 for s in doc.sections)
    assert doc.notes == [] and doc.title == "scan"


@needs_tesseract
def test_mixed_pdf_reads_the_text_layer_and_ocrs_only_the_scanned_page(tmp_path):
    path = tmp_path / "mixed.pdf"
    mixed_pdf(
        ["Canteen rules", "The canteen opens at 11:30 on weekdays."], render_page(BADGES), path
    )
    doc = load_file(path, "mixed.pdf", LIMITS)
    assert blocks(doc) == ["Canteen rules", "The canteen opens at 11:30 on weekdays.", *BADGES]
    assert [(s.heading_path, s.ocr_confidence is None) for s in doc.sections] == [
        (("page 1",), True),
        (("page 2",), False),
    ]


@needs_tesseract
def test_png_notice_and_noisy_skewed_jpeg_photo_are_read(tmp_path):
    notice = ["NOTICE", "The lifts in block C are out of service until Friday 12 March."]
    render_page(notice, dpi=200).save(tmp_path / "notice.png")
    photo = ["Fire drill", "The fire drill on Thursday starts at 10:15 sharp."]
    render_page(photo, dpi=200, noise=0.01, skew=1.5).convert("RGB").save(
        tmp_path / "photo.jpg", quality=70
    )
    assert blocks(load_file(tmp_path / "notice.png", "notice.png", LIMITS)) == notice
    read = load_file(tmp_path / "photo.jpg", "photo.jpg", LIMITS)
    assert "The fire drill on Thursday starts at 10:15 sharp." in blocks(read)
    assert read.sections[0].heading_path == ("page 1",)


@needs_tesseract
def test_image_over_the_pixel_limit_is_refused_before_it_is_decoded(tmp_path):
    from PIL import Image

    path = tmp_path / "huge.png"
    Image.new("L", (4000, 3000), 255).save(path)
    with pytest.raises(
        LoadError, match=r"4000x3000 pixels, over the 1000000-pixel .*RAG_OCR_MAX_PIXELS"
    ):
        load_file(path, "huge.png", LoadLimits(ocr_max_pixels=1_000_000))


@needs_tesseract
def test_ocr_page_and_time_limits_give_reasons(tmp_path):
    path = tmp_path / "scan.pdf"
    image_pdf([render_page(PARKING, dpi=150), render_page(BADGES, dpi=150)], path, dpi=150)
    with pytest.raises(LoadError, match=r"more than 1 pages need OCR.*RAG_OCR_MAX_PAGES"):
        load_file(path, "scan.pdf", LoadLimits(ocr_max_pages=1))
    with pytest.raises(LoadError, match=r"longer than the 0.01-second limit.*RAG_OCR_TIMEOUT_S"):
        load_file(path, "scan.pdf", LoadLimits(ocr_timeout_s=0.01))


def test_missing_tesseract_is_a_per_file_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(ocr_module, "TESSERACT", "tesseract-not-installed-here")
    render_page(["NOTICE"], dpi=100).save(tmp_path / "notice.png")
    with pytest.raises(LoadError, match="install Debian's tesseract-ocr"):
        load_file(tmp_path / "notice.png", "notice.png", LIMITS)


def test_password_protected_pdf_is_refused_with_a_reason(tmp_path):
    from reportlab.pdfgen import canvas

    path = tmp_path / "locked.pdf"
    pdf = canvas.Canvas(str(path), encrypt="s3cret")
    pdf.drawString(72, 720, "Salaries for 2027.")
    pdf.save()
    with pytest.raises(LoadError, match="password-protected"):
        load_file(path, "locked.pdf", LIMITS)


def test_ocr_paragraphs_split_headings_and_join_hyphenated_words():
    tsv = "\n".join(
        [
            "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext",
            *(
                f"5\t1\t1\t1\t{line}\t{n}\t0\t0\t1\t1\t{conf}\t{word}"
                for line, n, conf, word in [
                    (1, 1, 96, "Lost"),
                    (1, 2, 95, "badges"),
                    (2, 1, 90, "A"),
                    (2, 2, 90, "lost"),
                    (2, 3, 90, "badge"),
                    (2, 4, 90, "is"),
                    (2, 5, 90, "re-"),
                    (3, 1, 80, "placed"),
                    (3, 2, 80, "at"),
                    (3, 3, 80, "reception."),
                ]
            ),
        ]
    )
    page = ocr_module.parse_tsv(tsv, 3)
    assert page.paragraphs == ["Lost badges", "A lost badge is replaced at reception."]
    assert page.confidence == pytest.approx(0.881)
    assert [b.heading_path for b in page.blocks()] == [("page 3",), ("page 3",)]


# End to end: ingest, ask, report --------------------------------------------------------------


@pytest.mark.slow
def test_every_format_answers_the_timetable_question_citing_its_row(
    services_factory, timetables, tmp_path
):
    for ext in ("html", "md", "docx", "pptx", "pdf", "xlsx"):
        folder = tmp_path / f"docs-{ext}"
        folder.mkdir()
        shutil.copy(timetables[ext], folder / timetables[ext].name)
        services = services_factory(data_dir=tmp_path / f"data-{ext}")
        job = make_ingestor(services).run(IngestRequest("buses", "internal", folder, "30d"))
        assert job.status == "succeeded" and job.counts["added"] == 1, ext
        result = services.asker.ask(BUS_QUESTION, ["internal"])
        assert result.refusal_reason is None, ext
        row = f"{CAPTION} — {ROW_0805}"
        quotes = [c.quote for c in result.citations]
        assert row in quotes, (ext, quotes)
        assert all(c.doc_id == f"timetable.{ext}" for c in result.citations)
        # Another row's time is never quoted.
        assert not any("07:35" in q or "08:35" in q for q in quotes), (ext, quotes)
        services.close()


@pytest.mark.slow
@needs_tesseract
def test_scans_and_photos_answer_bad_files_fail_alone_and_low_confidence_pages_are_flagged(
    services_factory, tmp_path
):
    from reportlab.pdfgen import canvas

    folder = tmp_path / "scans"
    folder.mkdir()
    mixed_pdf(
        ["Canteen rules", "The canteen opens at 11:30 on weekdays."],
        render_page(BADGES),
        folder / "rules.pdf",
    )
    render_page(
        ["NOTICE", "The lifts in block C are out of service until Friday 12 March."], dpi=200
    ).save(folder / "notice.png")
    render_page(
        ["Fire drill", "The fire drill on Thursday starts at 10:15 sharp."],
        dpi=200,
        noise=0.01,
        skew=1.5,
    ).convert("RGB").save(folder / "photo.jpg", quality=70)
    locked = canvas.Canvas(str(folder / "locked.pdf"), encrypt="s3cret")
    locked.drawString(72, 720, "Salaries for 2027.")
    locked.save()
    (folder / "broken.xlsx").write_bytes(b"PK\x03\x04 not a workbook")
    write_xlsx(folder / "big.xlsx", [["08:05"] * 4] * 60)
    from PIL import Image

    Image.new("L", (4000, 3000), 255).save(folder / "huge.png")
    # A floor above any page's confidence: every OCR'd page is flagged, and still served.
    services = services_factory(
        ocr_min_confidence=0.99, ocr_max_pixels=10_000_000, sheet_max_cells=200
    )
    job = make_ingestor(services).run(IngestRequest("scans", "internal", folder, "30d"))
    assert job.status == "succeeded"
    results = {f.path: f for f in job.files}
    assert {p for p, f in results.items() if f.status == "added"} == {
        "rules.pdf",
        "notice.png",
        "photo.jpg",
    }
    reasons = {p: f.reason or "" for p, f in results.items() if f.status == "failed"}
    assert "password-protected" in reasons["locked.pdf"]
    assert "not a valid zip archive" in reasons["broken.xlsx"]
    assert "RAG_SHEET_MAX_CELLS" in reasons["big.xlsx"]
    assert "RAG_OCR_MAX_PIXELS" in reasons["huge.png"]
    assert "OCR confidence below 0.99" in (results["rules.pdf"].reason or "")
    assert "page 2" in (results["rules.pdf"].reason or "")

    chunks = {p.chunk_id: p for p in services.store.scroll("internal")}
    for question, doc_id, fact, page in [
        ("What is the fee for replacing a lost badge?", "rules.pdf", "12 euros", "page 2"),
        ("Until when are the lifts in block C out of service?", "notice.png", "12 March", "page 1"),
        ("When does the fire drill on Thursday start?", "photo.jpg", "10:15", "page 1"),
    ]:
        result = services.asker.ask(question, ["internal"])
        assert result.refusal_reason is None, question
        cited = result.citations[0]
        assert cited.doc_id == doc_id and fact in result.answer, (question, result.answer)
        chunk = chunks[cited.chunk_id]
        assert cited.quote in chunk.text
        assert chunk.section == page and chunk.ocr_confidence is not None
        assert chunk.ocr_flag and "below 0.99" in chunk.ocr_flag
    # The text layer page is not OCR and never flagged.
    text_layer = [p for p in chunks.values() if p.doc_id == "rules.pdf" and p.section == "page 1"]
    assert text_layer and all(p.ocr_confidence is None and not p.ocr_flag for p in text_layer)

    report = freshness_report(
        services.catalog, services.jobs, services.store, utc_now()
    ).model_dump()
    source = next(s for s in report["sources"] if s["source"] == "scans")
    flagged = {(f["doc_id"], f["page"]) for f in source["ocr_flagged"]}
    assert flagged == {("rules.pdf", "page 2"), ("notice.png", "page 1"), ("photo.jpg", "page 1")}
    assert source["chunks_ocr_flagged"] == sum(1 for p in chunks.values() if p.ocr_flag)


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="needs the evidence reader (issue: evidence reader v2): a row is answered for a "
    "question about a column its table does not have",
)
def test_a_question_about_a_column_the_table_lacks_is_refused(
    services_factory, timetables, tmp_path
):
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(timetables["xlsx"], folder / "timetable.xlsx")
    services = services_factory()
    make_ingestor(services).run(IngestRequest("buses", "internal", folder, "30d"))
    result = services.asker.ask(
        "When does the 08:05 bus from Station Road reach the airport?", ["internal"]
    )
    assert result.refusal_reason is not None, result.answer
