"""The ``transformer`` family's recipe tables, and the dispatch between its two kinds of
model: a run holds either a decoder-only language model (``lm.LanguageModel``) or an
encoder-decoder translator (``translation.Translator``), both subclasses of
``TransformerFamily`` that set ``self.tasks`` to what they do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gentool import runs
from gentool.data import default_text_path
from gentool.errors import RecipeError, RunError
from gentool.family import GENERATE_TEXT, SCORE_TEXT, TRANSLATE, Family, TrainingContext
from gentool.neural.engine import TrainConfig


@dataclass
class TransformerModelConfig:
    """The recipe's [model] table, shared by both architectures."""

    # auto: an encoder-decoder on parallel data (--source/--target, or --data *.tsv), else a
    # decoder
    arch: Literal["auto", "decoder", "encoder-decoder"] = "auto"
    # auto: characters for a language model, a joint BPE vocabulary for translation
    tokens: Literal["auto", "char", "bpe"] = "auto"
    vocab_size: int = 8000  # bpe: the vocabulary size to learn
    d_model: int = 256
    num_layers: int = 4  # decoder: layers; encoder-decoder: layers of each side
    num_heads: int = 8
    d_ff: int = 1024  # feed-forward inner size
    context_length: int = 256  # decoder: positions; translation: longest sentence in tokens
    dropout: float = 0.1
    tie_embeddings: bool = True

    def resolved_arch(self, parallel: bool) -> str:
        if self.arch == "auto":
            return "encoder-decoder" if parallel else "decoder"
        return self.arch

    def resolved_tokens(self, arch: str) -> str:
        if self.tokens == "auto":
            return "bpe" if arch == "encoder-decoder" else "char"
        return self.tokens


@dataclass
class TransformerTrainConfig(TrainConfig):
    """The recipe's [train] table: the engine's settings plus each architecture's own."""

    max_steps: int = 1000
    batch_size: int = 32  # decoder: rows of seq_len tokens; translation: sentence pairs
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    seq_len: int = 128  # decoder: tokens per training row (at most model.context_length)
    label_smoothing: float = 0.1  # translation: the 2017 paper's epsilon
    # translation: validation pairs (the first N) translated for BLEU after training; 0: none
    bleu_pairs: int = 200


class TransformerFamily(Family):
    name = "transformer"
    description = (
        "Transformer decoder LM (GPT-2 style) and 2017 encoder-decoder translator (Marian-style),"
        " saved as Hugging Face models"
    )
    tasks: tuple[str, ...] = (GENERATE_TEXT, SCORE_TEXT, TRANSLATE)
    config_class = TransformerModelConfig
    train_config_class = TransformerTrainConfig
    default_data = default_text_path()

    @classmethod
    def train(cls, config: TransformerModelConfig, context: TrainingContext) -> Family:
        parallel = context.source is not None or (
            bool(context.data) and all(p.name.endswith((".tsv", ".tsv.gz")) for p in context.data)
        )
        arch = config.resolved_arch(parallel)
        if arch == "encoder-decoder":
            from gentool_transformer.translation import Translator

            return Translator.train(config, context)
        if parallel:
            raise RecipeError(
                "model.arch=decoder trains on text, not parallel data (--source/--target or "
                "--data *.tsv); drop --set model.arch=decoder to train a translator"
            )
        from gentool_transformer.lm import LanguageModel

        return LanguageModel.train(config, context)

    # Set by both kinds of model: a Hugging Face model and tokenizer, and the metrics summary.
    model: Any
    tokenizer: Any
    metrics: dict[str, Any]

    def save(self, directory: Path) -> dict[str, Any]:
        """Hugging Face files: the run loads with AutoModelFor*/AutoTokenizer alone."""
        self.model.save_pretrained(str(directory))
        self.tokenizer.save_pretrained(str(directory))
        return self.metrics

    @classmethod
    def load(cls, directory: Path, config: TransformerModelConfig) -> Family:
        try:
            hf_config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise RunError(f"'{directory}' has no readable config.json; retrain the run") from err
        if not isinstance(hf_config, dict):
            raise runs.damaged(directory, "config.json does not hold a JSON object")
        if hf_config.get("is_encoder_decoder"):
            from gentool_transformer.translation import Translator

            return Translator.load(directory, config)
        from gentool_transformer.lm import LanguageModel

        return LanguageModel.load(directory, config)
