"""The ``rnn`` family's one kind: LSTM / GRU / tanh-RNN language models, trained with
truncated backpropagation through time on gentool's engine and saved as Hugging Face models.

What every language model of one token stream does (the tokenizer, the held-out split,
sampling, scoring) is ``gentool.neural.streams.TextStreamModel``'s; this module adds the
network (``modeling``) and how it reads the stream (``task.StreamTask``: contiguous rows,
the hidden state carried from window to window). It imports no torch at its top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from gentool.data import default_text_path
from gentool.errors import RecipeError
from gentool.model import FromRun, TrainingContext
from gentool.neural.config import StreamTrainConfig
from gentool.neural.music import MusicStreamModel
from gentool.neural.streams import StreamModel, TextStreamModel
from gentool.tasks import GenerationRequest

if TYPE_CHECKING:
    import torch

    from gentool_rnn.task import StreamTask

EVAL_WINDOW = 4096  # tokens per forward pass when scoring a file (the state carries over)


@dataclass
class RnnSizes:
    """The [model] keys of every rnn: its cell and sizes."""

    cell: Literal["lstm", "gru", "rnn"] = "lstm"
    embedding_size: int = 128
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.1
    tie_embeddings: bool = False


@dataclass
class RnnModelConfig(RnnSizes):
    """The recipe's [model] table, on text."""

    tokens: Literal["char", "word", "bpe"] = "char"
    vocab_size: int = 1000  # bpe: merges up to this size; char, word: the most frequent
    # a run of this kind to start from (gentool train rnn --init RUN): its sizes and
    # vocabulary are taken, its weights trained on
    init: str = ""


@dataclass
class RnnMusicConfig(RnnSizes):
    """The recipe's [model] table, on music (MIDI): REMI tokens."""

    programs: bool = True  # REMI+: a Program token before each note (tracks kept apart)
    # a run of this kind to start from (gentool train rnn --init RUN): its sizes and music
    # tokenizer are taken, its weights trained on
    init: str = ""


@dataclass
class RnnTrainConfig(StreamTrainConfig):
    """The recipe's [train] table: the engine's settings plus the BPTT window (seq_len)."""

    max_steps: int = 1000
    batch_size: int = 32
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 50


class RnnNetwork(StreamModel):
    """The recurrent network of every rnn kind (LSTM, GRU or tanh RNN) over one stream."""

    family = "rnn"
    train_config_class = RnnTrainConfig
    model_type = "gentool_rnn"
    modeling_module = "gentool_rnn.modeling"  # registers RnnForCausalLM with the Auto classes

    # -- training -----------------------------------------------------------------------------
    @classmethod
    def check_config(cls, config: RnnSizes, train: RnnTrainConfig) -> None:
        for key in ("embedding_size", "hidden_size", "num_layers", "vocab_size"):
            if getattr(config, key, 1) < 1:
                raise RecipeError(f"model.{key} must be at least 1, got {getattr(config, key)}")
        if not 0 <= config.dropout < 1:
            raise RecipeError(f"model.dropout must be in [0, 1), got {config.dropout}")

    @classmethod
    def stream_rows(cls, train: RnnTrainConfig) -> int:
        return train.batch_size // train.grad_accum  # rows of a global micro-batch

    @classmethod
    def build_model(cls, config: RnnSizes, vocab_size: int, bos: int) -> torch.nn.Module:
        from gentool_rnn.modeling import RnnConfig, RnnForCausalLM

        special = {"bos_token_id": bos, "eos_token_id": bos, "pad_token_id": bos}
        model = RnnForCausalLM(
            RnnConfig(
                vocab_size=vocab_size,
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
        return model

    @classmethod
    def stream_task(
        cls,
        config: RnnSizes,
        context: TrainingContext[Any],
        model: torch.nn.Module,
        train_ids: torch.Tensor,
        val_ids: torch.Tensor | None,
    ) -> StreamTask:
        from gentool_rnn.task import StreamTask

        train: RnnTrainConfig = context.train
        return StreamTask(model, train_ids, val_ids, cls.stream_rows(train), train.seq_len)

    # -- tasks --------------------------------------------------------------------------------
    def continue_ids(
        self, prompt: list[int], request: GenerationRequest, streamer: Any = None
    ) -> torch.Tensor:
        """The prompt is read once (prefill), then each new token is one step of the
        recurrence; its state travels through ``generate()`` as a cache."""
        import torch

        with torch.no_grad():
            out = self.model.generate(
                torch.tensor([prompt], device=self.model.device),
                max_new_tokens=request.max_tokens,
                num_return_sequences=request.num_samples,
                streamer=streamer,
                **self.generation_options(request),
            )
        return out[:, len(prompt) :]

    def stream_loss(self, ids: torch.Tensor) -> float:
        """In windows of EVAL_WINDOW tokens, the state carried from one to the next: every
        token is predicted from everything before it."""
        import torch
        import torch.nn.functional as F

        total, state = 0.0, None
        with torch.no_grad():
            for start in range(0, len(ids) - 1, EVAL_WINDOW):
                chunk = ids[start : start + EVAL_WINDOW + 1].unsqueeze(0).to(self.model.device)
                out = self.model(input_ids=chunk[:, :-1], state=state)
                state = out.state
                total += float(
                    F.cross_entropy(out.logits[0].float(), chunk[0, 1:], reduction="sum")
                )
        return total

    def describe(self) -> dict[str, Any]:
        config = self.model.config
        return {
            "cell": config.cell,
            "tokens": getattr(self.config, "tokens", "remi"),
            "vocab_size": config.vocab_size,
            "embedding_size": config.embedding_size,
            "hidden_size": config.hidden_size,
            "num_layers": config.num_layers,
            "tie_embeddings": config.tie_embeddings,
            "parameters": self.parameters(),
        }


class RnnModel(RnnNetwork, TextStreamModel, FromRun):
    """A recurrent language model (LSTM, GRU or tanh RNN) of text."""

    description = "LSTM/GRU/RNN language models (truncated BPTT), saved as Hugging Face models"
    config_class = RnnModelConfig
    default_data = default_text_path()


class RnnMusic(RnnNetwork, MusicStreamModel, FromRun):
    """A recurrent language model of music (REMI tokens of MIDI files)."""

    kind = "music"
    description = "LSTM/GRU/RNN over REMI music tokens: MIDI in, MIDI out"
    config_class = RnnMusicConfig
