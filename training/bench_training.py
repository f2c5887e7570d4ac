"""What a training step of the judge costs on this CPU, per chunk size and model variant.

    python -m training.bench_training [--batches 24] [--chunks 16 8 4 2 1] [--model stock trainer]
                                   [--frozen none 0 2]

Times forward + backward of `training.cpu.sorted_chunks_loss` (the trainer's loss) on
random batches of the judge's training pairs (`evals/out/judge/pairs.jsonl`, built by
`python -m training.judge_data`), from the base weights, with torch loaded as training loads it.
A chunk of 16 is the whole batch. The model runs `stock`, with the trainer's `pcg` dropout or
`cls` last layer alone (`training.cpu.pcg_dropout`, `cls_only_last_layer`), or with both,
as the `trainer` runs it on a CPU (`cpu_training`); `--frozen` times each with nothing frozen
(`none`) or the embeddings and the first N layers frozen (`training.cpu.frozen_below`;
the shipped recipe: 0). Prints the median and mean seconds a step
for each; `make judge` takes about 1,764 of them. The optimizer step (fused AdamW, ~15 ms) is
left out.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from training.cpu import (
    cls_only_last_layer,
    cpu_training,
    frozen_below,
    pcg_dropout,
    sorted_chunks_loss,
    torch_with_spinning_threads,
)
from training.recipes import BATCH, SEED
from training.train_judge import MAX_LENGTH, base_cross_encoder, read_pairs, training_rows

MODELS: dict[str, Callable[[Any], AbstractContextManager[None]]] = {
    "stock": lambda model: nullcontext(),
    "pcg": lambda model: pcg_dropout(model, SEED),
    "cls": cls_only_last_layer,
    "trainer": lambda model: cpu_training(model, SEED),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=Path("evals/out/judge/pairs.jsonl"))
    parser.add_argument("--batches", type=int, default=24)
    parser.add_argument("--chunks", type=int, nargs="+", default=[BATCH, 8, 4, 2, 1])
    parser.add_argument("--model", nargs="+", choices=list(MODELS), default=["stock", "trainer"])
    parser.add_argument(
        "--frozen", nargs="+", default=["0"], help="none, or N: `frozen_below(model, N)`"
    )
    args = parser.parse_args()
    torch = torch_with_spinning_threads()
    rows = training_rows(read_pairs(args.pairs))
    pick = random.Random(0)
    batches = [pick.sample(rows, BATCH) for _ in range(args.batches)]
    model = base_cross_encoder(None, MAX_LENGTH, "cpu")
    model.train()
    figures = {}
    # Largest chunk first: a smaller one switches the word-piece gradient to sparse for good.
    for chunk in sorted(args.chunks, reverse=True):
        loss = sorted_chunks_loss(model, chunk)
        for name, frozen in itertools.product(args.model, args.frozen):
            seconds = []
            layers = None if frozen == "none" else int(frozen)
            with MODELS[name](model), frozen_below(model, layers):
                for batch in batches:
                    started = time.perf_counter()
                    value = loss(
                        [[r["question"] for r in batch], [r["passage"] for r in batch]],
                        torch.tensor([float(r["label"]) for r in batch]),
                    )
                    value.backward()
                    model.zero_grad(set_to_none=True)
                    seconds.append(time.perf_counter() - started)
            key = f"chunks of {chunk}, {name}, frozen {frozen}"
            figures[key] = {
                "median s/step": round(statistics.median(seconds), 3),
                "mean s/step": round(statistics.mean(seconds), 3),
            }
            print(key, figures[key], file=sys.stderr, flush=True)
    print(json.dumps({"command": "python -m training.bench_training", "steps": figures}, indent=2))


if __name__ == "__main__":
    main()
