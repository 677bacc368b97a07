"""The language model's torch side: a GPT-2 built from scratch, the task that trains it on
random windows of the token stream, and generation and scoring past its context.

GPT-2 is nanoGPT's model (learned positions, pre-LayerNorm blocks, GELU MLP, tied embeddings,
residual projections initialised at 0.02 / sqrt(2 * layers)); attention is PyTorch's
``scaled_dot_product_attention``. As in nanoGPT, each training row is a window of
``seq_len + 1`` tokens at a random offset; the offsets of micro-batch ``i`` come from a
generator seeded with (run seed, ``i``), so batch ``i`` is a pure function of ``i`` and a
resumed run sees the batches an uninterrupted one would.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import torch
import torch.nn.functional as F

from gentool.neural.engine import TrainingTask
from gentool.neural.streams import TokenStream
from gentool.tasks import GenerationRequest
from gentool_transformer.config import TransformerLayers

EVAL_BATCH = 16  # windows per forward pass in sliding_loss()
EVAL_WINDOWS = 64  # about as many validation windows per forward pass while training


def build_model(config: TransformerLayers, vocab_size: int, bos: int) -> Any:
    """A freshly initialised GPT-2 of ``config``'s sizes, with SDPA attention."""
    from transformers import GPT2Config, GPT2LMHeadModel

    hf_config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=config.context_length,
        n_embd=config.d_model,
        n_layer=config.num_layers,
        n_head=config.num_heads,
        n_inner=config.d_ff,
        activation_function="gelu",  # exact GELU, as nanoGPT's nn.GELU()
        resid_pdrop=config.dropout,
        embd_pdrop=config.dropout,
        attn_pdrop=config.dropout,
        tie_word_embeddings=config.tie_embeddings,
        bos_token_id=bos,
        eos_token_id=bos,
        pad_token_id=bos,
    )
    model = GPT2LMHeadModel._from_config(hf_config, attn_implementation="sdpa")
    model.generation_config.update(bos_token_id=bos, eos_token_id=bos, pad_token_id=bos)
    return model


class WindowTask(TrainingTask):
    """Random windows of a token stream (nanoGPT's ``get_batch``), one generator per batch."""

    def __init__(
        self,
        model: torch.nn.Module,
        train_ids: TokenStream | torch.Tensor,
        val_ids: TokenStream | torch.Tensor | None,
        rows: int,
        seq_len: int,
        seed: int,
    ) -> None:
        self.model = model
        self.train = TokenStream.of(train_ids)
        self.rows = rows  # per global micro-batch, over all processes
        self.seq_len = seq_len
        self.seed = seed
        self.items_per_batch = rows * seq_len
        self.val = TokenStream.of(val_ids) if val_ids is not None else None
        # Evaluation has no backward pass: read more windows per forward pass.
        self.val_scale = max(1, EVAL_WINDOWS // rows)

    def train_batch(self, index: int, rows: slice) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        # Every row of the global batch is drawn, so a process's rows do not depend on
        # how many processes there are.
        starts = torch.randint(len(self.train) - self.seq_len, (self.rows,), generator=generator)
        chunk = self.train[starts[rows, None] + torch.arange(self.seq_len + 1)]  # (B, T + 1)
        return {"input_ids": chunk[:, :-1], "labels": chunk[:, 1:]}

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        device = next(model.parameters()).device
        inputs = batch["input_ids"].to(device, non_blocking=True)
        labels = batch["labels"].to(device, non_blocking=True)
        logits = model(input_ids=inputs, use_cache=False).logits  # (B, T, V)
        return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten())

    def evaluate(self, model: torch.nn.Module, rows: slice, max_batches: int) -> tuple[float, int]:
        """Sum of the per-token losses over consecutive windows of the validation stream
        (every token after the first predicted once; the first ``max_batches`` global batches
        of ``val_scale * rows`` windows, all when 0); this process takes its share of each."""
        if self.val is None:
            return 0.0, 0
        seq, val = self.seq_len, self.val
        windows = (len(val) - 1) // seq  # full windows of seq + 1 ids, overlapping by one
        device = next(model.parameters()).device
        size = self.rows * self.val_scale
        first, stop = rows.start * self.val_scale, rows.stop * self.val_scale  # this process's
        offsets = torch.arange(seq + 1)
        total, count = 0.0, 0
        for n, start in enumerate(range(0, windows, size)):
            if max_batches and n >= max_batches:
                return total, count
            # the last global batch may end before this process's share begins
            mine = torch.arange(min(start + first, windows), min(start + stop, windows))
            if len(mine):
                chunk = val[mine[:, None] * seq + offsets]  # (W, seq + 1), read from the stream
                total += _summed_loss(model, chunk.to(device))
                count += chunk[:, 1:].numel()
        if len(val) - windows * seq > 1 and rows.start == 0:  # the rest: one process
            tail = val[windows * seq :]
            total += _summed_loss(model, tail[None].to(device))
            count += len(tail) - 1
        return total, count


def _summed_loss(model: torch.nn.Module, chunk: torch.Tensor) -> float:
    logits = model(input_ids=chunk[:, :-1], use_cache=False).logits
    return float(
        F.cross_entropy(logits.float().flatten(0, 1), chunk[:, 1:].flatten(), reduction="sum")
    )


def continue_in_windows(
    model: Any,
    prompt: list[int],
    request: GenerationRequest,
    options: dict[str, Any],
    context: int,
) -> torch.Tensor:
    """``request.num_samples`` continuations of the token ids ``prompt``, each exactly
    ``request.max_tokens`` new ids: (num_samples, max_tokens); ``options`` go to
    ``generate()``.

    The model has ``context`` positions. Like nanoGPT, which crops its input to the
    last ``block_size`` tokens, a prompt longer than that is read from its last tokens and
    a sample runs past it: when the window is full, generation goes on from the last half
    of it (a new KV cache, filled in one pass), so every token is predicted from at least
    half a window. Within one window the KV cache makes each new token one step.
    """
    half = max(1, context // 2)
    beams = request.num_beams > 1
    ids = torch.tensor([prompt], device=model.device)
    if not beams:  # beam search returns its num_samples best beams of one row instead
        ids = ids.expand(request.num_samples, -1)
    made = 0
    remaining = request.max_tokens
    while remaining > 0:
        keep = min(ids.shape[1], max(context - remaining, half))
        window = ids[:, -keep:]
        steps = min(remaining, context - keep)
        rows = request.num_samples if beams and made == 0 else 1
        with torch.no_grad():
            out = model.generate(
                window,
                attention_mask=torch.ones_like(window),
                max_new_tokens=steps,
                min_new_tokens=steps,
                num_return_sequences=rows,
                **options,
            )
        ids = torch.cat([ids.expand(out.shape[0], -1), out[:, keep:]], dim=1)
        made += steps
        remaining -= steps
    return ids[:, ids.shape[1] - made :]


def continue_batch(
    model: Any, prompts: list[list[int]], max_tokens: int, options: dict[str, Any]
) -> list[list[int]]:
    """``max_tokens`` new ids after each of ``prompts`` (of different lengths), in one
    ``generate()`` call: the prompts are padded on the left and masked, so each row is
    computed as alone (its positions start at its first real token). The caller makes
    sure every prompt plus ``max_tokens`` fits in the context."""
    width = max(map(len, prompts))
    pad = options["pad_token_id"]
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=model.device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts],
                        device=model.device)  # fmt: skip
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=mask,
            max_new_tokens=max_tokens,
            min_new_tokens=max_tokens,
            **options,
        )
    return [row[width:] for row in out.tolist()]


def sliding_loss(model: Any, ids: torch.Tensor, context: int) -> float:
    """Summed cross-entropy of ``ids[1:]``, each token given its prefix, in windows of
    ``context`` tokens moved by half a window: a window scores only the targets before it did
    not, so every target after the first window has at least half a window of context."""
    last = len(ids) - 1  # the last target's index
    if last <= context:
        begins, skips = [0], [0]
    else:
        begins = list(range(0, last - context + 1, max(1, context // 2)))
        if begins[-1] + context < last:
            begins.append(last - context)  # a last full window, ending at the last target
        # window k scores its targets after the end (begin + context) of window k - 1
        skips = [0] + [prev + context - begin for prev, begin in pairwise(begins)]
    width = min(context, last)
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(begins), EVAL_BATCH):
            begin = torch.tensor(begins[i : i + EVAL_BATCH])
            chunk = ids[begin[:, None] + torch.arange(width + 1)].to(model.device)  # (B, C + 1)
            logits = model(input_ids=chunk[:, :-1], use_cache=False).logits  # (B, C, V)
            losses = F.cross_entropy(
                logits.float().flatten(0, 1), chunk[:, 1:].flatten(), reduction="none"
            ).view(len(begin), width)
            skip = torch.tensor(skips[i : i + EVAL_BATCH], device=losses.device)
            scored = torch.arange(width, device=losses.device)[None] >= skip[:, None]
            total += float(losses[scored].sum())
    return total
