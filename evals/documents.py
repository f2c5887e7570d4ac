"""Documents as teams have them, generated for tests and benchmarks: one bus timetable in every
format with tables, and page images (scans, photos) rendered with Pillow. Nothing is downloaded.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

CAPTION = "Route 7 bus timetable"
HEADER = ["Station Road", "Market Square", "Library", "Hospital"]
ROWS = [
    ["07:35", "07:44", "07:50", "08:02"],
    ["08:05", "08:14", "08:20", "08:32"],
    ["08:35", "08:44", "08:50", "09:02"],
]
# What the row of the 08:05 bus must read as, in every format.
ROW_0805 = "Station Road: 08:05; Market Square: 08:14; Library: 08:20; Hospital: 08:32"
INTRO = "Buses on route 7 run every half hour on weekdays from the station to the hospital."


def html_timetable(rows: list[list[str]] = ROWS) -> str:
    head = "".join(f"<th>{h}</th>" for h in HEADER)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return (
        f"<html><head><title>Buses</title></head><body><h1>{CAPTION}</h1><p>{INTRO}</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>"
    )


def markdown_timetable(rows: list[list[str]] = ROWS) -> str:
    lines = [f"# {CAPTION}", "", INTRO, "", "| " + " | ".join(HEADER) + " |"]
    lines.append("|" + "---|" * len(HEADER))
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_docx(path: Path, rows: list[list[str]] = ROWS) -> None:
    from docx import Document

    doc = Document()
    doc.add_heading(CAPTION, 1)
    doc.add_paragraph(INTRO)
    table = doc.add_table(rows=len(rows) + 1, cols=len(HEADER))
    for i, row in enumerate([HEADER, *rows]):
        for j, value in enumerate(row):
            table.cell(i, j).text = value
    doc.save(str(path))


def write_pptx(path: Path, rows: list[list[str]] = ROWS) -> None:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = CAPTION
    shape = slide.shapes.add_table(
        len(rows) + 1, len(HEADER), Inches(0.5), Inches(2), Inches(9), Inches(2)
    )
    for i, row in enumerate([HEADER, *rows]):
        for j, value in enumerate(row):
            shape.table.cell(i, j).text = value
    deck.save(str(path))


def write_pdf(
    path: Path, rows: list[list[str]] = ROWS, pages: int = 1, repeat_header: bool = True
) -> None:
    """The timetable as a ruled PDF table under its caption; with `pages` > 1 the table runs on
    over several pages, its header repeated on each (as word processors print it) or only on
    the first."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Table, TableStyle

    styles = getSampleStyleSheet()
    story: list = [Paragraph(INTRO, styles["BodyText"])]
    per_page = max(1, -(-len(rows) // pages))
    for start in range(0, len(rows), per_page):
        if start:
            story.append(PageBreak())
        story.append(Paragraph(CAPTION, styles["Heading2"]))
        header = [HEADER] if repeat_header or not start else []
        table = Table([*header, *rows[start : start + per_page]])
        table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.black)]))
        story.append(table)
    SimpleDocTemplate(str(path), pagesize=A4).build(story)


def write_xlsx(path: Path, rows: list[list[str]] = ROWS, hidden_sheet: bool = False) -> None:
    from datetime import time

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Route 7"
    sheet.append([CAPTION])
    sheet.append([])
    sheet.append(HEADER)
    for row in rows:
        # Times as real time values, as a spreadsheet holds them.
        sheet.append([time(int(v[:2]), int(v[3:5])) for v in row])
    if hidden_sheet:
        secret = book.create_sheet("Drivers")
        secret.append(["Driver", "Phone"])
        secret.append(["Ada", "555-0101"])
        secret.sheet_state = "hidden"
    book.save(path)


def write_timetables(folder: Path, rows: list[list[str]] = ROWS) -> dict[str, Path]:
    """The same timetable as HTML, Markdown, DOCX, PPTX, PDF, XLSX and CSV; by extension."""
    folder.mkdir(parents=True, exist_ok=True)
    exts = ("html", "md", "docx", "pptx", "pdf", "xlsx", "csv")
    paths = {ext: folder / f"timetable.{ext}" for ext in exts}
    paths["html"].write_text(html_timetable(rows))
    paths["md"].write_text(markdown_timetable(rows))
    write_docx(paths["docx"], rows)
    write_pptx(paths["pptx"], rows)
    write_pdf(paths["pdf"], rows)
    write_xlsx(paths["xlsx"], rows)
    paths["csv"].write_text("\n".join(",".join(r) for r in [HEADER, *rows]) + "\n")
    return paths


# Page images ----------------------------------------------------------------------------------


def render_page(lines: list[str], dpi: int = 300, noise: float = 0.0, skew: float = 0.0):
    """An A4 page (at `dpi`) with `lines` of text, as a grayscale PIL image; `noise` sprinkles
    that share of pixels with grey specks and `skew` turns the page by degrees, like a photo."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = int(8.27 * dpi), int(11.69 * dpi)
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=int(dpi * 0.16))  # ~11.5 pt
    y = int(dpi * 0.8)
    for line in lines:
        draw.text((int(dpi * 0.8), y), line, fill=0, font=font)
        y += int(dpi * 0.28)
    if noise:
        rng = random.Random(7)
        pixels = page.load()
        assert pixels is not None  # an in-memory image always loads
        for _ in range(int(width * height * noise)):
            pixels[rng.randrange(width), rng.randrange(height)] = rng.randrange(90, 200)
    if skew:
        page = page.rotate(skew, expand=True, fillcolor=255)
    return page


def image_pdf(pages: list, path: Path, dpi: int = 300) -> None:
    """A PDF whose pages are the images (a scan: no text layer)."""
    first, *rest = [p.convert("RGB") for p in pages]
    first.save(path, format="PDF", resolution=dpi, save_all=True, append_images=rest)


def mixed_pdf(text_lines: list[str], scan, path: Path) -> None:
    """Page 1 with a text layer, page 2 a scanned image."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4)
    y = 780
    for line in text_lines:
        pdf.drawString(72, y, line)
        y -= 18
    pdf.showPage()
    buf = io.BytesIO()
    scan.convert("RGB").save(buf, format="PNG")
    buf.seek(0)
    pdf.drawImage(ImageReader(buf), 0, 0, width=A4[0], height=A4[1])
    pdf.showPage()
    pdf.save()
