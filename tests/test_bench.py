"""`python -m bench --quick` stays runnable: every system's row, sane numbers, md + JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_quick_bench_writes_every_row(tmp_path: Path) -> None:
    from bench.common import LLAMA, SYSTEMS
    from bench.run import main

    report = main(["--quick", "--out", str(tmp_path / "results")])

    md, js = (Path(f) for f in report["files"])
    assert md.suffix == ".md" and js.suffix == ".json"
    assert md.exists() and js.exists()
    text = md.read_text()
    saved = json.loads(js.read_text())
    for key in ("date", "machine", "git_commit", "command", "wall_s"):
        assert saved[key], key
    assert saved["command"].startswith("python -m bench --quick")
    assert saved["machine"]["cores"] >= 1 and saved["machine"]["ram_gib"] > 0

    for name in ("halueval", "fitzgov"):
        systems = saved["quality"][name]["systems"]
        assert set(systems) == set(SYSTEMS)
        for system, row in systems.items():
            assert f"| {system} |" in text
            for metric in ("recall@5", "mrr@10", "ndcg@10"):
                assert 0.0 <= row[metric] <= 1.0, (name, system, metric)
            assert row["latency_ms"]["n"] >= 1
            assert 0.0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p95"], (name, system)
        answers = saved["answers"][name]
        assert set(answers) == {"ours (/ask)", "LlamaIndex + cutoff"}
        for figures in answers.values():
            rate = figures["answers"]["answer_rate"]
            assert rate is None or 0.0 <= rate <= 1.0
    assert {r["theirs"] for r in saved["speed"]} == {SYSTEMS[0], LLAMA}
    assert all(r["p50_ratio"] > 0 for r in saved["speed"])

    ingest = saved["ingest_throughput"]
    assert ingest["ingest"]["chunks_s"] > 0 and ingest["encode"]["chunks_s"] > 0
    assert ingest["ratio"] > 0

    sizes = saved["scale"]["sizes"]
    assert [e["chunks"] for e in sizes] == [400, 1200]
    for e in sizes:
        assert e["rss_mb"] > 0
        for kind in ("answerable", "unanswerable", "both"):
            assert e["latency_ms"][kind]["total"]["p50"] > 0
    lexical = saved["scale"]["lexical"]
    assert lexical["documents"] == 1200
    assert lexical["rank_bm25_ms"]["p50"] > 0 and lexical["engine_bm25_ms"]["p50"] > 0
    assert "## Targets" in text and saved["targets"]


def test_documents_bench_reports_ocr_accuracy_and_loading_per_format(tmp_path: Path) -> None:
    from bench import documents as bench_documents
    from ingestion.loaders.ocr import available

    out = tmp_path / "documents.json"
    engines = ["tesseract"] if available() else []
    bench_documents.main(
        ["--pages", "1", "--rows", "20", "--repeats", "1", "--engines", *engines, "--out", str(out)]
    )
    saved = json.loads(out.read_text())
    assert saved["command"].startswith("python -m bench.documents --pages 1")
    assert set(saved["loading"]) == {"html", "md", "docx", "pptx", "pdf", "xlsx", "csv"}
    for ext, row in saved["loading"].items():
        assert row["row_blocks"] == 20, ext
        assert row["ms_per_file"] > 0 and row["rows_per_s"] > 0
    if engines:
        read = saved["ocr"]["tesseract"]
        assert set(read) == set(bench_documents.CONDITIONS)
        assert all(0.9 <= r["char_accuracy"] <= 1.0 and r["s_per_page"] > 0 for r in read.values())


def test_char_accuracy_is_one_minus_edit_distance_over_the_reference() -> None:
    from bench.documents import char_accuracy

    assert char_accuracy("bays 20 to 35", "bays  20 to\n35") == 1.0
    assert char_accuracy("bays 20 to 35", "bays 20 to 36") == pytest.approx(1 - 1 / 13)
    assert char_accuracy("abc", "completely different") == 0.0
