"""The run's markdown report: the tables and the targets met or missed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bench.common import ASK, LLAMA, RERANK, TARGETS


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    lex = report.get("scale", {}).get("lexical")
    if lex:
        speed = lex["speedup_p50"] or 0.0
        rows.append(
            {
                "target": f"engine BM25 >= {TARGETS['lexical_speedup']:.0f}x faster than "
                f"rank-bm25 at {lex['documents']:,} documents (p50)",
                "measured": f"{speed:.0f}x (p95 {lex['speedup_p95']:.0f}x)",
                "met": speed >= TARGETS["lexical_speedup"],
                "margin": f"{speed / TARGETS['lexical_speedup']:.2f} of the target",
            }
        )
    sizes = {e["chunks"]: e for e in report.get("scale", {}).get("sizes", [])}
    big = sizes.get(100_000)
    if big:
        for kind in ("answerable", "unanswerable", "both"):
            p95 = big["latency_ms"][kind]["total"]["p95"]
            rows.append(
                {
                    "target": f"/ask p95 <= {TARGETS['ask_p95_ms']:.0f} ms at 100k chunks ({kind})",
                    "measured": f"{p95:.1f} ms",
                    "met": p95 <= TARGETS["ask_p95_ms"],
                    "margin": f"{p95 - TARGETS['ask_p95_ms']:+.1f} ms",
                }
            )
    small = sizes.get(10_000)
    if big and small:
        for kind in ("answerable", "both"):
            g = big["latency_ms"][kind]["total"]["p95"] / small["latency_ms"][kind]["total"]["p95"]
            rows.append(
                {
                    "target": f"/ask p95 growth 10k -> 100k <= {TARGETS['growth']}x ({kind})",
                    "measured": f"{g:.2f}x",
                    "met": g <= TARGETS["growth"],
                    "margin": f"{g - TARGETS['growth']:+.2f}",
                }
            )
    for name, q in report.get("quality", {}).items():
        llama = q["systems"][LLAMA]
        for system in (RERANK, ASK):
            ours = q["systems"][system]
            worse = [
                m
                for m in ("recall@5", "mrr@10", "ndcg@10")
                if ours[m] is not None and llama[m] is not None and ours[m] <= llama[m]
            ]
            deltas = ", ".join(
                f"{m} {ours[m] - llama[m]:+.4f}"
                for m in ("recall@5", "mrr@10", "ndcg@10")
                if ours[m] is not None and llama[m] is not None
            )
            rows.append(
                {
                    "target": f"{name}: {system} quality above LlamaIndex",
                    "measured": deltas,
                    "met": not worse and bool(deltas),
                    "margin": "not above on " + ", ".join(worse) if worse else "above on all",
                }
            )
    return rows


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A markdown table, then a blank line."""
    return [
        f"| {' | '.join(header)} |",
        "|" + " --- |" * len(header),
        *(f"| {' | '.join(map(str, row))} |" for row in rows),
        "",
    ]


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"# ragops benchmark, {report['date']}",
        "",
        f"- command: `{report['command']}`",
        f"- git commit: {report['git_commit']}",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Python "
        f"{m['python']}; load average at start {report['load_start']}, at end "
        f"{report['load_end']} (other work shared the machine)",
        f"- wall time: {report['wall_s'] / 60:.1f} min",
        "",
        "## Retrieval quality and per-query latency (val split; quality on answerable rows)",
        "",
    ]
    for name, q in report.get("quality", {}).items():
        ing = report["ingested"][name]
        lines += [
            f"**{name}**: {ing['documents']:,} documents, {ing['chunks']:,} chunks (ours), "
            f"{q['llama_nodes']:,} LlamaIndex nodes; {q['questions']} questions "
            f"({q['answerable']} answerable). Index build: ours {ing['seconds']:.0f} s "
            f"(ingestion), LlamaIndex {q['llama_build_s']:.0f} s, rank-bm25 "
            f"{q['rank_bm25_build_s']:.1f} s.",
            "",
        ]
        lines += table(
            ["system", "recall@5", "MRR@10", "nDCG@10", "p50 ms", "p95 ms"],
            (
                [
                    system,
                    fmt(s["recall@5"]),
                    fmt(s["mrr@10"]),
                    fmt(s["ndcg@10"]),
                    f"{s['latency_ms']['p50']:.2f}",
                    f"{s['latency_ms']['p95']:.2f}",
                ]
                for system, s in q["systems"].items()
            ),
        )
    if report.get("speed"):
        lines += [
            "**Speed ratios** (their latency / ours: > 1 means ours is faster)",
            "",
            *table(
                ["set", "theirs", "ours", "p50 ratio", "p95 ratio"],
                (
                    [
                        r["set"],
                        r["theirs"],
                        r["ours"],
                        f"{fmt(r['p50_ratio'], 2)}x",
                        f"{fmt(r['p95_ratio'], 2)}x",
                    ]
                    for r in report["speed"]
                ),
            ),
        ]
    if report.get("answers"):
        lines += [
            "## Answer or refuse (val split)",
            "",
            "LlamaIndex answers with its top node unless the top fused (RRF) score is below "
            f"the cutoff {report['llama_cutoff']['cutoff']:.6f}, chosen on the calib split "
            f"(objective {report['llama_cutoff']['calib_objective']}); its citation is that "
            "node, valid when the node's text is in its document verbatim."
            + (
                " A cutoff of 0 answers everything: no cutoff on the top RRF score separated "
                "abstention cases from answerable ones better than that on calib."
                if report["llama_cutoff"]["cutoff"] == 0
                else ""
            ),
            "",
            *table(
                [
                    "set",
                    "system",
                    "refusal precision",
                    "refusal recall",
                    "answer rate (answerable)",
                    "answered citing relevant",
                    "citation validity",
                ],
                (
                    [
                        name,
                        system,
                        fmt(a["refusal"]["precision"]),
                        fmt(a["refusal"]["recall"]),
                        fmt(a["answers"]["answer_rate"]),
                        fmt(a["answers"]["answered_citing_relevant"]),
                        fmt(a["answers"]["citation_validity"]),
                    ]
                    for name, per in report["answers"].items()
                    for system, a in per.items()
                ),
            ),
        ]
    ing = report.get("ingest_throughput")
    if ing:
        lines += [
            "## Ingestion throughput",
            "",
            f"{ing['documents']} fitz-gov documents, {ing['kb']:.0f} KB, {ing['chunks']} chunks;"
            f" median of {ing['repeats']} alternating runs.",
            "",
            "| measure | KB/s | chunks/s |",
            "| --- | --- | --- |",
            f"| ingestion, end to end | {ing['ingest']['kb_s']:.1f}"
            f" | {ing['ingest']['chunks_s']:.1f} |",
            f"| raw encode() of the same chunks | {ing['encode']['kb_s']:.1f}"
            f" | {ing['encode']['chunks_s']:.1f} |",
            f"| **ratio ingest / encode** | **{ing['ratio']:.2f}** | |",
            "",
        ]
    sc = report.get("scale")
    if sc and sc["sizes"]:
        lines += [
            "## Scale sweep of /ask (replicated real chunks, see the method in bench/__main__.py)",
            "",
            f"Base: {sc['base_chunks']:,} chunks of the first {sc['base_passages']:,} HaluEval "
            "dev passages; questions: answerable (passage stored) and unanswerable (not "
            "stored), alternating. Latency in ms (wall time of AskPipeline.ask, query log "
            "included); engine BM25 = the sparse query alone.",
            "",
            "| chunks | optimise s | RSS MB | questions | /ask p50 | /ask p95 | embed p50/p95 "
            "| retrieve p50/p95 | judge p50/p95 | engine BM25 p50/p95 | refused |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for e in sc["sizes"]:
            for kind in ("answerable", "unanswerable", "both"):
                t = e["latency_ms"][kind]

                def pp(stage: str, t: dict[str, Any] = t) -> str:
                    return f"{t[stage]['p50']:.1f} / {t[stage]['p95']:.1f}"

                refused = (
                    f"{e['refused'][kind]}/{e['questions'][kind]}"
                    if kind in e["refused"]
                    else f"{sum(e['refused'].values())}/{sum(e['questions'].values())}"
                )
                lines.append(
                    f"| {e['chunks']:,} | {e['optimise_s']} | {e['rss_mb']:.0f} | {kind}"
                    f" | {t['total']['p50']:.1f} | {t['total']['p95']:.1f} | {pp('embed')}"
                    f" | {pp('retrieve')} | {pp('judge')} | {pp('engine_bm25')} | {refused} |"
                )
        lines.append("")
        for k, v in sc.get("summary", {}).items():
            lines.append(f"- {k}: {v}")
        if sc["skipped_sizes"]:
            lines.append(f"- not measured (time budget): {sc['skipped_sizes']}")
        lines.append("")
        lex = sc.get("lexical")
        if lex:
            lines += [
                f"**Lexical at {lex['documents']:,} documents** (the same texts in both, one "
                f"document per chunk; {lex['queries']} HaluEval questions, interleaved; "
                f"rank-bm25 index build {lex['rank_bm25_build_s']} s)",
                "",
                "| system | p50 ms | p95 ms |",
                "| --- | --- | --- |",
                f"| rank-bm25 BM25Okapi (get_top_n) | {lex['rank_bm25_ms']['p50']:.2f}"
                f" | {lex['rank_bm25_ms']['p95']:.2f} |",
                f"| ours: engine BM25 (encode + sparse query) | {lex['engine_bm25_ms']['p50']:.3f}"
                f" | {lex['engine_bm25_ms']['p95']:.3f} |",
                f"| **speed-up** | **{fmt(lex['speedup_p50'], 1)}x** | "
                f"**{fmt(lex['speedup_p95'], 1)}x** |",
                "",
            ]
    if report.get("targets"):
        lines += [
            "## Targets",
            "",
            *table(
                ["target", "measured", "met", "margin"],
                (
                    [t["target"], t["measured"], "yes" if t["met"] else "**no**", t["margin"]]
                    for t in report["targets"]
                ),
            ),
        ]
    prof = (sc or {}).get("profile")
    if prof:
        lines += [
            f"## Profile (cProfile over {report['args']['profile']} asks at "
            f"{report['args']['lexical_size']:,} chunks, after the timed loop)",
            "",
            "```",
            *prof["ask"],
            "```",
            "",
        ]
    lines += [f"- note: {n}" for n in report.get("notes", [])]
    return "\n".join(lines).rstrip() + "\n"
