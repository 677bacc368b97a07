"""The ``transformer`` family's language model (kind ``lm``): nanoGPT's decoder-only
architecture as a Hugging Face ``GPT2LMHeadModel`` built from scratch, trained on gentool's
engine. A run is a plain ``gpt2`` checkpoint: it loads with ``AutoModelForCausalLM`` /
``AutoTokenizer`` and no gentool code.

The tokenizer, the held-out split, sampling and scoring are those of every language model
of one token stream (``gentool.neural.streams.TextStreamModel``); the network, its training
task and its generation past the context are in ``gpt2`` (torch), imported when needed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from gentool.data import default_text_path
from gentool.errors import RecipeError
from gentool.model import FromPretrained, TrainingContext
from gentool.neural.config import StreamTrainConfig
from gentool.neural.music import MusicStreamModel
from gentool.neural.streams import StreamModel, TextStreamModel
from gentool.tasks import GenerationRequest
from gentool_transformer.attention import AttentionMap, ShowsAttention
from gentool_transformer.config import TransformerLayers, TransformerSizes, check_sizes
from gentool_transformer.exports import TransformerExports

if TYPE_CHECKING:
    import torch

    from gentool_transformer.gpt2 import WindowTask


@dataclass
class LMConfig(TransformerSizes):
    """The [model] table of a transformer language model."""

    arch: Literal["decoder"] = "decoder"  # (auto: a decoder unless the data are parallel)
    # auto: characters; bpe: a byte-level BPE vocabulary of model.vocab_size tokens
    tokens: Literal["auto", "char", "bpe"] = "auto"
    # a pretrained model to start from (gentool train --init): a run, a Hugging Face
    # folder or a Hub id; it fixes the sizes and the tokenizer
    init: str = ""


@dataclass
class LMTrainConfig(StreamTrainConfig):
    """The [train] table of a transformer language model."""

    lr: float = 1e-3
    min_lr: float = 1e-4
    seq_len: int = 128  # tokens per training row (at most model.context_length)
    # with --init: train a LoRA adapter of this rank (peft) instead of every weight; 0: off
    lora_rank: int = 0


@dataclass
class MusicLMConfig(TransformerLayers):
    """The [model] table of a transformer language model of music (REMI tokens)."""

    arch: Literal["decoder"] = "decoder"
    programs: bool = True  # REMI+: a Program token before each note (tracks kept apart)
    context_length: int = 512  # a chorale is ~1200 tokens: a window holds several bars


class Decoder(StreamModel):
    """The GPT-2 decoder of every transformer language model, over one token stream."""

    family = "transformer"
    train_config_class = LMTrainConfig
    selected_by = {"arch": ("decoder",)}
    model_type = "gpt2"
    load_options = {"attn_implementation": "sdpa"}

    @staticmethod
    def resolved_tokens(config: Any) -> str:
        tokens = getattr(config, "tokens", "remi")
        return "char" if tokens == "auto" else tokens

    # -- training -----------------------------------------------------------------------------
    @classmethod
    def check_config(cls, config: TransformerLayers, train: LMTrainConfig) -> None:
        check_sizes(config)
        if not 1 <= train.seq_len <= config.context_length:
            raise RecipeError(
                f"train.seq_len={train.seq_len} must be between 1 and model.context_length="
                f"{config.context_length}; lower train.seq_len or raise model.context_length"
            )

    @classmethod
    def build_model(cls, config: TransformerLayers, vocab_size: int, bos: int) -> torch.nn.Module:
        from gentool_transformer.gpt2 import build_model

        return build_model(config, vocab_size, bos)

    @classmethod
    def stream_task(
        cls,
        config: TransformerLayers,
        context: TrainingContext[Any],
        model: torch.nn.Module,
        train_ids: torch.Tensor,
        val_ids: torch.Tensor | None,
    ) -> WindowTask:
        from gentool.neural.hf import context_length
        from gentool_transformer.gpt2 import WindowTask

        train: LMTrainConfig = context.train
        positions = context_length(model.config)
        if positions is not None and train.seq_len > positions:
            raise RecipeError(
                f"train.seq_len={train.seq_len} is more than the {positions} positions of the "
                f"pretrained model (model.init={getattr(config, 'init', '')}); lower "
                "train.seq_len"
            )
        rows = train.batch_size // train.grad_accum
        return WindowTask(model, train_ids, val_ids, rows, train.seq_len, context.seed)

    # -- tasks --------------------------------------------------------------------------------
    def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[list[str]]:
        """Unseeded sampling requests with the same options and one window of context
        (prompt + max_tokens <= context_length) run as one batch of left-padded rows;
        anything else one by one, as ``generate`` (a seed keeps its own samples)."""
        from gentool_transformer.gpt2 import continue_batch

        first = requests[0]
        options = dataclasses.replace(first, prompt="", num_samples=1)
        prompts = [self.prompt_ids(r.prompt) for r in requests]
        if (
            len(requests) == 1
            or first.seed is not None
            or first.num_beams > 1
            or any(dataclasses.replace(r, prompt="", num_samples=1) != options for r in requests)
            or max(map(len, prompts)) + first.max_tokens > self.model.config.n_positions
        ):
            return super().generate_batch(requests)
        rows = [p for p, r in zip(prompts, requests, strict=True) for _ in range(r.num_samples)]
        new = continue_batch(self.model, rows, first.max_tokens, self.generation_options(first))
        out, start = [], 0
        for prompt, request in zip(prompts, requests, strict=True):
            made = new[start : start + request.num_samples]
            out.append([self.sample_text(request.prompt, prompt, row) for row in made])
            start += request.num_samples
        return out

    def continue_ids(
        self,
        prompt: list[int],
        request: GenerationRequest,
        streamer: Any = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Past the model's ``context_length`` too: see ``gpt2.continue_in_windows``."""
        from gentool_transformer.gpt2 import continue_in_windows

        options = {**self.generation_options(request), "use_cache": use_cache}
        if streamer is not None:
            options["streamer"] = streamer
        return continue_in_windows(self.model, prompt, request, options, self.context)

    @property
    def context(self) -> int:
        """The positions of the model (a pretrained one with relative positions: 1024)."""
        from gentool.neural.hf import context_length

        return context_length(self.model.config) or 1024

    def stream_loss(self, ids: torch.Tensor) -> float:
        """Windows of ``context_length`` tokens slide by half a window, so every token after
        the first window is predicted from at least half a window (``gpt2.sliding_loss``)."""
        from gentool_transformer.gpt2 import sliding_loss

        return sliding_loss(self.model, ids, self.context)

    def describe(self) -> dict[str, Any]:
        config = self.model.config
        if getattr(self.config, "init", ""):
            return self.describe_pretrained()
        return {
            "arch": "decoder",
            "model_type": config.model_type,
            "tokens": self.resolved_tokens(self.config),
            "vocab_size": config.vocab_size,
            "d_model": config.n_embd,
            "num_layers": config.n_layer,
            "num_heads": config.n_head,
            "d_ff": config.n_inner or 4 * config.n_embd,
            "context_length": config.n_positions,
            "tie_embeddings": config.tie_word_embeddings,
            "parameters": self.parameters(),
        }


class LanguageModel(Decoder, TextStreamModel, ShowsAttention, FromPretrained, TransformerExports):
    """A decoder-only transformer language model (GPT-2 architecture) of text."""

    kind = "lm"
    description = "Transformer decoder language model (GPT-2 style), saved as a Hugging Face model"
    config_class = LMConfig
    default_data = default_text_path()

    @classmethod
    def tokenizer_spec(cls, config: LMConfig) -> tuple[str, int | None]:
        tokens = cls.resolved_tokens(config)
        return tokens, config.vocab_size if tokens == "bpe" else None  # char: every character

    def attention_maps(self, text: str) -> list[AttentionMap]:
        from gentool_transformer.attention import decoder_maps

        return decoder_maps(self.model, self.tokenizer, text)


class MusicLM(Decoder, MusicStreamModel):
    """A decoder-only transformer (GPT-2) over REMI music tokens of MIDI files."""

    kind = "music"
    description = "Transformer decoder (GPT-2 style) over REMI music tokens: MIDI in, MIDI out"
    config_class = MusicLMConfig
