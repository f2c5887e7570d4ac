"""PDFs: the text layer and its tables through pdfplumber (on pdfminer.six, the engine under
unstructured's "fast" strategy, whose extra would pull half a gigabyte of layout models), and
pages with no text layer (scans) rendered by PDFium and read by OCR.

A page's text boxes and tables are read in the order they stand on the page, each tagged with
its page number; a table is read row by row with its headers, and a table that runs on from the
previous page keeps that page's header (repeated or not).
"""

from __future__ import annotations

import math
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingestion.loaders.common import MAX_EXPANSION, Block, LoadError, LoadLimits
from ingestion.loaders.ocr import OcrPage, OcrReader
from ingestion.loaders.tables import clean, grid_from_rows, looks_like_data, row_blocks

OCR_DPI = 300
# A page is a scan when it has almost no text layer and an image covers most of it (a scanner's
# or a signing tool's stamp may add a line of text to a scanned page).
SCAN_MAX_CHARS = 200
SCAN_MIN_IMAGE_SHARE = 0.5
# The text box right above a table names it when it is this short.
CAPTION_MAX_CHARS = 100


class _BoundedZlib(threading.local):
    """Stands in for the `zlib` module inside pdfminer: FlateDecode streams inflate within the
    file's remaining expansion budget instead of without limit (a PDF can be a zip bomb too)."""

    error = zlib.error
    decompressobj = staticmethod(zlib.decompressobj)

    def __init__(self) -> None:
        self.budget = 0

    def decompress(self, data: bytes) -> bytes:
        inflater = zlib.decompressobj()
        out = inflater.decompress(data, self.budget + 1)
        if len(out) > self.budget:
            raise LoadError(
                "PDF streams unpack to more than the "
                f"{MAX_EXPANSION} x RAG_MAX_FILE_BYTES limit: refused as a possible zip bomb"
            )
        self.budget -= len(out)
        return out


_PDF_ZLIB = _BoundedZlib()


@dataclass
class _OpenTable:
    """The last table of the previous page: a table at the top of the next page with as many
    columns continues it."""

    width: int
    header: list[list[Any]]
    caption: str


def pdf_blocks(path: Path, limits: LoadLimits) -> tuple[list[Block], list[OcrPage]]:
    """The PDF's blocks in page order, and the pages that were read by OCR."""
    import pdfminer.pdftypes
    import pdfplumber
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
    from pdfplumber.utils.exceptions import PdfminerException

    pdfminer.pdftypes.zlib = _PDF_ZLIB  # type: ignore[assignment]
    _PDF_ZLIB.budget = limits.max_expanded
    reader = OcrReader(limits)
    blocks: list[Block] = []
    scans: list[OcrPage] = []
    open_table: _OpenTable | None = None
    renderer: Any = None
    try:
        with pdfplumber.open(path, laparams={}) as pdf:
            for number, page in enumerate(pdf.pages, start=1):
                if _is_scan(page):
                    for image in page.images:
                        width, height = image.get("srcsize") or (0, 0)
                        reader.check_pixels(int(width), int(height), f"an image on page {number}")
                    renderer = renderer or _open_renderer(path)
                    scan = reader.read(_render(renderer, number, limits), number)
                    scans.append(scan)
                    blocks.extend(scan.blocks())
                    open_table = None
                    continue
                page_blocks, open_table = _page_blocks(page, number, open_table)
                blocks.extend(page_blocks)
    except (PdfminerException, PDFPasswordIncorrect, PDFEncryptionError) as exc:
        inner = exc.args[0] if isinstance(exc, PdfminerException) and exc.args else exc
        if isinstance(inner, PDFPasswordIncorrect | PDFEncryptionError):
            raise LoadError(
                "the PDF is password-protected or encrypted; ingest an unprotected copy"
            ) from exc
        if isinstance(inner, LoadError):
            raise inner from exc
        raise LoadError(f"cannot parse pdf file: {type(inner).__name__}: {inner}") from exc
    finally:
        if renderer is not None:
            renderer.close()
    if not blocks:
        raise LoadError(
            "no text could be read: the PDF has no text layer and OCR found no text on its pages"
        )
    return blocks, scans


def _is_scan(page: Any) -> bool:
    if not page.chars:
        return True
    if len(page.chars) > SCAN_MAX_CHARS:
        return False
    area = float(page.width * page.height) or 1.0
    covered = sum(
        max(0.0, (i["x1"] - i["x0"])) * max(0.0, (i["bottom"] - i["top"])) for i in page.images
    )
    return covered / area >= SCAN_MIN_IMAGE_SHARE


def _open_renderer(path: Path) -> Any:
    import pypdfium2

    try:
        return pypdfium2.PdfDocument(str(path))
    except pypdfium2.PdfiumError as exc:
        raise LoadError(f"cannot render the PDF's scanned pages: {exc}") from exc


def _render(document: Any, number: int, limits: LoadLimits) -> Any:
    """Page `number` as an image at OCR_DPI, or smaller if that is over the pixel limit."""
    page = document[number - 1]
    width, height = page.get_size()  # points, 1/72 inch
    scale = min(OCR_DPI / 72, math.sqrt(limits.ocr_max_pixels / max(width * height, 1.0)))
    return page.render(scale=scale).to_pil()


def _page_blocks(
    page: Any, number: int, open_table: _OpenTable | None
) -> tuple[list[Block], _OpenTable | None]:
    """A text page's boxes and tables, top to bottom; the table left open at its end."""
    from pdfminer.layout import LTTextContainer

    heading = (f"page {number}",)
    tables = page.find_tables()
    boxes = [t.bbox for t in tables]  # (x0, top, x1, bottom), top-down like pdfplumber's
    items: list[tuple[float, str, Any]] = []
    for element in page.layout:
        if not isinstance(element, LTTextContainer):
            continue
        text = " ".join(element.get_text().split())
        top = page.height - element.y1
        centre = ((element.x0 + element.x1) / 2, top + (element.y1 - element.y0) / 2)
        if text and not any(_inside(centre, box) for box in boxes):
            items.append((top, "text", text))
    items.extend((t.bbox[1], "table", t) for t in tables)
    items.sort(key=lambda item: item[0])
    blocks: list[Block] = []
    last_text = ""
    previous = open_table  # only the page's first table may continue the last page's
    for _, kind, value in items:
        if kind == "text":
            blocks.append(Block(value, heading))
            last_text = value
            continue
        rows = value.extract()
        caption = last_text if 0 < len(last_text) <= CAPTION_MAX_CHARS else ""
        rows, caption = _run_on(rows, previous) or (rows, caption)
        previous = None
        grid = grid_from_rows(rows, caption, fill_merged=True)
        blocks.extend(row_blocks(grid, heading))
        open_table = _OpenTable(grid.width, rows[: grid.header_rows()], caption)
    if not items or items[-1][1] == "text":
        open_table = None
    return blocks, open_table


def _run_on(
    rows: list[list[Any]], previous: _OpenTable | None
) -> tuple[list[list[Any]], str] | None:
    """The rows and caption of a table that continues the previous page's (as many columns;
    its header repeated, or no header and data in its first row), with that header; None when
    it is a table of its own."""
    if previous is None or not previous.header or not rows or len(rows[0]) != previous.width:
        return None
    first = [clean(c) for c in rows[0]]
    if first == [clean(c) for c in previous.header[0]]:
        return previous.header + rows[len(previous.header) :], previous.caption
    if looks_like_data(first):
        return previous.header + rows, previous.caption
    return None


def _inside(point: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    x, y = point
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]
