"""Fit the confidence model on several eval runs at once (development splits only).

    python -m evals.calibrate --run RESULTS.jsonl DATASET.jsonl [--run ...] \
        --out rag/calibration.json

One logistic model over the evidence features of every row; the threshold maximises the worst
of: each set's answer rate on answerable questions and each set's refusal recall on
unanswerable ones. A threshold fitted on one set alone does not carry over to another.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from evals.runner import read_dataset
from rag.confidence import FEATURES, ConfidenceModel, Evidence


def fit(runs: list[tuple[str, list[dict[str, Any]], dict[str, dict[str, Any]]]]) -> ConfidenceModel:
    from sklearn.linear_model import LogisticRegression

    xs, ys, weights, groups = [], [], [], []
    for name, results, dataset in runs:
        rows = [r for r in results if r.get("evidence")]
        pos = sum(1 for r in rows if dataset[r["id"]]["answerable"])
        neg = len(rows) - pos
        for r in rows:
            label = 1 if dataset[r["id"]]["answerable"] else 0
            xs.append([r["evidence"][f] for f in FEATURES])
            ys.append(label)
            # Every (set, label) group weighs the same, whatever its size.
            weights.append(1.0 / (pos if label else neg))
            groups.append((name, label))
    scale = len(weights) / sum(weights)  # keep the regularisation strength independent of it
    weights = [w * scale for w in weights]
    model = LogisticRegression(C=1.0, max_iter=5000).fit(xs, ys, sample_weight=weights)
    fitted = ConfidenceModel(
        weights={f: round(float(w), 6) for f, w in zip(FEATURES, model.coef_[0])},
        bias=round(float(model.intercept_[0]), 6),
        threshold=0.5,
    )
    scores = [fitted.confidence(Evidence(dict(zip(FEATURES, x)), [])) for x in xs]
    best: tuple[float, float, dict[str, float]] = (-1.0, 0.5, {})
    for step in range(1, 200):
        t = step / 200
        rates: dict[str, float] = {}
        for group in sorted(set(groups)):
            members = [s for s, g in zip(scores, groups) if g == group]
            ok = sum(1 for s in members if (s >= t) == bool(group[1]))
            key = f"{group[0]} {'answer_rate' if group[1] else 'refusal_recall'}"
            rates[key] = round(ok / len(members), 4)
        worst = min(rates.values())
        if worst > best[0]:
            best = (worst, t, rates)
    fitted.threshold = best[1]
    fitted.fitted_on = {"sets": [r[0] for r in runs], **best[2]}
    return fitted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run", nargs=2, action="append", metavar=("RESULTS", "DATASET"), required=True, type=Path
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    runs = []
    for results_path, dataset_path in args.run:
        results = [json.loads(line) for line in results_path.read_text().splitlines() if line]
        dataset = {r["id"]: r for r in read_dataset(dataset_path)}
        runs.append((dataset_path.parent.name, results, dataset))
    model = fit(runs)
    model.save(args.out)
    print(json.dumps({"threshold": model.threshold, **model.fitted_on}, indent=2))


if __name__ == "__main__":
    main()
