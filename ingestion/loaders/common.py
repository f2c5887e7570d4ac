"""What every loader shares: the error it raises, the blocks it returns, the limits it obeys, and
how blocks become one `LoadedDocument`."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rag.types import LoadedDocument, SectionSpan

# What a file may unpack to (zip members, PDF streams), as a multiple of its size limit.
MAX_EXPANSION = 10
# Office files are zip archives. Their XML compresses about 5-20x; a decompression bomb packs
# hundreds of megabytes into a few hundred kilobytes (1000x), and python-docx would read the
# whole member into memory before any parser limit applied.
MAX_MEMBER_RATIO = 100
RATIO_CHECK_FROM = 1 << 20  # small members compress better than any real bomb ratio suggests


class LoadError(Exception):
    """A file could not be turned into text; `str(err)` is the reason shown to the operator."""


@dataclass
class Block:
    """One element of a document (paragraph, list item, table row...) under its heading path.
    `ocr_confidence` is set for text read from an image (its page's confidence, 0..1)."""

    text: str
    heading_path: tuple[str, ...]
    ocr_confidence: float | None = None


@dataclass(frozen=True)
class LoadLimits:
    """Bounds on one file, each with the setting an operator raises (`RAG_*`) in its reason."""

    max_bytes: int = 20 * 1024 * 1024
    # OCR: pixels of one page or image, pages read by OCR in one file, seconds of OCR per file.
    ocr_max_pixels: int = 40_000_000
    ocr_max_pages: int = 50
    ocr_timeout_s: float = 300.0
    # Pages whose OCR confidence is below this are indexed, and flagged for an operator.
    ocr_min_confidence: float = 0.8
    # Spreadsheets: cells read per file (every sheet together).
    sheet_max_cells: int = 200_000

    @property
    def max_expanded(self) -> int:
        return self.max_bytes * MAX_EXPANSION


def assemble(
    doc_id: str,
    blocks: list[Block],
    uri: str,
    title: str,
    modified_at: datetime,
    metadata: dict[str, Any] | None = None,
    notes: list[str] | None = None,
) -> LoadedDocument:
    """Join blocks with blank lines, keeping each heading path's character span."""
    parts: list[str] = []
    sections: list[SectionSpan] = []
    pos = 0
    for block in blocks:
        text = block.text.strip()
        if not text:
            continue
        if parts:
            parts.append("\n\n")
            pos += 2
        start = pos
        parts.append(text)
        pos += len(text)
        last = sections[-1] if sections else None
        if last and (last.heading_path, last.ocr_confidence) == (
            block.heading_path,
            block.ocr_confidence,
        ):
            sections[-1] = SectionSpan(last.start, pos, last.heading_path, last.ocr_confidence)
        else:
            sections.append(SectionSpan(start, pos, block.heading_path, block.ocr_confidence))
    text = "".join(parts)
    if not text.strip():
        raise LoadError("no text could be extracted from the file")
    return LoadedDocument(
        doc_id=doc_id,
        text=text,
        uri=uri,
        title=title,
        sections=sections,
        modified_at=modified_at,
        metadata=metadata or {},
        notes=notes or [],
    )


def decode_text(data: bytes) -> str:
    """UTF-8, else a confidently detected legacy encoding; binary content is refused."""
    if b"\x00" in data[:8192]:
        raise LoadError("binary content (NUL bytes) in a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None or best.encoding is None:
        raise LoadError("text is not UTF-8 and its encoding could not be determined")
    text = str(best)
    control = sum(1 for ch in text if ord(ch) < 32 and ch not in "\n\r\t\f")
    if control > max(8, len(text) // 100):
        raise LoadError("binary content in a text file (control characters)")
    return text


def check_archive(path: Path, max_total: int) -> None:
    """Refuse zip bombs from the archive's directory, before any member is inflated.

    zipfile stops reading a member at its declared size, so the declared sizes bound memory.
    """
    kind = path.suffix[1:]
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise LoadError(f"cannot parse {kind} file: not a valid zip archive ({exc})") from exc
    total = sum(m.file_size for m in members)
    if total > max_total:
        raise LoadError(
            f"archive unpacks to {total} bytes, over the {max_total}-byte limit "
            f"({MAX_EXPANSION} x RAG_MAX_FILE_BYTES): refused as a possible zip bomb"
        )
    for m in members:
        if m.file_size >= RATIO_CHECK_FROM and m.file_size > MAX_MEMBER_RATIO * max(
            m.compress_size, 1
        ):
            raise LoadError(
                f"archive member {m.filename!r} expands {m.file_size // max(m.compress_size, 1)}x "
                f"(limit {MAX_MEMBER_RATIO}x): refused as a possible zip bomb"
            )
