"""One way to turn a torch model into ONNX for ONNX Runtime (the judge at training time, the
query encoder at first use): the TorchScript exporter, BERT's three inputs, dynamic batch and
sequence axes, opset 17."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def export_bert(module: Any, sample: Any, path: Path, output: str) -> None:
    """Write `module` (called with the three BERT inputs, as in `sample`, a tokenizer's tensors)
    to `path` with one output named `output`."""
    import torch

    # The tracer warns about shapes it fixes as constants; callers test the exported model
    # against torch at several lengths.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            tuple(sample[n] for n in INPUTS),
            str(path),
            input_names=list(INPUTS),
            output_names=[output],
            dynamic_axes={n: {0: "batch", 1: "sequence"} for n in INPUTS},
            opset_version=17,
            dynamo=False,
        )
