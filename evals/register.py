"""The product-register set: documents in the register the product's users feed it (a policy, a
timetable with fares, an IT FAQ; a travel handbook, an HTML gym timetable, a billing FAQ) and
84 questions about them, written by hand for this set and never trained or tuned on.

    python -m evals.register [--split dev|test|all] [--show-wrong] [--out RESULTS.jsonl]

Kinds of question: `direct` (wording close to the answering sentence), `paraphrase`,
`near_miss` (another group, place, plan or condition than the document covers; "that are not
..."), `never` (something no document mentions). A direct or paraphrased question is right when
it is answered citing its document and the answer holds the reference (the answering sentence
was quoted, not a heading); a near miss or never-mentioned question is right when it is refused
for lack of evidence. `dev` documents (evals/datasets/register/dev) are for looking at what went
wrong (`--show-wrong` prints only dev rows) and for the gate's calibration (`--split dev --out`
writes the results `evals.calibrate --run` reads); `test` documents are for the figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from evals.corpora import write_jsonl
from evals.metrics import EVIDENCE_REFUSALS, contains_reference

DATASETS = Path(__file__).with_name("datasets")
DOCUMENTS = DATASETS / "register"
QUESTIONS = DATASETS / "register.jsonl"
KINDS = ("direct", "paraphrase", "near_miss", "never")
COMMAND = "python -m evals.register"


def right(result: dict[str, Any], row: dict[str, Any]) -> bool:
    if not row["answerable"]:
        return bool(result["refused"]) and result["refusal_reason"] in EVIDENCE_REFUSALS
    cited = {c["doc_id"] for c in result["citations"]}
    return (
        not result["refused"]
        and bool(set(row["relevant_doc_ids"]) & cited)
        and contains_reference(result["answer"], row.get("reference_answer"))
    )


def score(results: list[dict[str, Any]], rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    by_split: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    reasons: Counter[str] = Counter()
    for result in results:
        row = rows[result["id"]]
        by_split[row["split"]][row["kind"]].append(right(result, row))
        if result["refused"]:
            reasons[result["refusal_reason"]] += 1
    out: dict[str, Any] = {}
    for split, kinds in sorted(by_split.items()):
        out[split] = {
            kind: {"n": len(v), "right": sum(v), "rate": round(sum(v) / len(v), 4)}
            for kind in KINDS
            if (v := kinds.get(kind))
        }
    answered = [r for r in results if not r["refused"]]
    out["quotes_valid"] = (
        round(sum(r["citations_valid"] for r in answered) / len(answered), 4) if answered else None
    )
    out["refusal_reasons"] = dict(reasons.most_common())
    return out


def read_rows(path: Path) -> list[dict[str, Any]]:
    """A question set in this set's format (read and checked by the runner's reader), or in
    the reading set's (`doc`, `kind`, `question`, `answer`: `training/reading`), which becomes
    split `reading`."""
    from evals.runner import read_dataset

    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if lines and "id" in json.loads(lines[0]):
        return read_dataset(path)
    rows = []
    for n, row in enumerate(map(json.loads, lines), 1):
        answerable = row["kind"] in ("direct", "paraphrase")
        rows.append(
            {
                "id": f"reading-{n:03d}",
                "split": "reading",
                "kind": row["kind"],
                "question": row["question"],
                "answerable": answerable,
                "relevant_doc_ids": [row["doc"]] if answerable else [],
                "reference_answer": row["answer"] if answerable else None,
            }
        )
    return rows


def run_register(
    workdir: Path,
    split: str = "all",
    documents: Path = DOCUMENTS,
    questions: Path = QUESTIONS,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Ingest every document of the set (both splits: a question may be answered from any
    document, as in a real index) and ask the split's questions."""
    from evals.runner import run_dataset
    from ingestion.runner import IngestRequest
    from service.container import Services
    from service.ingest import make_ingestor

    services = Services.scratch(workdir)
    try:
        job = make_ingestor(services).run(
            IngestRequest("register", "internal", documents, "30d", trigger="eval")
        )
        if job.status != "succeeded" or job.counts["failed"]:
            raise RuntimeError(f"ingesting the register documents failed: {job.to_dict()}")
        rows = [r for r in read_rows(questions) if split in ("all", r["split"])]
        results = run_dataset(services.asker, services.store, rows, ["internal"])
        return score(results, {r["id"]: r for r in rows}), results
    finally:
        services.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="all", choices=["dev", "test", "reading", "all"])
    parser.add_argument(
        "--documents", type=Path, default=DOCUMENTS, help="another set's documents (a folder)"
    )
    parser.add_argument(
        "--questions", type=Path, default=QUESTIONS, help="another set's questions (JSONL)"
    )
    parser.add_argument("--show-wrong", action="store_true", help="print the dev rows gone wrong")
    parser.add_argument("--out", type=Path, help="write the results here (JSONL)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        report, results = run_register(Path(tmp), args.split, args.documents, args.questions)
    command = f"{COMMAND} --split {args.split}"
    if args.questions != QUESTIONS:
        command += f" --documents {args.documents} --questions {args.questions}"
    print(json.dumps({"command": command, **report}, indent=2))
    if args.out:
        write_jsonl(results, args.out)
    if args.show_wrong:
        rows = {r["id"]: r for r in read_rows(args.questions)}
        for result in results:
            row = rows[result["id"]]
            if row["split"] != "test" and not right(result, row):
                what = (
                    result["answer"]
                    or f"{result['refusal_reason']}: {result.get('refusal_detail')}"
                )
                print(f"{row['kind']:10} {row['question']}\n           -> {what}")


if __name__ == "__main__":
    main()
