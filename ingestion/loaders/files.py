"""The seam every file goes through: `load_file` checks what is common to all formats (type,
size, zip bombs, a file changing under the reader) and hands the file to its format's module.

    doc = load_file(Path("docs/leave.pdf"), "leave.pdf", LoadLimits())
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from pathlib import Path

from ingestion.loaders.common import (
    Block,
    LoadError,
    LoadLimits,
    assemble,
    check_archive,
    decode_text,
)
from ingestion.loaders.data import json_blocks
from ingestion.loaders.images import IMAGE_EXTENSIONS, image_blocks
from ingestion.loaders.markup import markup_blocks
from ingestion.loaders.ocr import OcrPage, flag_notes
from ingestion.loaders.pdf import pdf_blocks
from ingestion.loaders.sheets import SHEET_EXTENSIONS, csv_blocks, workbook_blocks
from rag.types import LoadedDocument

TEXT_EXTENSIONS = {".txt", ".md", ".markdown", ".html", ".htm", ".csv", ".json"}
OFFICE_EXTENSIONS = {".docx", ".pptx", ".eml"}
SUPPORTED_EXTENSIONS = (
    TEXT_EXTENSIONS | OFFICE_EXTENSIONS | {".pdf"} | IMAGE_EXTENSIONS | SHEET_EXTENSIONS
)
ZIP_EXTENSIONS = {".docx", ".pptx"} | SHEET_EXTENSIONS
# Formats whose headings are page or sheet names, not titles: their title is the file's name.
UNTITLED_EXTENSIONS = {".pdf"} | IMAGE_EXTENSIONS | SHEET_EXTENSIONS


def discover(root: Path) -> list[Path]:
    """Every file below root, hidden files and folders skipped, in a stable order.

    Links to folders are listed too (they are never walked), so `check_location` can report
    them instead of their content silently missing from the index.
    """
    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() or (path.is_symlink() and path.is_dir()):
            out.append(path)
    return out


def printable_name(name: str) -> str:
    """A file name safe to show in job results, logs and terminals: control characters and
    undecodable bytes escaped, everything else (accents, CJK) kept."""
    out = []
    for ch in name:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (os.fsdecode surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif unicodedata.category(ch) in ("Cc", "Cs"):
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


def check_location(path: Path, root: Path) -> None:
    """Refuse what must not be read as a document of this source: links leading out of the
    source root, links to folders, and names that would corrupt logs, terminals and the ops
    database (control characters, bytes that are not UTF-8)."""
    rel = path.relative_to(root).as_posix()
    if printable_name(rel) != rel:
        raise LoadError("file name contains control characters or is not UTF-8; rename the file")
    if path.is_symlink():
        if path.is_dir():
            raise LoadError("symbolic link to a folder; links to folders are not followed")
        if not path.resolve().is_relative_to(root.resolve()):
            raise LoadError("symbolic link pointing outside the source root; not followed")


def load_file(path: Path, doc_id: str, limits: LoadLimits) -> LoadedDocument:
    """Load one file. Raises LoadError for unsupported, empty, oversized or unreadable files."""
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise LoadError(
            f"unsupported file type {ext or '(no extension)'!r}; supported: "
            + ", ".join(sorted(SUPPORTED_EXTENSIONS))
        )
    before = path.stat()
    size = before.st_size
    if size == 0:
        raise LoadError("empty file")
    if size > limits.max_bytes:
        raise LoadError(
            f"file is {size} bytes, over the {limits.max_bytes}-byte limit (RAG_MAX_FILE_BYTES)"
        )
    modified_at = datetime.fromtimestamp(before.st_mtime, tz=UTC)
    if ext in ZIP_EXTENSIONS:
        check_archive(path, limits.max_expanded)
    notes: list[str] = []
    try:
        blocks, notes = _blocks(path, ext, limits)
    except LoadError:
        raise
    except Exception as exc:  # parsers raise many types; the job must go on with the next file
        raise LoadError(f"cannot parse {ext[1:]} file: {type(exc).__name__}: {exc}") from exc
    after = path.stat()
    if (after.st_size, after.st_mtime_ns, after.st_ino) != (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    ):
        # What was parsed may mix two versions; the index keeps the last good one until the
        # next run reads the file at rest.
        raise LoadError("file changed while being read; it will be read again on the next run")
    headed = [b.heading_path[0] for b in blocks if b.heading_path]
    title = headed[0] if headed and ext not in UNTITLED_EXTENSIONS else path.stem
    return assemble(doc_id, blocks, path.resolve().as_uri(), title, modified_at, notes=notes)


def _blocks(path: Path, ext: str, limits: LoadLimits) -> tuple[list[Block], list[str]]:
    """The file's blocks by its format's module, and the notes its job result carries."""
    pages: list[OcrPage] = []
    notes: list[str] = []
    if ext == ".pdf":
        blocks, pages = pdf_blocks(path, limits)
    elif ext in IMAGE_EXTENSIONS:
        blocks, pages = image_blocks(path, limits)
    elif ext in SHEET_EXTENSIONS:
        blocks, notes = workbook_blocks(path, limits)
    elif ext == ".json":
        blocks = json_blocks(decode_text(path.read_bytes()))
    elif ext == ".csv":
        blocks = csv_blocks(decode_text(path.read_bytes()))
    elif ext in TEXT_EXTENSIONS:
        blocks = markup_blocks(ext, text=decode_text(path.read_bytes()))
    else:
        blocks = markup_blocks(ext, filename=path)
    return blocks, notes + flag_notes(pages, limits.ocr_min_confidence)
