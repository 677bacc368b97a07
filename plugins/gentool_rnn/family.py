"""The ``rnn`` family: LSTM / GRU / tanh-RNN language models, trained with truncated
backpropagation through time on gentool's engine and saved as Hugging Face models.

The training text is one token stream (``<|endoftext|>`` first), cut into ``batch_size``
contiguous rows; step ``i`` reads the ``i``-th window of ``seq_len`` tokens of every row and
carries each row's hidden state into the next window, so the model sees context far longer
than one window while gradients flow through ``seq_len`` steps only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gentool.data import default_text_path, read_corpus
from gentool.neural.streams import LN2, scoring_stream, split_stream, stream_metrics
from gentool.errors import DataError, RecipeError
from gentool.family import (
    GENERATE_TEXT,
    SCORE_TEXT,
    Family,
    GenerationRequest,
    TrainingContext,
    sample_batches,
)
from gentool.neural.engine import TrainConfig, check_setup, fit, require_neural

if TYPE_CHECKING:
    import torch


@dataclass
class RnnModelConfig:
    """The recipe's [model] table."""

    cell: Literal["lstm", "gru", "rnn"] = "lstm"
    tokens: Literal["char", "word", "bpe"] = "char"
    vocab_size: int = 1000  # bpe: merges up to this size; word: the most frequent words
    embedding_size: int = 128
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.1
    tie_embeddings: bool = False


@dataclass
class RnnTrainConfig(TrainConfig):
    """The recipe's [train] table: the engine's settings plus the BPTT window."""

    seq_len: int = 128  # tokens per window: how far back gradients flow
    max_steps: int = 1000
    batch_size: int = 32
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 50


class StreamTask:
    """A token stream as ``rows`` contiguous rows, read window by window (truncated BPTT)."""

    unit = "tokens"

    def __init__(
        self,
        model: torch.nn.Module,
        train_ids: torch.Tensor,
        val_ids: torch.Tensor | None,
        rows: int,
        seq_len: int,
    ) -> None:
        self.model = model
        self.seq_len = seq_len
        self.train = _rows(train_ids, rows)
        self.windows = (self.train.shape[1] - 1) // seq_len  # per pass over the data
        self.val = _rows(val_ids, rows) if val_ids is not None else None
        self.items_per_batch = rows * seq_len

    def train_batch(self, index: int, rows: slice) -> dict[str, Any]:
        window = index % self.windows
        start = window * self.seq_len
        chunk = self.train[rows, start : start + self.seq_len + 1]
        return {"input_ids": chunk[:, :-1], "labels": chunk[:, 1:], "reset": window == 0}

    def loss(
        self, model: torch.nn.Module, batch: dict[str, Any], carry: dict[str, Any] | None
    ) -> tuple[torch.Tensor, dict[str, Any] | None]:
        import torch.nn.functional as F

        device = next(model.parameters()).device
        inputs = batch["input_ids"].to(device, non_blocking=True)
        labels = batch["labels"].to(device, non_blocking=True)
        state = None if batch["reset"] else carry  # a new pass starts from a zero state
        out = model(input_ids=inputs, state=state)
        loss = F.cross_entropy(out.logits.float().flatten(0, 1), labels.flatten())
        return loss, {k: v.detach() for k, v in out.state.to_dict().items()}

    def evaluate(self, model: torch.nn.Module, rows: slice, max_batches: int) -> tuple[float, int]:
        """Sum of the per-token losses over the validation rows (the first ``max_batches``
        windows; all when 0), carrying the state from window to window."""
        import torch.nn.functional as F

        if self.val is None:
            return 0.0, 0
        data = self.val[rows]
        device = next(model.parameters()).device
        total, count, state = 0.0, 0, None
        length = data.shape[1] - 1
        windows = range(0, length, self.seq_len)
        for n, start in enumerate(windows):
            if max_batches and n >= max_batches:
                break
            chunk = data[:, start : min(start + self.seq_len, length) + 1].to(device)
            out = model(input_ids=chunk[:, :-1], state=state)
            state = out.state
            loss = F.cross_entropy(
                out.logits.float().flatten(0, 1), chunk[:, 1:].flatten(), reduction="sum"
            )
            total += float(loss)
            count += chunk[:, 1:].numel()
        return total, count


def _rows(ids: torch.Tensor, rows: int) -> torch.Tensor:
    length = ids.numel() // rows
    return ids[: rows * length].view(rows, length)


class RnnFamily(Family):
    name = "rnn"
    description = "LSTM/GRU/RNN language models (truncated BPTT), saved as Hugging Face models"
    tasks = (GENERATE_TEXT, SCORE_TEXT)
    config_class = RnnModelConfig
    train_config_class = RnnTrainConfig
    default_data = default_text_path()

    def __init__(
        self, model: Any, tokenizer: Any, config: RnnModelConfig, metrics: dict[str, Any]
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.metrics = metrics

    # -- training -----------------------------------------------------------------------------
    @classmethod
    def train(cls, config: RnnModelConfig, context: TrainingContext) -> RnnFamily:
        require_neural()
        import torch

        from gentool.neural.tokenizers import run_tokenizer, train_tokenizer
        from gentool_rnn.modeling import RnnConfig, RnnForCausalLM

        train_config: RnnTrainConfig = context.train
        run_dir = context.run_dir
        assert run_dir is not None
        _check(config, train_config)
        check_setup(train_config, context.runtime)  # before the data work, not after it
        text = read_corpus(context.data)
        tokenizer = run_tokenizer(
            run_dir,
            context.runtime.resume,
            lambda: train_tokenizer(config.tokens, [text], vocab_size=config.vocab_size),
            context.log,
        )
        bos = tokenizer.convert_tokens_to_ids(tokenizer.bos_token)
        train_ids, val_ids = split_stream(
            tokenizer, text, bos, context.val, train_config.val_fraction, context.log
        )
        rows = train_config.batch_size // train_config.grad_accum
        need = rows * (train_config.seq_len + 1)
        if len(train_ids) < need:
            raise DataError(
                f"the training data has {len(train_ids)} {config.tokens} tokens, fewer than one "
                f"window of train.seq_len={train_config.seq_len} for each of "
                f"{rows} rows ({need}); give more data or lower train.seq_len / train.batch_size"
            )
        if val_ids is not None and len(val_ids) < rows * 2:
            val_ids = None
        torch.manual_seed(context.seed)
        special = {
            "bos_token_id": bos,
            "eos_token_id": bos,
            "pad_token_id": tokenizer.convert_tokens_to_ids(tokenizer.pad_token),
        }
        model = RnnForCausalLM(
            RnnConfig(
                vocab_size=len(tokenizer),
                cell=config.cell,
                embedding_size=config.embedding_size,
                hidden_size=config.hidden_size,
                num_layers=config.num_layers,
                dropout=config.dropout,
                tie_embeddings=config.tie_embeddings,
                **special,
            )
        )
        model.generation_config.update(**special)
        task = StreamTask(model, train_ids, val_ids, rows, train_config.seq_len)
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
            "parameters": sum(p.numel() for p in task.model.parameters()),
        }
        if result.val_loss is not None:
            metrics["val_bits_per_token"] = result.val_loss / LN2
        return cls(task.model.eval(), tokenizer, config, metrics)

    # -- persistence --------------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        self.model.save_pretrained(str(directory))
        self.tokenizer.save_pretrained(str(directory))
        return self.metrics

    @classmethod
    def load(cls, directory: Path, config: RnnModelConfig) -> RnnFamily:
        require_neural()
        from transformers import AutoModelForCausalLM

        import gentool_rnn.modeling  # noqa: F401  (registers the Auto classes)
        from gentool.neural.weights import load_pretrained

        model, tokenizer = load_pretrained(
            AutoModelForCausalLM, directory, "gentool_rnn", ("bos_token", "unk_token")
        )
        return cls(model, tokenizer, config, {})

    # -- tasks --------------------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> list[str]:
        return list(self.generate_iter(request))

    def generate_iter(self, request: GenerationRequest) -> Iterator[str]:
        import torch

        from gentool.neural.tokenizers import encode_text

        tok = self.tokenizer
        bos = tok.convert_tokens_to_ids(tok.bos_token)
        prompt = [bos, *encode_text(tok, request.prompt)]
        if 1 < request.num_beams < request.num_samples:
            raise RecipeError(
                f"--beams {request.num_beams} cannot return {request.num_samples} samples; "
                "use at least as many beams as samples"
            )
        options: dict[str, Any] = {
            "max_new_tokens": request.max_tokens,
            "pad_token_id": bos,
            "bos_token_id": bos,
            # The stream has one <|endoftext|>, at its start: a sample runs to max_tokens.
            # Like ngram, never emit <unk>.
            "suppress_tokens": [bos, tok.convert_tokens_to_ids(tok.unk_token)],
        }
        if request.num_beams > 1:
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
        if request.seed is not None:
            torch.manual_seed(request.seed)
        for rows in sample_batches(request):
            with torch.no_grad():
                out = self.model.generate(
                    torch.tensor([prompt], device=self.model.device),
                    num_return_sequences=rows,
                    **options,
                )
            for row in out:
                yield tok.decode(row[1:].tolist(), skip_special_tokens=True)

    def evaluate(self, paths: Sequence[Path]) -> dict[str, Any]:
        """Per-token cross-entropy of the files read as one stream, every token predicted
        (the first from ``<|endoftext|>``): the units of ngram's perplexity on the same
        tokenization."""
        import torch
        import torch.nn.functional as F

        tok = self.tokenizer
        bos = tok.convert_tokens_to_ids(tok.bos_token)
        unk = tok.convert_tokens_to_ids(tok.unk_token)
        ids = scoring_stream(tok, paths, bos)
        total, state, window = 0.0, None, 4096
        started = time.perf_counter()
        with torch.no_grad():
            for start in range(0, len(ids) - 1, window):
                chunk = ids[start : start + window + 1].unsqueeze(0).to(self.model.device)
                out = self.model(input_ids=chunk[:, :-1], state=state)
                state = out.state
                total += float(
                    F.cross_entropy(out.logits[0].float(), chunk[0, 1:], reduction="sum")
                )
        return stream_metrics(total, ids, unk, time.perf_counter() - started)

    def describe(self) -> dict[str, Any]:
        config = self.model.config
        return {
            "cell": config.cell,
            "tokens": self.config.tokens,
            "vocab_size": config.vocab_size,
            "embedding_size": config.embedding_size,
            "hidden_size": config.hidden_size,
            "num_layers": config.num_layers,
            "tie_embeddings": config.tie_embeddings,
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }


def _check(config: RnnModelConfig, train: RnnTrainConfig) -> None:
    for key in ("embedding_size", "hidden_size", "num_layers", "vocab_size"):
        if getattr(config, key) < 1:
            raise RecipeError(f"model.{key} must be at least 1, got {getattr(config, key)}")
    if not 0 <= config.dropout < 1:
        raise RecipeError(f"model.dropout must be in [0, 1), got {config.dropout}")
    if train.seq_len < 1:
        raise RecipeError(f"train.seq_len must be at least 1, got {train.seq_len}")
