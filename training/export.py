"""A trained cross-encoder as the int8 ONNX file the product runs (`rag.answering.judge`,
`rag.answering.verify`)."""

from __future__ import annotations

import json
import os
import platform
import shutil
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from rag.answering.judge import JUDGE_CONFIG, WINDOW_TOKENS
from rag.onnx_export import export_bert
from training.judge_data import base_tokenizer_file


def export(model: Any, out: Path, workdir: Path, tokenizer: Path | None = None) -> None:
    """fp32 ONNX via the TorchScript exporter, then dynamic int8 quantization of the weights;
    beside it the base's `tokenizer` file (None: MiniLM's)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    sample = model.tokenizer(["a question"], ["a passage"], return_tensors="pt")
    fp32 = workdir / "model-fp32.onnx"
    export_bert(model.model, sample, fp32, "logits")
    out.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(fp32), str(out / "model.onnx"), weight_type=QuantType.QInt8)
    uint8_weights(out / "model.onnx")
    shutil.copy(tokenizer or base_tokenizer_file(), out / "tokenizer.json")


def uint8_weights(path: Path) -> None:
    """Store the int8 weights of MatMulInteger as uint8 shifted by 128, zero points with them:
    the same numbers, computed exactly on every x86 CPU. With int8 weights ONNX Runtime
    multiplies uint8 activations by int8 weights with AVX2's vpmaddubsw where the CPU lacks
    VNNI, and that instruction saturates its 16-bit pair sums: on such a CPU the judge's logit
    for one pinned pair came out -0.10 instead of 0.19 (the same model, a VNNI machine). uint8
    by uint8 is widened to 16 bits first and never saturates."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    initializers = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "MatMulInteger":
            continue
        for name in (node.input[1], node.input[3]):  # B and B's zero point
            tensor = initializers.get(name)
            if tensor is not None and tensor.data_type == onnx.TensorProto.INT8:
                shifted = numpy_helper.to_array(tensor).astype(np.int16) + 128
                tensor.CopyFrom(numpy_helper.from_array(shifted.astype(np.uint8), name))
    onnx.save(model, str(path))


def write_reading_config(out: Path, question_tokens: int, seed: int) -> None:
    """How the exported model reads a pair (`rag.answering.judge.JUDGE_CONFIG`, beside it): the
    word pieces of the first text and of the passage window, as training gave them."""
    config = {
        "max_length": question_tokens + WINDOW_TOKENS + 3,  # [CLS] q [SEP] p [SEP]
        "window_tokens": WINDOW_TOKENS,
        "question_tokens": question_tokens,
        "seed": seed,
    }
    (out / JUDGE_CONFIG).write_text(json.dumps(config, indent=2) + "\n")


def run_record(
    rows: Iterable[dict[str, Any]],
    kind_of: Callable[[dict[str, Any]], str],
    minutes: float,
    validation: dict[str, Any],
    **config: Any,
) -> dict[str, Any]:
    """What a model card and a trainer's summary say of one run: how it was configured (its
    recipe, or epochs and threshold), time, machine, training pairs by kind and validation
    figures."""
    counts = Counter(kind_of(r) for r in rows)
    return {
        **config,
        "train_minutes": minutes,
        "machine": machine(),
        "training_pairs": dict(sorted(counts.items())),
        "validation": validation,
    }


def machine() -> str:
    """Where a model was trained, for its card."""
    import torch

    if torch.cuda.is_available():
        return f"one {torch.cuda.get_device_name(0)} GPU"
    return f"{os.cpu_count()} CPU cores (2 threads), {platform.machine()}"
