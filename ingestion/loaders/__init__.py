"""Load files and JSONL corpora into `LoadedDocument`s: text plus its heading structure.

One module per family of formats behind one seam, `load_file` (`files`):
- `markup`: Markdown, HTML, DOCX, PPTX, mail and plain text (unstructured);
- `pdf`: PDFs, their text layer and tables (pdfplumber), scanned pages by OCR;
- `images`: scans, photos and screenshots by OCR (`ocr`: Tesseract);
- `sheets`: CSV and Excel workbooks;
- `data`: JSON files and JSONL corpora;
- `tables`: every format's tables read as rows with their headers.
Every failure becomes a `LoadError` with a reason a person can act on.
"""

from ingestion.loaders.common import (
    MAX_EXPANSION,
    Block,
    LoadError,
    LoadLimits,
    assemble,
    decode_text,
)
from ingestion.loaders.data import JsonlRow, read_jsonl
from ingestion.loaders.files import (
    SUPPORTED_EXTENSIONS,
    check_location,
    discover,
    load_file,
    printable_name,
)

__all__ = [
    "MAX_EXPANSION",
    "SUPPORTED_EXTENSIONS",
    "Block",
    "JsonlRow",
    "LoadError",
    "LoadLimits",
    "assemble",
    "check_location",
    "decode_text",
    "discover",
    "load_file",
    "printable_name",
    "read_jsonl",
]
