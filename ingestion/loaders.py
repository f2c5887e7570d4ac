"""Load files and JSONL corpora into `LoadedDocument`s: text plus its heading structure.

Office, web and mail formats go through unstructured (with the offline spaCy fix); PDFs through
pdfminer.six, the engine under unstructured's "fast" PDF strategy, whose unstructured extra
would pull half a gigabyte of layout models this service never uses. Every failure becomes a
`LoadError` with a reason a person can act on.
"""

from __future__ import annotations

import importlib
import json
import threading
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingestion.offline import prepare_unstructured
from rag.types import LoadedDocument, SectionSpan

TEXT_EXTENSIONS = {".txt", ".md", ".markdown", ".html", ".htm", ".csv", ".json"}
BINARY_EXTENSIONS = {".pdf", ".docx", ".pptx", ".eml"}
SUPPORTED_EXTENSIONS = TEXT_EXTENSIONS | BINARY_EXTENSIONS
# Office files are zip archives. Their XML compresses about 5-20x; a decompression bomb packs
# hundreds of megabytes into a few hundred kilobytes (1000x), and python-docx would read the
# whole member into memory before any parser limit applied.
ZIP_EXTENSIONS = {".docx", ".pptx"}
MAX_MEMBER_RATIO = 100
RATIO_CHECK_FROM = 1 << 20  # small members compress better than any real bomb ratio suggests
# What a file may unpack to (zip members, PDF streams), as a multiple of its size limit.
MAX_EXPANSION = 10


class LoadError(Exception):
    """A file could not be turned into text; `str(err)` is the reason shown to the operator."""


@dataclass
class Block:
    """One element of a document (paragraph, list item, table...) under its heading path."""

    text: str
    heading_path: tuple[str, ...]


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


def assemble(
    doc_id: str,
    blocks: list[Block],
    uri: str,
    title: str,
    modified_at: datetime,
    metadata: dict[str, Any] | None = None,
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
        if sections and sections[-1].heading_path == block.heading_path:
            sections[-1] = SectionSpan(sections[-1].start, pos, block.heading_path)
        else:
            sections.append(SectionSpan(start, pos, block.heading_path))
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


def load_file(path: Path, doc_id: str, max_bytes: int) -> LoadedDocument:
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
    if size > max_bytes:
        raise LoadError(
            f"file is {size} bytes, over the {max_bytes}-byte limit (RAG_MAX_FILE_BYTES)"
        )
    modified_at = datetime.fromtimestamp(before.st_mtime, tz=UTC)
    if ext in ZIP_EXTENSIONS:
        _check_archive(path, max_bytes * MAX_EXPANSION)
    try:
        if ext == ".pdf":
            blocks = _pdf_blocks(path, max_bytes * MAX_EXPANSION)
        elif ext == ".json":
            blocks = _json_blocks(decode_text(path.read_bytes()))
        elif ext in TEXT_EXTENSIONS:
            blocks = _unstructured_blocks(ext, text=decode_text(path.read_bytes()))
        else:
            blocks = _unstructured_blocks(ext, filename=path)
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
    # PDF "headings" are page markers, not titles.
    headed = [b.heading_path[0] for b in blocks if b.heading_path and ext != ".pdf"]
    title = headed[0] if headed else path.stem
    return assemble(doc_id, blocks, path.resolve().as_uri(), title, modified_at)


# Imported on first use: each unstructured partitioner pulls in its own parsing stack.
_PARTITIONERS = {
    ".md": ("md", "partition_md"),
    ".markdown": ("md", "partition_md"),
    ".html": ("html", "partition_html"),
    ".htm": ("html", "partition_html"),
    ".docx": ("docx", "partition_docx"),
    ".pptx": ("pptx", "partition_pptx"),
    ".eml": ("email", "partition_email"),
    ".txt": ("text", "partition_text"),
}


def _unstructured_blocks(
    ext: str, text: str | None = None, filename: Path | None = None
) -> list[Block]:
    prepare_unstructured()
    kwargs: dict[str, Any] = {"text": text} if text is not None else {"filename": str(filename)}
    if ext == ".csv":
        return _csv_blocks(text or "")
    module, function = _PARTITIONERS.get(ext, ("text", "partition_text"))
    partition: Callable[..., list[Any]] = getattr(
        importlib.import_module(f"unstructured.partition.{module}"), function
    )
    elements = partition(**kwargs)
    return _blocks_from_elements(elements, headings=ext != ".txt")


def _blocks_from_elements(elements: list[Any], headings: bool) -> list[Block]:
    """Titles open a heading level (by depth); everything else belongs to the current path."""
    stack: list[tuple[int, str]] = []
    blocks: list[Block] = []
    for el in elements:
        text = (getattr(el, "text", "") or "").strip()
        if not text:
            continue
        if headings and getattr(el, "category", "") == "Title":
            depth = getattr(el.metadata, "category_depth", None) or 0
            while stack and stack[-1][0] >= depth:
                stack.pop()
            stack.append((depth, text))
        blocks.append(Block(text, tuple(t for _, t in stack)))
    return blocks


def _csv_blocks(text: str) -> list[Block]:
    """One block per row as `header: value` pairs, so a row reads as a fact and is retrievable."""
    import csv
    import io

    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise LoadError("empty CSV")
    header, body = rows[0], rows[1:]
    if not body:
        return [Block(", ".join(header), ())]
    return [
        Block("; ".join(f"{h}: {v}" for h, v in zip(header, row) if v.strip()), ()) for row in body
    ]


def _json_blocks(text: str) -> list[Block]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    blocks: list[Block] = []

    def walk(value: Any, path: tuple[str, ...]) -> None:
        if isinstance(value, dict):
            scalars = [f"{k}: {v}" for k, v in value.items() if not isinstance(v, dict | list)]
            if scalars:
                blocks.append(Block("\n".join(scalars), path))
            for k, v in value.items():
                if isinstance(v, dict | list):
                    walk(v, (*path, str(k)))
        elif isinstance(value, list):
            for item in value:
                walk(item, path)
        elif value is not None and str(value).strip():
            blocks.append(Block(str(value), path))

    walk(data, ())
    return blocks


def _check_archive(path: Path, max_total: int) -> None:
    """Refuse zip bombs from the archive's directory, before any member is inflated.

    zipfile stops reading a member at its declared size, so the declared sizes bound memory.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        kind = path.suffix[1:]
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


def _pdf_blocks(path: Path, max_expanded: int) -> list[Block]:
    import pdfminer.pdftypes
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LTTextContainer

    pdfminer.pdftypes.zlib = _PDF_ZLIB  # type: ignore[assignment]
    _PDF_ZLIB.budget = max_expanded
    blocks: list[Block] = []
    for number, page in enumerate(extract_pages(str(path)), start=1):
        for element in page:
            if isinstance(element, LTTextContainer):
                text = " ".join(element.get_text().split())
                if text:
                    blocks.append(Block(text, (f"page {number}",)))
    if not blocks:
        raise LoadError("the PDF has no text layer (a scan or images only); OCR is not supported")
    return blocks


# JSONL corpora ---------------------------------------------------------------------------------


@dataclass
class JsonlRow:
    """One JSONL line: a document, or the reason the line was rejected."""

    line: int
    doc: LoadedDocument | None = None
    error: str | None = None
    doc_id: str | None = None


def _parse_time(value: Any, fallback: datetime) -> datetime:
    if not value:
        return fallback
    ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def read_jsonl(path: Path, max_bytes: int) -> Iterator[JsonlRow]:
    """Rows of a JSONL corpus: `{"id", "text", "title"?, "uri"?, "modified_at"?, "metadata"?}`."""
    file_mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            if len(raw) > max_bytes:
                yield JsonlRow(number, error=f"line {number}: over the {max_bytes}-byte limit")
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                yield JsonlRow(number, error=f"line {number}: not valid JSON ({exc})")
                continue
            if not isinstance(row, dict):
                yield JsonlRow(number, error=f"line {number}: expected a JSON object")
                continue
            missing = [k for k in ("id", "text") if not str(row.get(k) or "").strip()]
            if missing:
                yield JsonlRow(
                    number,
                    error=f"line {number}: missing required field(s) {', '.join(missing)}",
                    doc_id=str(row["id"]) if row.get("id") else None,
                )
                continue
            doc_id = str(row["id"])
            try:
                modified = _parse_time(row.get("modified_at"), file_mtime)
                paragraphs = [p for p in str(row["text"]).split("\n\n") if p.strip()]
                title = str(row.get("title") or doc_id)
                blocks = [Block(p, (title,) if row.get("title") else ()) for p in paragraphs]
                doc = assemble(
                    doc_id,
                    blocks,
                    uri=str(row.get("uri") or f"{path.resolve().as_uri()}#{doc_id}"),
                    title=title,
                    modified_at=modified,
                    metadata=row.get("metadata") if isinstance(row.get("metadata"), dict) else {},
                )
            except (ValueError, LoadError) as exc:
                yield JsonlRow(number, error=f"line {number}: {exc}", doc_id=doc_id)
                continue
            yield JsonlRow(number, doc=doc, doc_id=doc_id)
