"""The ``transformer`` family's translator (kind ``translator``): the 2017 encoder-decoder
Transformer ("Attention Is All You Need") as a Hugging Face ``MarianMTModel`` built from
scratch, trained on sentence pairs with gentool's engine.

It follows ``HFModel``'s steps: name the pairs (``--source/--target``, or ``--data`` TSV
files or tables; ``PairSource``), learn one byte-level BPE vocabulary on both sides (cached),
encode the pairs once into the token cache (``tokencache.pair_ids``: memory-mapped, reused
by the next run on the same data and tokenizer), bucket them by length (``marian.PairTask``),
train, and score BLEU on held-out pairs after training. The
torch side is ``marian``, imported when needed: this module imports no torch at its top.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gentool import runs
from gentool.data.parallel import clean_pair, pair_rows, parallel_rows
from gentool.data.sources import Fields
from gentool.errors import DataError, RecipeError
from gentool.model import FromPretrained, TrainingContext
from gentool.neural.config import TrainConfig
from gentool.neural.hf import HFModel
from gentool.progress import phase
from gentool.runs import is_main_process
from gentool.tasks import Translation, TranslationRequest
from gentool_transformer.attention import AttentionMap, ShowsAttention
from gentool_transformer.config import TransformerSizes, check_sizes
from gentool_transformer.exports import TransformerExports

if TYPE_CHECKING:
    from gentool.neural.tokencache import PairIds
    from gentool_transformer.marian import PairTask

Pairs = tuple["PairSource", "PairSource | None"]  # training pairs, held-out pairs


@dataclass
class TranslatorConfig(TransformerSizes):
    """The [model] table of a transformer translator."""

    arch: Literal["encoder-decoder"] = "encoder-decoder"  # (auto: this on parallel data)
    # A joint byte-level BPE vocabulary of model.vocab_size tokens over both languages;
    # "auto" and "bpe" both say so (there is no other choice).
    tokens: str = "auto"
    # a pretrained model to start from (gentool train --init): a run, a Hugging Face
    # folder or a Hub id; it fixes the sizes and the tokenizer
    init: str = ""


@dataclass
class TranslatorTrainConfig(TrainConfig):
    """The [train] table of a transformer translator."""

    batch_size: int = 32  # sentence pairs a step
    lr: float = 1e-3
    min_lr: float = 1e-4
    label_smoothing: float = 0.1  # the 2017 paper's epsilon
    # validation pairs (the first N) translated for BLEU after training; 0: none
    bleu_pairs: int = 200
    # with --init: train a LoRA adapter of this rank (peft) instead of every weight; 0: off
    lora_rank: int = 0


class Translator(HFModel, Translation, ShowsAttention, FromPretrained, TransformerExports):
    """An encoder-decoder Transformer that translates one language into another."""

    family = "transformer"
    kind = "translator"
    description = (
        "2017 encoder-decoder Transformer (Marian-style) translating sentence pairs, saved "
        "as a Hugging Face model"
    )
    config_class = TranslatorConfig
    train_config_class = TranslatorTrainConfig
    selected_by = {"arch": ("encoder-decoder",)}
    trains_on = "parallel"
    auto_class = "AutoModelForSeq2SeqLM"
    model_type = "marian"
    special_tokens = ("eos_token", "pad_token", "unk_token")

    # -- training -----------------------------------------------------------------------------
    @classmethod
    def check_config(cls, config: TranslatorConfig, train: TranslatorTrainConfig) -> None:
        if config.tokens not in ("auto", "bpe"):
            raise RecipeError(
                f"model.tokens={config.tokens} is for the language model; a translator learns "
                "a joint BPE vocabulary: set model.tokens=bpe (or auto)"
            )
        check_sizes(config)
        if config.context_length < 4:
            raise RecipeError(
                f"model.context_length must be at least 4, got {config.context_length}"
            )
        if train.bleu_pairs < 0:
            raise RecipeError(
                f"train.bleu_pairs must be at least 0 (0: no BLEU), got {train.bleu_pairs}"
            )
        if not 0 <= train.label_smoothing < 1:
            raise RecipeError(
                f"train.label_smoothing must be in [0, 1), got {train.label_smoothing}"
            )
        if math.isnan(train.lr):
            raise RecipeError("train.lr is not a number")

    @classmethod
    def read_data(cls, config: TranslatorConfig, context: TrainingContext[Any]) -> Pairs:
        """Training pairs (--source/--target, else --data TSV files or tables) and held-out
        pairs, not yet read: the tokenizer and the token cache stream them."""
        fields = context.fields
        if context.source is not None and context.target is not None:
            corpus = PairSource.parallel(context.source, context.target, fields)
        elif context.data:
            corpus = PairSource.files(context.data, fields)
        else:
            raise DataError(
                "a translator needs sentence pairs: --source/--target files or a --data TSV"
            )
        if context.val_source is not None and context.val_target is not None:
            return corpus, PairSource.parallel(context.val_source, context.val_target, fields)
        if context.val is not None:
            return corpus, PairSource.files([context.val], fields)
        return corpus, None

    @classmethod
    def new_tokenizer(cls, config: TranslatorConfig, data: Pairs) -> Any:
        from gentool.neural.tokencache import cached_tokenizer
        from gentool.neural.tokenizers import train_tokenizer
        from gentool_transformer.marian import joint_bpe

        if config.init:  # fine-tuning keeps the model's own tokenizer
            return cls.init_tokenizer(config)
        corpus = data[0]
        # Learned on every source sentence, then every target one, streamed (twice); cached.
        bpe = cached_tokenizer(
            ("translator-bpe", *corpus.key, config.vocab_size),
            lambda: train_tokenizer("bpe", corpus.sentences(), vocab_size=config.vocab_size),
        )
        return joint_bpe(bpe)

    @classmethod
    def make_task(
        cls, config: TranslatorConfig, context: TrainingContext[Any], tokenizer: Any, data: Pairs
    ) -> tuple[PairTask, dict[str, Any]]:
        import torch

        from gentool_transformer.marian import PairTask, build_model, positions, prepare

        train: TranslatorTrainConfig = context.train
        corpus, val_corpus = data
        torch.manual_seed(context.seed)
        model = cls.init_model(config) if config.init else build_model(config, tokenizer)
        limit = positions(model) if config.init else config.context_length
        read, empty = corpus.encoded(tokenizer, context.log)
        val_read, val_empty = None, 0
        if val_corpus is not None:
            val_read, val_empty = val_corpus.encoded(tokenizer, context.log)
        pairs, val_pairs, dropped, val_dropped = prepare(
            read,
            val_read,
            {"empty": empty} if empty else {},
            {"empty": val_empty} if val_empty else {},
            limit,
            train.val_fraction,
            context.log,
        )
        rows = train.batch_size // train.grad_accum
        if len(pairs) < rows:
            raise DataError(
                f"{len(pairs)} training pairs remain, fewer than one batch of "
                f"train.batch_size={train.batch_size}; give more pairs or lower it"
            )
        context.log(
            f"{len(pairs)} training pairs, {len(val_pairs)} validation pairs, joint BPE "
            f"vocabulary of {len(tokenizer)} tokens"
        )
        pad = tokenizer.pad_token_id
        start = model.config.decoder_start_token_id
        task = PairTask(
            model, pairs, val_pairs, rows, context.seed, pad, train.label_smoothing, start
        )
        facts = {
            "train_pairs": len(pairs),
            "val_pairs": len(val_pairs),
            "dropped_pairs": dropped,
            "val_dropped_pairs": val_dropped,
            "epochs": train.max_steps * train.batch_size / len(pairs),
        }
        return task, facts

    def after_training(self, context: TrainingContext[Any], task: Any) -> dict[str, Any]:
        """BLEU on the first ``train.bleu_pairs`` held-out pairs: the score to choose
        recipes by."""
        scored = task.val_pairs[: context.train.bleu_pairs]
        if not scored or not is_main_process():
            return {}
        return self.validation_bleu(scored, context.log)

    def validation_bleu(self, pairs: PairIds, log: Any) -> dict[str, Any]:
        """BLEU (beam search) of ``pairs`` after training, with its progress shown.

        An undertrained model may never end a sentence, and would generate up to the
        context length: here a translation is capped at twice the longest source of its
        batch plus 10 tokens (``source_cap``; batches hold sentences of similar length),
        which a trained model does not reach.
        """
        from gentool_transformer.marian import score

        tokenizer = self.tokenizer
        sources = [str(tokenizer.decode(s, skip_special_tokens=True)) for s, _ in pairs]
        targets = [str(tokenizer.decode(t, skip_special_tokens=True)) for _, t in pairs]
        request = TranslationRequest()
        what = f"validation BLEU (beam {request.num_beams})"
        with phase(log, what, total=len(pairs), unit="sentences") as advance:
            bleu = score(self.model, tokenizer, sources, targets, request, advance, source_cap=True)
        log(f"validation BLEU {bleu['bleu']:.2f} (beam {request.num_beams}, {len(pairs)} pairs)")
        return {"val_bleu": bleu["bleu"], "val_bleu_pairs": len(pairs)}

    @classmethod
    def load(cls, directory: Path, config: TranslatorConfig) -> Translator:
        translator = super().load(directory, config)
        if translator.model.generation_config.decoder_start_token_id is None:
            # (what decoding starts from)
            raise runs.damaged(directory, "generation_config.json has no decoder_start_token_id")
        return translator

    # -- tasks --------------------------------------------------------------------------------
    def translate(
        self, texts: Sequence[str], request: TranslationRequest, source_cap: bool = False
    ) -> list[str]:
        """Beam-search translations, one per text, in order; an empty text gives ''.
        ``source_cap``: at most twice the batch's longest source plus 10 tokens each."""
        from gentool_transformer.marian import translate

        return translate(self.model, self.tokenizer, texts, request, source_cap)

    def evaluate_translation(self, source: Path, target: Path) -> dict[str, Any]:
        """BLEU and chrF of the beam-search translations of ``source`` against ``target``,
        and the teacher-forced cross-entropy per target token."""
        from gentool_transformer.marian import evaluate_translation

        return evaluate_translation(self.model, self.tokenizer, source, target)

    def attention_maps(self, text: str) -> list[AttentionMap]:
        from gentool_transformer.attention import translator_maps

        return translator_maps(self.model, self.tokenizer, text)

    def describe(self) -> dict[str, Any]:
        config = self.model.config
        if self.config.init:
            return self.describe_pretrained()
        return {
            "arch": "encoder-decoder",
            "tokens": (
                f"joint byte-level BPE over source and target, {len(self.tokenizer)} tokens; "
                f"every sentence ends with {self.tokenizer.eos_token}, which also pads and starts "
                "the decoder"
            ),
            "vocab_size": config.vocab_size,
            "d_model": config.d_model,
            "encoder_layers": config.encoder_layers,
            "decoder_layers": config.decoder_layers,
            "num_heads": config.encoder_attention_heads,
            "d_ff": config.encoder_ffn_dim,
            "context_length": config.max_position_embeddings,
            "positions": "sinusoidal",
            "normalization": "post-LN",
            "tied_embeddings": bool(config.tie_word_embeddings),
            "parameters": self.parameters(),
        }


@dataclass(frozen=True)
class PairSource:
    """Sentence pairs not yet read: two aligned files (``sides``), or files of pairs
    (TSV, or tables with source and target fields), and the fields read. ``key`` identifies
    them for the caches: the sources' fingerprints and the fields."""

    paths: tuple[str | Path, ...]
    fields: Fields
    sides: bool  # paths are (source, target), aligned line by line

    @classmethod
    def parallel(cls, source: str | Path, target: str | Path, fields: Fields) -> PairSource:
        return cls((source, target), fields, True)

    @classmethod
    def files(cls, paths: Sequence[str | Path], fields: Fields) -> PairSource:
        return cls(tuple(paths), fields, False)

    @property
    def name(self) -> str:
        """The sources as errors name them."""
        return " / ".join(f"'{path}'" for path in self.paths)

    @property
    def key(self) -> tuple[str, ...]:
        from gentool.neural.tokencache import data_key

        fields = self.fields
        if self.sides:
            return ("sides", *(data_key([path], fields.text) for path in self.paths))
        return ("pairs", data_key(self.paths, f"{fields.text}\0{fields.source}\0{fields.target}"))

    def rows(self) -> Iterator[tuple[str, str]]:
        """The raw (source, target) rows, streamed (``gentool.data.parallel``)."""
        if self.sides:
            yield from parallel_rows(self.paths[0], self.paths[1], self.fields.text)
        else:
            for path in self.paths:
                yield from pair_rows(path, self.fields)

    def sentences(self) -> Iterator[str]:
        """Every source sentence kept, then every target one: what the BPE is learned on."""
        for side in (0, 1):
            for s, t in self.rows():
                if (pair := clean_pair(s, t)) is not None:
                    yield pair[side]

    def encoded(self, tokenizer: Any, log: Any) -> tuple[PairIds, int]:
        """The pairs encoded (``tokencache.pair_ids``: cached), and how many had an empty
        side."""
        from gentool.neural.tokencache import pair_ids

        return pair_ids(self.key, self.rows, self.name, tokenizer, log)
