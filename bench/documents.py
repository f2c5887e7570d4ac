"""Documents as teams have them: OCR accuracy and speed on generated pages, and loading throughput
per format.

    python -m bench.documents [--pages 3] [--rows 300] [--engines tesseract rapidocr]

OCR: pages of policy text rendered with Pillow (`evals.documents.render_page`) in four
conditions — a clean 300 dpi scan, a 200 dpi scan, a page scanned sideways (90 degrees), and a
phone photo (200 dpi, grey specks, 1.5 degree skew, JPEG quality 70) — each read through the
product's path for its kind of file (`load_file` on a scanned PDF or an image). Character
accuracy is 1 - Levenshtein distance / reference length, whitespace collapsed; the figure per
condition is the median over pages, seconds per page the median too. `rapidocr` (RapidOCR's
PP-OCR models, `pip install rapidocr-onnxruntime`) is read on the same images when installed,
for the engine comparison only.

Loading: a timetable of `--rows` rows written as HTML, Markdown, DOCX, PPTX, PDF, XLSX and CSV,
loaded by `load_file` (parse and table reading; chunking and embedding cost the same for every
format and are `bench.ingest`'s subject): median milliseconds per file, rows per second.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evals.documents import image_pdf, render_page

# Lines of a policy, in the product's register: dates, amounts, times, codes.
POLICY = [
    "Visitor parking and access policy",
    "Visitors may park in bays 20 to 35 on weekdays between 07:30 and 19:00.",
    "A day permit costs 4.50 euros and is issued at the main reception desk.",
    "Contractors must sign in at gate B and wear the orange badge at all times.",
    "Lost badges are replaced for a fee of 12 euros within one working day.",
    "Deliveries over 500 kg use the rear loading bay, booked 48 hours ahead.",
    "The barrier at the north entrance closes at 19:00 on Fridays.",
    "Bicycles are kept in the basement cage behind door B4, code 7731.",
    "Report damage to a vehicle to security on extension 2210 the same day.",
    "Parking on the grass verge or in marked fire lanes is never allowed.",
    "Electric vehicle chargers in bays 1 to 6 are limited to four hours.",
    "Staff with a blue permit may use the multi-storey car park on level 2.",
    "Questions about this policy go to facilities@example.org.",
]
CONDITIONS: dict[str, dict[str, Any]] = {
    "scan-300dpi": {"dpi": 300},
    "scan-200dpi": {"dpi": 200},
    "scan-rotated-90": {"dpi": 300, "rotate": 90},
    "photo-jpeg": {"dpi": 200, "noise": 0.01, "skew": 1.5, "jpeg": True},
}


def page_lines(page: int) -> list[str]:
    """Each page reads the policy from a different line, so pages differ."""
    shift = (page * 5) % len(POLICY)
    return POLICY[shift:] + POLICY[:shift]


def char_accuracy(reference: str, read: str) -> float:
    from rapidfuzz.distance import Levenshtein

    ref, hyp = " ".join(reference.split()), " ".join(read.split())
    return max(0.0, 1.0 - Levenshtein.distance(ref, hyp) / max(len(ref), 1))


def _page_file(folder: Path, name: str, lines: list[str], spec: dict[str, Any]) -> Path:
    image = render_page(
        lines, dpi=spec["dpi"], noise=spec.get("noise", 0.0), skew=spec.get("skew", 0.0)
    )
    if spec.get("rotate"):
        image = image.rotate(spec["rotate"], expand=True)
    if spec.get("jpeg"):
        path = folder / f"{name}.jpg"
        image.convert("RGB").save(path, quality=70)
    else:
        path = folder / f"{name}.pdf"
        image_pdf([image], path, dpi=spec["dpi"])
    return path


def _tesseract(path: Path) -> str:
    from ingestion.loaders import LoadLimits, load_file

    return load_file(path, path.name, LoadLimits()).text


def _rapidocr() -> Callable[[Path], str] | None:
    try:
        from rapidocr_onnxruntime import RapidOCR  # type: ignore[import-not-found]
    except ImportError:
        return None
    engine = RapidOCR()

    def read(path: Path) -> str:
        import numpy as np
        import pypdfium2
        from PIL import Image

        if path.suffix == ".pdf":
            document = pypdfium2.PdfDocument(str(path))
            image = document[0].render(scale=300 / 72).to_pil()
            document.close()
        else:
            image = Image.open(path)
        result, _ = engine(np.asarray(image.convert("RGB")))
        return "\n".join(text for _, text, _ in result or [])

    return read


def measure_ocr(pages: int, engines: list[str]) -> dict[str, Any]:
    readers: dict[str, Callable[[Path], str]] = {}
    if "tesseract" in engines:
        readers["tesseract"] = _tesseract
    rapid = _rapidocr() if "rapidocr" in engines else None
    if rapid is not None:
        readers["rapidocr"] = rapid
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for condition, spec in CONDITIONS.items():
            files = [
                (_page_file(folder, f"{condition}-{p}", page_lines(p), spec), page_lines(p))
                for p in range(pages)
            ]
            for engine, read in readers.items():
                accuracy, seconds = [], []
                for path, lines in files:
                    start = time.perf_counter()
                    text = read(path)
                    seconds.append(time.perf_counter() - start)
                    accuracy.append(char_accuracy("\n".join(lines), text))
                out.setdefault(engine, {})[condition] = {
                    "char_accuracy": round(statistics.median(accuracy), 4),
                    "worst_page": round(min(accuracy), 4),
                    "s_per_page": round(statistics.median(seconds), 2),
                }
    return out


def measure_loading(rows: int, repeats: int) -> dict[str, Any]:
    from evals import documents
    from ingestion.loaders import LoadLimits, load_file

    minutes = [
        [7 * 60 + 5 + 30 * i + 9 * j for j in range(len(documents.HEADER))] for i in range(rows)
    ]
    table = [[f"{m // 60 % 24:02d}:{m % 60:02d}" for m in row] for row in minutes]
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = documents.write_timetables(Path(tmp), table)
        for ext, path in paths.items():
            load_file(path, path.name, LoadLimits())  # warm: the format's parser imported
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                doc = load_file(path, path.name, LoadLimits())
                times.append(time.perf_counter() - start)
            median = statistics.median(times)
            out[ext] = {
                "ms_per_file": round(median * 1000, 2),
                "rows_per_s": round(rows / median),
                "row_blocks": doc.text.count("Station Road:"),
                "kb": round(path.stat().st_size / 1024, 1),
            }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=3)
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    # None (`--engines` alone) measures loading only, as on a machine without an OCR engine.
    parser.add_argument("--engines", nargs="*", default=["tesseract", "rapidocr"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    report = {
        "command": "python -m bench.documents "
        f"--pages {args.pages} --rows {args.rows} --repeats {args.repeats} "
        f"--engines {' '.join(args.engines)}",
        "ocr": measure_ocr(args.pages, args.engines),
        "loading": measure_loading(args.rows, args.repeats),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
