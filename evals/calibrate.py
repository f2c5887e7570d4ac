"""Fit the confidence model on several eval runs at once (development `calib` split only).

    python -m evals.calibrate --run RESULTS.jsonl DATASET.jsonl [--run ...] \
        [--features judge_max judge_second ...] [--cv] --out rag/answering/calibration.json

One logistic model over the evidence features of every row (default: all of them); the
threshold maximises the worst of: each set's answer rate on answerable questions and each
set's refusal recall on unanswerable ones. A threshold fitted on one set alone does not carry
over to another. `--cv` also prints that worst rate under 5-fold cross-validation inside the
given runs, to choose a feature set without looking at the rows the figures are reported on.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from evals.metrics import group_rates
from evals.runner import read_dataset
from rag.answering.confidence import FEATURES, ConfidenceModel, Evidence

Run = tuple[str, list[dict[str, Any]], dict[str, dict[str, Any]]]
_Row = tuple[list[float], int, tuple[str, int]]


def _rows(runs: list[Run], features: tuple[str, ...]) -> list[_Row]:
    out = []
    for name, results, dataset in runs:
        for r in results:
            if r.get("evidence"):
                label = 1 if dataset[r["id"]]["answerable"] else 0
                out.append(([r["evidence"][f] for f in features], label, (name, label)))
    return out


def _fit_rows(rows: list[_Row], features: tuple[str, ...]) -> ConfidenceModel:
    from sklearn.linear_model import LogisticRegression

    count: dict[tuple[str, int], int] = {}
    for _, _, g in rows:
        count[g] = count.get(g, 0) + 1
    # Every (set, label) group weighs the same, whatever its size.
    weights = [1.0 / count[g] for _, _, g in rows]
    scale = len(weights) / sum(weights)  # keep the regularisation strength independent of it
    model = LogisticRegression(C=1.0, max_iter=5000).fit(
        [x for x, _, _ in rows], [y for _, y, _ in rows], sample_weight=[w * scale for w in weights]
    )
    fitted = ConfidenceModel(
        weights={f: round(float(w), 6) for f, w in zip(features, model.coef_[0])},
        bias=round(float(model.intercept_[0]), 6),
        threshold=0.5,
    )
    scored = [(_score(fitted, features, x), g) for x, _, g in rows]
    grid = [step / 200 for step in range(1, 200)]
    worst = [min(group_rates(scored, t).values()) for t in grid]
    # The middle of the best plateau, not its edge: the edge sits on a training row.
    plateau = [t for t, w in zip(grid, worst) if w == max(worst)]
    fitted.threshold = plateau[len(plateau) // 2]
    fitted.fitted_on = {"features": list(features), **group_rates(scored, fitted.threshold)}
    return fitted


def _score(model: ConfidenceModel, features: tuple[str, ...], x: list[float]) -> float:
    return model.confidence(Evidence(dict(zip(features, x)), []))


def fit(runs: list[Run], features: tuple[str, ...] = FEATURES) -> ConfidenceModel:
    model = _fit_rows(_rows(runs, features), features)
    model.fitted_on = {"sets": [r[0] for r in runs], **model.fitted_on}
    return model


def cross_validate(runs: list[Run], features: tuple[str, ...], folds: int = 5) -> dict[str, float]:
    """Group rates of out-of-fold decisions (each fold judged by a model fitted on the rest)."""
    rows = _rows(runs, features)
    decided: list[tuple[float, tuple[str, int]]] = []
    for k in range(folds):
        model = _fit_rows([r for i, r in enumerate(rows) if i % folds != k], features)
        for i, (x, _, g) in enumerate(rows):
            if i % folds == k:
                # Re-centre on the fold's threshold so one cut (0.5) applies to every fold.
                decided.append((0.5 + _score(model, features, x) - model.threshold, g))
    rates = group_rates(decided, 0.5)
    return {"worst": min(rates.values()), **rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run", nargs=2, action="append", metavar=("RESULTS", "DATASET"), required=True, type=Path
    )
    parser.add_argument("--features", nargs="+", choices=FEATURES, default=list(FEATURES))
    parser.add_argument("--cv", action="store_true", help="also print 5-fold CV rates")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    runs = []
    for results_path, dataset_path in args.run:
        results = [json.loads(line) for line in results_path.read_text().splitlines() if line]
        dataset = {r["id"]: r for r in read_dataset(dataset_path)}
        runs.append((dataset_path.parent.name, results, dataset))
    features = tuple(args.features)
    model = fit(runs, features)
    model.save(args.out)
    report: dict[str, Any] = {"threshold": model.threshold, **model.fitted_on}
    if args.cv:
        report["cross_validated"] = cross_validate(runs, features)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
