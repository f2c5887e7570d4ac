"""Compare judge training recipes on the calib split, to choose the one `make judge` trains.

    python -m training.judge_sweep prepare --out .dev/sweep     # here: pairs, candidates, base
    python -m training.judge_sweep run --data .dev/sweep --out OUT [--recipes a,b] [--seconds 420]
    python -m training.judge_sweep score --model rag/answering/models/judge --data .dev/sweep
    python -m training.judge_sweep score --model DIR1 DIR2 --data .dev/sweep  # their mean logit

`prepare` needs the pairs of `training.judge_data` and its ingested data dir: it writes the
development pairs, every calib/val question's top 5 windows as the service ranks
them (hybrid retrieval + the shipped reranker, cut by `passage_window`), and a copy of the
base MiniLM weights in fp16 (so the bundle travels to a GPU machine within its size limit).

`run` trains each recipe of `training.recipes.RECIPES` with `training.train_judge.train_recipe`
(on a GPU where there is one: 2 CPU cores take 30-50 min a recipe) and reports, per recipe,
pair AUCs on calib and val and the question-level decision the gate would make from the judge
alone (the maximum probability over a question's windows): the threshold that maximises the
worst of HaluEval's answer rate, fitz-gov's answer rate and fitz-gov's refusal recall is chosen
on calib, and val is read at it.
Choose on calib; val is reported, never chosen on.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from evals.metrics import auc, group_rates
from rag.answering.confidence import sigmoid
from training.recipes import RECIPES
from training.train_judge import train_recipe, training_rows

JUDGE_DEPTHS = (3, 5)  # the service's default (`RAG_JUDGE_DEPTH`), and a deeper read


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as out:
        for r in rows:
            out.write(json.dumps(r) + "\n")


def _read(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def prepare(judge_out: Path, out: Path) -> None:
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from evals.datasets import fitz_cases, halueval_rows, judge_split
    from rag.retrieval.terms import QueryTerms
    from service.container import Services
    from training.judge_data import Windows, base_tokenizer_file
    from training.train_judge import read_pairs

    out.mkdir(parents=True, exist_ok=True)
    _write(out / "pairs.jsonl.gz", read_pairs(judge_out / "pairs.jsonl"))
    questions = [
        ("halueval", f"halueval-q{r['index']}", r["question"], True, [f"halueval-{r['index']}"])
        for r in halueval_rows()
    ] + [
        ("fitzgov", c["id"], c["question"], c["answerable"], c["relevant_doc_ids"])
        for c in fitz_cases()
    ]
    services = Services.scratch(judge_out)
    windows = Windows(base_tokenizer_file())
    rows = []
    try:
        asker = services.asker
        for name, qid, question, answerable, relevant in questions:
            split = judge_split(name, qid)
            if split not in ("calib", "val"):
                continue
            tier = "verified" if name == "halueval" else "internal"
            query = QueryTerms.of(question)
            found = asker.retriever.retrieve(question, [tier], asker.candidates)
            head = asker.reranker.rerank(query, list(found))[: max(JUDGE_DEPTHS)]
            rows.append(
                {
                    "split": split,
                    "set": name,
                    "qid": qid,
                    "question": question,
                    "answerable": answerable,
                    "windows": [windows.cut(question, c.payload.text) for c in head],
                    "relevant": [c.payload.doc_id in relevant for c in head],
                }
            )
    finally:
        services.close()
    _write(out / "candidates.jsonl.gz", rows)
    source = base_tokenizer_file().parent
    base = out / "base"
    base.mkdir(exist_ok=True)
    for f in source.iterdir():
        if f.is_file() and f.name != "model.safetensors":
            shutil.copy(f, base / f.name)
    weights = load_file(str(source / "model.safetensors"))
    save_file({k: v.to(torch.float16) for k, v in weights.items()}, str(base / "model.safetensors"))
    print(json.dumps({"pairs": str(out / "pairs.jsonl.gz"), "questions": len(rows)}))


def decision_figures(
    candidates: list[dict[str, Any]], probs: list[np.ndarray], threshold: float | None = None
) -> dict[str, Any]:
    """The gate on the judge alone: a question is answered when its best window's probability
    reaches the threshold; chosen (when None) to maximise the worst group rate."""
    best = np.array([p.max() if len(p) else 0.0 for p in probs])
    scored = [(float(b), (c["set"], int(c["answerable"]))) for b, c in zip(best, candidates)]
    if threshold is None:
        grid = np.unique(np.round(best, 3))
        threshold = float(max(grid, key=lambda t: (min(group_rates(scored, t).values()), -t)))
    rates = group_rates(scored, threshold)
    fitz = [i for i, c in enumerate(candidates) if c["set"] == "fitzgov"]
    labels = np.array([candidates[i]["answerable"] for i in fitz], dtype=int)
    return {
        "threshold": round(threshold, 3),
        "worst": min(rates.values()),
        **rates,
        "fitzgov question auc": round(auc(labels, best[fitz]), 4),
    }


def _pair_figures(pairs: list[dict[str, Any]], probs: np.ndarray) -> dict[str, float]:
    labels = np.array([p["label"] for p in pairs])
    figures = {"auc": round(auc(labels, probs), 4)}
    for name in ("halueval", "fitzgov"):
        ix = [i for i, p in enumerate(pairs) if p["set"] == name]
        figures[f"auc {name}"] = round(auc(labels[ix], probs[ix]), 4)
    return figures


def evaluate(
    model: Any, pairs: list[dict[str, Any]], candidates: list[dict[str, Any]]
) -> dict[str, Any]:
    def predict(items: list[tuple[str, str]]) -> np.ndarray:
        return np.asarray(model.predict(items, batch_size=128, show_progress_bar=False))

    figures: dict[str, Any] = {}
    thresholds: dict[str, float] = {}
    for split in ("calib", "val"):
        part = [p for p in pairs if p["split"] == split]
        figures[f"{split} pairs"] = _pair_figures(
            part, predict([(p["question"], p["passage"]) for p in part])
        )
        qs = [c for c in candidates if c["split"] == split]
        flat = predict([(c["question"], w) for c in qs for w in c["windows"]])
        probs, at = [], 0
        for c in qs:
            probs.append(flat[at : at + len(c["windows"])])
            at += len(c["windows"])
        for depth in JUDGE_DEPTHS:
            key = f"depth {depth}"
            figures[f"{split} decision {key}"] = decision_figures(
                qs, [p[:depth] for p in probs], thresholds.get(key)
            )
            # val is read at calib's threshold
            thresholds[key] = figures[f"{split} decision {key}"]["threshold"]
    return figures


def run(data: Path, out: Path, names: list[str], seconds: float, limit: int = 0) -> None:
    """`limit`: train on N pairs and evaluate on about N pairs and N questions (smoke runs)."""
    import tempfile

    pairs = _read(data / "pairs.jsonl.gz")
    candidates = _read(data / "candidates.jsonl.gz")
    if limit:
        evaluated = [p for p in pairs if p["split"] != "train"]
        pairs = [p for p in pairs if p["split"] == "train"] + evaluated[:: len(evaluated) // limit]
        candidates = candidates[:: len(candidates) // limit]
    started = time.perf_counter()
    results: dict[str, Any] = {}
    for name in names:
        if time.perf_counter() - started > seconds:
            print(f"skipped {name}: over {seconds:.0f} s")
            continue
        recipe = RECIPES[name]
        rows = training_rows(pairs, recipe, limit)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            model = train_recipe(rows, Path(tmp), recipe, base=data / "base")
        results[name] = {
            "recipe": asdict(recipe),
            "train pairs": len(rows),
            "pair-passes": round(len(rows) * recipe.epochs),
            "train seconds": round(time.perf_counter() - t0, 1),
            **evaluate(model, pairs, candidates),
        }
        print(json.dumps({name: results[name]}), flush=True)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sweep.json").write_text(json.dumps(results, indent=2) + "\n")


class _Shipped:
    """Judge directories (int8 ONNX, as shipped) behind the `predict` that `evaluate` calls.
    Several make an ensemble: the probability of the mean of their logits."""

    def __init__(self, model_dirs: list[Path]) -> None:
        from rag.answering.judge import AnswerabilityJudge

        self.judges = [AnswerabilityJudge(d) for d in model_dirs]

    def predict(self, items: list[tuple[str, str]], **_: Any) -> np.ndarray:
        return np.array(
            [sigmoid(float(np.mean([j.logits(q, [p])[0] for j in self.judges]))) for q, p in items]
        )


def score(model_dirs: list[Path], data: Path) -> dict[str, Any]:
    figures = evaluate(
        _Shipped(model_dirs), _read(data / "pairs.jsonl.gz"), _read(data / "candidates.jsonl.gz")
    )
    print(json.dumps({" + ".join(map(str, model_dirs)): figures}, indent=2))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--judge-data", type=Path, default=Path("evals/out/judge"))
    p.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("run")
    r.add_argument("--data", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--recipes", default=",".join(RECIPES))
    r.add_argument("--seconds", type=float, default=float("inf"), help="start no recipe after")
    r.add_argument("--limit", type=int, default=0, help="N pairs and questions (smoke runs)")
    m = sub.add_parser("score", help="the same figures for a judge directory (int8 ONNX)")
    m.add_argument("--model", type=Path, nargs="+", required=True, help="several: their ensemble")
    m.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.judge_data, args.out)
    elif args.command == "score":
        score(args.model, args.data)
    else:
        run(args.data, args.out, args.recipes.split(","), args.seconds, args.limit)


if __name__ == "__main__":
    main()
