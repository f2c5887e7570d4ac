"""A trained cross-encoder as the int8 ONNX file the product runs (`rag.answering.judge`,
`rag.answering.verify`)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from rag.onnx_export import export_bert
from training.judge_data import base_tokenizer_file


def export(model: Any, out: Path, workdir: Path) -> None:
    """fp32 ONNX via the TorchScript exporter, then dynamic int8 quantization of the weights."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    sample = model.tokenizer(["a question"], ["a passage"], return_tensors="pt")
    fp32 = workdir / "model-fp32.onnx"
    export_bert(model.model, sample, fp32, "logits")
    out.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(fp32), str(out / "model.onnx"), weight_type=QuantType.QInt8)
    uint8_weights(out / "model.onnx")
    shutil.copy(base_tokenizer_file(), out / "tokenizer.json")


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
