"""Training a cross-encoder on a CPU in the time budget, exactly: length-sorted chunks of a
batch (the same loss and gradient), seeded PCG64 dropout, frozen lower layers, tail-averaged
weights, spinning intra-op threads."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from training.recipes import AVERAGE_EVERY, BATCH

# On a CPU a batch's forward pass runs in length-sorted chunks of this many pairs (see
# `sorted_chunks_loss`); on a GPU, whole.
CPU_CHUNK = 4


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
