"""Text from page images by OCR: Tesseract (Debian's `tesseract-ocr` + `tesseract-ocr-eng`,
installed by the Makefile), run as a process per page with a deadline.

Chosen over RapidOCR's bundled PP-OCR models (`rapidocr-onnxruntime`) by `python -m
bench.documents` on generated pages (bench/results/documents-2026-12-04.json): character
accuracy 1.000 / 1.000 / 1.000 / 0.993 (300 dpi, 200 dpi, sideways, noisy photo) against
RapidOCR's 0.743 / 0.676 / 0.267 / 0.908, at 1.0-1.1 s a page against 1.5-2.5. PP-OCR's
recogniser runs words together ("A daypermit costs4.50euros") and skipped lines; it would also
bring OpenCV into the product's environment. Tesseract finds a page's orientation itself
(`--psm 1`: page segmentation with orientation detection), so a page scanned sideways reads
like any other.

    page = OcrReader(limits).read(image, number=1)   # OcrPage(number, paragraphs, confidence)
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from ingestion.loaders.common import Block, LoadError, LoadLimits

TESSERACT = "tesseract"
# A line shorter than this share of its paragraph's longest, with no closing punctuation, is a
# heading when a capitalised line follows it.
HEADING_SHARE = 0.6
INSTALL_HINT = (
    "OCR needs Tesseract: install Debian's tesseract-ocr and tesseract-ocr-eng packages "
    "(`make install` does, as root)"
)


@dataclass
class OcrPage:
    """One page's paragraphs as read, and its mean word confidence (0..1)."""

    number: int
    paragraphs: list[str]
    confidence: float

    def blocks(self) -> list[Block]:
        return [
            Block(p, (f"page {self.number}",), round(self.confidence, 3)) for p in self.paragraphs
        ]


def available() -> bool:
    return shutil.which(TESSERACT) is not None


class OcrReader:
    """Reads page images within one file's limits: pixels per page, pages, seconds in all."""

    def __init__(self, limits: LoadLimits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.ocr_timeout_s
        self.pages = 0

    def check_pixels(self, width: int, height: int, what: str) -> None:
        if width * height > self.limits.ocr_max_pixels:
            raise LoadError(
                f"{what} is {width}x{height} pixels, over the {self.limits.ocr_max_pixels}-pixel "
                "limit for OCR (RAG_OCR_MAX_PIXELS)"
            )

    def read(self, image: Any, number: int) -> OcrPage:
        """OCR one page image (a PIL image) as page `number`."""
        if not available():
            raise LoadError(INSTALL_HINT)
        self.pages += 1
        if self.pages > self.limits.ocr_max_pages:
            raise LoadError(
                f"more than {self.limits.ocr_max_pages} pages need OCR, over the limit "
                "(RAG_OCR_MAX_PAGES)"
            )
        self.check_pixels(image.width, image.height, f"page {number}")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self._timeout()
        png = io.BytesIO()
        image.convert("L").save(png, format="PNG")
        try:
            done = subprocess.run(
                [TESSERACT, "stdin", "stdout", "--psm", "1", "-l", "eng", "tsv"],
                input=png.getvalue(),
                capture_output=True,
                timeout=left,
                # One thread per page: the service shares the machine's cores with its API.
                env={**os.environ, "OMP_THREAD_LIMIT": "1"},
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise self._timeout() from exc
        if done.returncode != 0:
            message = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise LoadError(f"OCR failed on page {number}: {message[-1] if message else 'error'}")
        return parse_tsv(done.stdout.decode("utf-8", "replace"), number)

    def _timeout(self) -> LoadError:
        return LoadError(
            f"OCR took longer than the {self.limits.ocr_timeout_s:g}-second limit for one file "
            "(RAG_OCR_TIMEOUT_S)"
        )


def parse_tsv(tsv: str, number: int) -> OcrPage:
    """Tesseract's TSV (one row per word, numbered by block, paragraph and line) as paragraphs.
    A word broken by a hyphen at a line's end is joined again; a short line with no closing
    punctuation above a capitalised one (a heading Tesseract grouped with its text) stands
    alone, so it is never quoted as part of the sentence under it."""
    paragraphs: dict[tuple[str, str], list[list[str]]] = {}
    confidences: list[float] = []
    for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        word = (row.get("text") or "").strip()
        conf = float(row.get("conf") or -1)
        if not word or conf < 0:
            continue
        confidences.append(conf / 100)
        lines = paragraphs.setdefault((row["block_num"], row["par_num"]), [])
        if not lines or lines[-1][0] != row["line_num"]:
            lines.append([row["line_num"]])
        lines[-1].append(word)
    texts: list[str] = []
    for lines in paragraphs.values():
        words = [" ".join(line[1:]) for line in lines]
        longest = max(len(w) for w in words)
        text = ""
        for i, line in enumerate(words):
            if text.endswith("-") and line[:1].islower():
                text = text[:-1] + line
            else:
                text = f"{text} {line}" if text else line
            following = words[i + 1] if i + 1 < len(words) else ""
            if following[:1].isupper() and _heading_like(line, longest):
                texts.append(text)
                text = ""
        if text:
            texts.append(text)
    confidence = sum(confidences) / len(confidences) if confidences else 0.0
    return OcrPage(number, texts, confidence)


def _heading_like(line: str, longest: int) -> bool:
    return len(line) < HEADING_SHARE * longest and line[-1:] not in ".,;:!?-"


def flag_notes(pages: list[OcrPage], floor: float) -> list[str]:
    """What the job's file result says about pages read below the confidence floor."""
    low = [p for p in pages if p.paragraphs and p.confidence < floor]
    if not low:
        return []
    listed = ", ".join(f"page {p.number} ({p.confidence:.2f})" for p in low[:10])
    return [f"OCR confidence below {floor:.2f} (RAG_OCR_MIN_CONFIDENCE) on {listed}"]
