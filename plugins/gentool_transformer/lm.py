"""The transformer family's decoder-only language model: nanoGPT's architecture as a Hugging
Face ``GPT2LMHeadModel`` built from scratch, trained on gentool's engine.

GPT-2 is nanoGPT's model (learned positions, pre-LayerNorm blocks, GELU MLP, tied embeddings,
residual projections initialised at 0.02 / sqrt(2 * layers)); attention is PyTorch's
``scaled_dot_product_attention``. A run is a plain ``gpt2`` checkpoint: it loads with
``AutoModelForCausalLM`` / ``AutoTokenizer`` and no gentool code.

The training text is one token stream (``<|endoftext|>`` first). As in nanoGPT, each training
row is a window of ``seq_len + 1`` tokens at a random offset; the offsets of micro-batch ``i``
come from a generator seeded with (run seed, ``i``), so batch ``i`` is a pure function of ``i``
and a resumed run sees the batches an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gentool.data import read_corpus
from gentool.neural.tokenizers import encode_text, run_tokenizer, train_tokenizer
from gentool.neural.streams import LN2, scoring_stream, split_stream, stream_metrics
from gentool.errors import DataError, RecipeError
from gentool.family import (
    GENERATE_TEXT,
    SCORE_TEXT,
    GenerationRequest,
    TrainingContext,
    sample_batches,
)
from gentool.neural.engine import check_setup, fit, require_neural
from gentool_transformer.family import (
    TransformerFamily,
    TransformerModelConfig,
    TransformerTrainConfig,
)

EVAL_BATCH = 16  # windows per forward pass in evaluate()
EVAL_WINDOWS = 64  # about as many validation windows per forward pass while training


def build_model(config: TransformerModelConfig, vocab_size: int, bos: int) -> Any:
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


class WindowTask:
    """Random windows of a token stream (nanoGPT's ``get_batch``), one generator per batch."""

    unit = "tokens"

    def __init__(
        self,
        model: torch.nn.Module,
        train_ids: torch.Tensor,
        val_ids: torch.Tensor | None,
        rows: int,
        seq_len: int,
        seed: int,
    ) -> None:
        self.model = model
        self.train = train_ids
        self.rows = rows  # per global micro-batch, over all processes
        self.seq_len = seq_len
        self.seed = seed
        self.items_per_batch = rows * seq_len
        self.val = _windows(val_ids, seq_len) if val_ids is not None else None
        # Evaluation has no backward pass: read more windows per forward pass.
        self.val_scale = max(1, EVAL_WINDOWS // rows)

    def train_batch(self, index: int, rows: slice) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        # Every row of the global batch is drawn, so a process's rows do not depend on
        # how many processes there are.
        starts = torch.randint(len(self.train) - self.seq_len, (self.rows,), generator=generator)
        chunk = self.train[starts[rows, None] + torch.arange(self.seq_len + 1)]  # (B, T + 1)
        return {"input_ids": chunk[:, :-1], "labels": chunk[:, 1:]}

    def loss(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor], carry: Any
    ) -> tuple[torch.Tensor, None]:
        device = next(model.parameters()).device
        inputs = batch["input_ids"].to(device, non_blocking=True)
        labels = batch["labels"].to(device, non_blocking=True)
        logits = model(input_ids=inputs, use_cache=False).logits  # (B, T, V)
        return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten()), None

    def evaluate(self, model: torch.nn.Module, rows: slice, max_batches: int) -> tuple[float, int]:
        """Sum of the per-token losses over consecutive windows of the validation stream
        (every token after the first predicted once; the first ``max_batches`` global batches
        of ``val_scale * rows`` windows, all when 0); this process takes its share of each."""
        if self.val is None:
            return 0.0, 0
        full, tail = self.val
        device = next(model.parameters()).device
        size = self.rows * self.val_scale
        first, stop = rows.start * self.val_scale, rows.stop * self.val_scale  # this process's
        total, count = 0.0, 0
        for n, start in enumerate(range(0, len(full), size)):
            if max_batches and n >= max_batches:
                return total, count
            chunk = full[start + first : min(start + stop, len(full))]
            if len(chunk):
                total += _summed_loss(model, chunk.to(device))
                count += chunk[:, 1:].numel()
        if tail is not None and rows.start == 0:  # the last, shorter window: one process
            total += _summed_loss(model, tail[None].to(device))
            count += len(tail) - 1
        return total, count


def _windows(ids: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Consecutive windows of ``seq_len + 1`` tokens overlapping by one, (W, seq_len + 1), and
    the shorter remainder (or None), so that every token but the first is a target once."""
    count = (len(ids) - 1) // seq_len
    if count == 0:
        return ids.new_empty((0, seq_len + 1)), ids
    full = ids[: count * seq_len + 1].unfold(0, seq_len + 1, seq_len)
    rest = ids[count * seq_len :]
    return full, (rest if len(rest) > 1 else None)


def _summed_loss(model: torch.nn.Module, chunk: torch.Tensor) -> float:
    logits = model(input_ids=chunk[:, :-1], use_cache=False).logits
    return float(
        F.cross_entropy(logits.float().flatten(0, 1), chunk[:, 1:].flatten(), reduction="sum")
    )


class LanguageModel(TransformerFamily):
    """A decoder-only transformer language model (GPT-2 architecture)."""

    def __init__(
        self, model: Any, tokenizer: Any, config: TransformerModelConfig, metrics: dict[str, Any]
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.metrics = metrics
        self.tasks = (GENERATE_TEXT, SCORE_TEXT)  # a language model does not translate

    @property
    def bos(self) -> int:
        return _bos(self.tokenizer)

    # -- training -----------------------------------------------------------------------------
    @classmethod
    def train(cls, config: TransformerModelConfig, context: TrainingContext) -> LanguageModel:
        require_neural()
        train_config: TransformerTrainConfig = context.train
        run_dir = context.run_dir
        assert run_dir is not None
        check_config(config, train_config)
        check_setup(train_config, context.runtime)  # before the data work, not after it
        tokens = config.resolved_tokens("decoder")
        text = read_corpus(context.data)
        vocab = config.vocab_size if tokens == "bpe" else None  # char: every character
        tokenizer = run_tokenizer(
            run_dir,
            context.runtime.resume,
            lambda: train_tokenizer(tokens, [text], vocab_size=vocab),
            context.log,
        )
        bos = _bos(tokenizer)
        train_ids, val_ids = split_stream(
            tokenizer, text, bos, context.val, train_config.val_fraction, context.log
        )
        seq_len = train_config.seq_len
        if len(train_ids) < seq_len + 1:
            raise DataError(
                f"the training data has {len(train_ids)} {tokens} tokens, fewer than one window "
                f"of train.seq_len={seq_len} + 1; give more data or lower train.seq_len"
            )
        if val_ids is not None and len(val_ids) < 2:
            val_ids = None
        torch.manual_seed(context.seed)
        model = build_model(config, len(tokenizer), bos)
        rows = train_config.batch_size // train_config.grad_accum
        task = WindowTask(model, train_ids, val_ids, rows, seq_len, context.seed)
        result = fit(
            task, train_config, context.runtime, run_dir, context.log, tracker_config=context.recipe
        )
        metrics: dict[str, Any] = {
            "steps": result.steps,
            "train_loss": result.train_loss,
            "val_loss": result.val_loss,
            "train_tokens": len(train_ids),
            "val_tokens": len(val_ids) if val_ids is not None else 0,
            "tokens_per_s": result.items_per_second,
            "train_seconds": result.seconds,
            "mixed_precision": result.mixed_precision,
            "parameters": _parameters(task.model),
        }
        if result.val_loss is not None:
            metrics["val_bits_per_token"] = result.val_loss / LN2
        return cls(task.model.eval(), tokenizer, config, metrics)

    # -- persistence --------------------------------------------------------------------------
    @classmethod
    def load(cls, directory: Path, config: TransformerModelConfig) -> LanguageModel:
        require_neural()
        from transformers import AutoModelForCausalLM

        from gentool.neural.weights import load_pretrained

        model, tokenizer = load_pretrained(
            AutoModelForCausalLM,
            directory,
            "gpt2",
            ("bos_token", "unk_token"),
            attn_implementation="sdpa",
        )
        return cls(model, tokenizer, config, {})

    # -- tasks --------------------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> list[str]:
        return list(self.generate_iter(request))

    def generate_iter(self, request: GenerationRequest) -> Iterator[str]:
        """Continue ``request.prompt`` (after ``<|endoftext|>``) by ``max_tokens`` tokens; each
        sample is the whole prompt followed by its continuation (see ``continue_ids``),
        yielded batch by batch (``sample_batches``)."""
        tok = self.tokenizer
        if 1 < request.num_beams < request.num_samples:
            raise RecipeError(
                f"--beams {request.num_beams} cannot return {request.num_samples} samples; "
                "use at least as many beams as samples"
            )
        if request.seed is not None:
            torch.manual_seed(request.seed)
        prompt = [self.bos, *encode_text(tok, request.prompt)]
        for rows in sample_batches(request):
            new = self.continue_ids(prompt, dataclasses.replace(request, num_samples=rows))
            for row in new:
                yield request.prompt + tok.decode(row.tolist(), skip_special_tokens=True)

    def continue_ids(
        self, prompt: list[int], request: GenerationRequest, use_cache: bool = True
    ) -> torch.Tensor:
        """``request.num_samples`` continuations of the token ids ``prompt``, each exactly
        ``request.max_tokens`` new ids: (num_samples, max_tokens).

        The model has ``context_length`` positions. Like nanoGPT, which crops its input to the
        last ``block_size`` tokens, a prompt longer than that is read from its last tokens and
        a sample runs past it: when the window is full, generation goes on from the last half
        of it (a new KV cache, filled in one pass), so every token is predicted from at least
        half a window. Within one window the KV cache makes each new token one step.
        """
        tok = self.tokenizer
        context = self.model.config.n_positions
        half = max(1, context // 2)
        options: dict[str, Any] = {
            "use_cache": use_cache,
            "repetition_penalty": request.repetition_penalty,
            "pad_token_id": self.bos,
            "bos_token_id": self.bos,
            # The stream has one <|endoftext|>, at its start: a sample runs to max_tokens.
            # Like ngram and rnn, never emit <unk>.
            "suppress_tokens": [self.bos, tok.convert_tokens_to_ids(tok.unk_token)],
        }
        beams = request.num_beams > 1
        if beams:
            options.update(num_beams=request.num_beams, do_sample=False)
        elif request.temperature == 0:
            options.update(do_sample=False)
        else:
            options.update(
                do_sample=True,
                temperature=request.temperature,
                top_k=request.top_k or 0,
                top_p=request.top_p or 1.0,
            )
        ids = torch.tensor([prompt], device=self.model.device)
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
                out = self.model.generate(
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

    def evaluate(self, paths: Sequence[Path]) -> dict[str, Any]:
        """Per-token cross-entropy of the files read as one stream, every token predicted
        (the first from ``<|endoftext|>``): the units of ngram's and rnn's perplexity on the
        same tokenization. Windows of ``context_length`` tokens slide by half a window, so
        every token after the first window is predicted from at least half a window."""
        tok = self.tokenizer
        unk = tok.convert_tokens_to_ids(tok.unk_token)
        ids = scoring_stream(tok, paths, self.bos)
        started = time.perf_counter()
        total = sliding_loss(self.model, ids, self.model.config.n_positions)
        return stream_metrics(total, ids, unk, time.perf_counter() - started)

    def describe(self) -> dict[str, Any]:
        config = self.model.config
        return {
            "arch": "decoder",
            "model_type": config.model_type,
            "tokens": self.config.resolved_tokens("decoder"),
            "vocab_size": config.vocab_size,
            "d_model": config.n_embd,
            "num_layers": config.n_layer,
            "num_heads": config.n_head,
            "d_ff": config.n_inner or 4 * config.n_embd,
            "context_length": config.n_positions,
            "tie_embeddings": config.tie_word_embeddings,
            "parameters": _parameters(self.model),
        }


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


def _bos(tokenizer: Any) -> int:
    """The id of ``<|endoftext|>``: bos, eos and padding of gentool's text tokenizers."""
    return int(tokenizer.convert_tokens_to_ids(tokenizer.bos_token))


def _parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_config(config: TransformerModelConfig, train: TransformerTrainConfig) -> None:
    """Reject a [model] / [train] combination that cannot build or train, naming the fix."""
    for key in ("d_model", "num_layers", "num_heads", "d_ff", "context_length"):
        if getattr(config, key) < 1:
            raise RecipeError(f"model.{key} must be at least 1, got {getattr(config, key)}")
    if config.d_model % config.num_heads:
        divisors = [h for h in range(1, config.d_model + 1) if config.d_model % h == 0]
        raise RecipeError(
            f"model.d_model={config.d_model} must divide evenly by model.num_heads="
            f"{config.num_heads}; use num_heads in {', '.join(map(str, divisors[:8]))}, ..."
        )
    if not 0 <= config.dropout < 1:
        raise RecipeError(f"model.dropout must be in [0, 1), got {config.dropout}")
    if not 1 <= train.seq_len <= config.context_length:
        raise RecipeError(
            f"train.seq_len={train.seq_len} must be between 1 and model.context_length="
            f"{config.context_length}; lower train.seq_len or raise model.context_length"
        )
