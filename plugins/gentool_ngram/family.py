"""The ngram family's glue to gentool: config, training from files, the run directory, tasks.

The numbers live in ``lm.py`` (estimation, scoring) and ``arpa.py`` (KenLM's format).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np

from gentool import runs
from gentool.data import default_text_path, get_tokenizer
from gentool.errors import PluginError
from gentool.model import Exportable, Importable, Model, TrainingContext
from gentool.options import format_size
from gentool.tasks import GenerationRequest, TextGeneration, TextScoring
from gentool_ngram import streaming
from gentool_ngram.lm import BOS, EOS, UNK, NGramLM, ScoreSums
from gentool_ngram.sampling import sample_token

VOCAB_FILE = "vocab.json"
CONFIG_FILE = "config.json"
SCORE_BYTES = 1 << 22  # evaluate reads and scores its text in pieces this big


@dataclass
class NGramSettings:
    """The [model] keys of every n-gram model: its order and smoothing."""

    order: int = 3  # 3 = a trigram model, a "2nd-order Markov chain"
    smoothing: Literal["kneser-ney", "add-k", "stupid-backoff"] = "kneser-ney"
    k: float = 1.0  # add-k only
    alpha: float = 0.4  # stupid-backoff only
    # Kneser-Ney discounts (D1, D2, D3+) used where the counts leave them undefined
    # (tiny corpora), the defaults of KenLM's --discount_fallback.
    discount_fallback: list[float] = field(default_factory=lambda: [0.5, 1.0, 1.5])

    def __post_init__(self) -> None:
        if not 1 <= self.order <= 10:
            raise ValueError(f"model.order must be between 1 and 10, got {self.order}")
        if self.k <= 0:
            raise ValueError(f"model.k must be positive, got {self.k}")
        if not 0 < self.alpha <= 1:
            raise ValueError(f"model.alpha must be in (0, 1], got {self.alpha}")
        fallback = self.discount_fallback
        if len(fallback) != 3 or not all(0 <= d <= j for j, d in enumerate(fallback, start=1)):
            raise ValueError(
                "model.discount_fallback takes three discounts D1, D2, D3+ with "
                f"0 <= D1 <= 1, 0 <= D2 <= 2, 0 <= D3+ <= 3; got {fallback}"
            )


@dataclass
class NGramConfig(NGramSettings):
    """The [model] table of an ngram recipe on text."""

    tokens: Literal["char", "word", "whitespace"] = "word"


class NGramBase(Model, Exportable):
    """What every n-gram kind is: the counts (``NGramLM``), its files, sampling, facts."""

    family = "ngram"
    config_class = NGramSettings
    export_formats = ("arpa",)

    def __init__(self, lm: NGramLM, config: Any, directory: Path | None = None) -> None:
        self.lm = lm
        self.config = config
        self.directory = directory
        self.training: dict[str, Any] = {}
        # A trained model's tables map this safetensors file (in _scratch, until saved).
        self._tensor_file: Path | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    def save(self, directory: Path) -> dict[str, Any]:
        target = directory / runs.TENSOR_FILE
        if self._tensor_file is None:
            runs.save_tensors(target, self.lm.to_tensors(), self.family)
        elif self._tensor_file != target:
            with runs.atomic_path(target) as tmp:
                try:  # the trained model's file: moved into the run, not copied
                    os.replace(self._tensor_file, tmp)
                    self._tensor_file = target
                except OSError:  # another file system
                    shutil.copyfile(self._tensor_file, tmp)
            if self._scratch is not None and self._tensor_file == target:
                self._scratch.cleanup()
                self._scratch = None
        runs.write_json(directory / VOCAB_FILE, self.lm.vocab)
        runs.write_json(
            directory / CONFIG_FILE,
            {"model_type": self.family, **asdict(self.config), "lm": self.lm.meta()},
        )
        return self.training

    @classmethod
    def load(cls, directory: Path, config: Any) -> Self:
        path = directory / runs.TENSOR_FILE
        try:
            vocab = json.loads((directory / VOCAB_FILE).read_text(encoding="utf-8"))
            meta = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))["lm"]
            order = meta["order"]
            if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
                raise ValueError(f"{VOCAB_FILE} is not a list of tokens")
            if not isinstance(order, int) or not 1 <= order <= 10:
                raise ValueError(f"order {order!r} is not 1-10")
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise runs.damaged(directory, f"its n-gram config is incomplete ({err})") from None
        # The tables the config describes, before any is read.
        runs.check_tensors(path, NGramLM.tensor_specs(order, len(vocab)))
        # Checked as every family's file is, then mapped rather than read: an order-5
        # model of a 1 GB corpus is several GB, and a query needs few of its pages.
        with runs.open_tensors(path, cls.family):
            pass
        try:
            _, tensors = streaming.map_safetensors(path)
            lm = NGramLM.from_tensors(tensors, vocab, meta)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise runs.damaged(directory, f"its n-gram model is inconsistent ({err})") from None
        return cls(lm, config, directory)

    def sample_tokens(
        self, prompt: Sequence[str], max_tokens: int, rng: np.random.Generator, request: Any
    ) -> list[str]:
        """Up to ``max_tokens`` tokens continuing ``prompt`` (a sentence's first tokens),
        sampled with ``request``'s temperature, top-k and top-p; the sentence's end stops."""
        return list(self.iter_tokens(prompt, max_tokens, rng, request))

    def iter_tokens(
        self, prompt: Sequence[str], max_tokens: int, rng: np.random.Generator, request: Any
    ) -> Iterator[str]:
        """``sample_tokens``, each token as soon as it is drawn (``gentool serve`` streams)."""
        banned = [BOS, UNK]  # never start a sentence mid-way, never emit "<unk>"
        context = [BOS, *self.lm.encode(list(prompt)).tolist()]
        for _ in range(max_tokens):
            history = context[max(0, len(context) - self.lm.order + 1) :]
            logprobs = self.lm.next_token_logprobs(history)
            logprobs[banned] = -np.inf
            if len(context) == 1:  # blank lines are sentences too; a sample is not one
                logprobs[EOS] = -np.inf
            if not np.isfinite(logprobs).any():  # nothing may follow (an odd model)
                return
            token = sample_token(logprobs, rng, request.temperature, request.top_k, request.top_p)
            if token == EOS:
                return
            context.append(token)
            yield self.lm.vocab[token]

    def describe(self) -> dict[str, Any]:
        vocab = len(self.lm.vocab)
        counts = self.lm.ngram_counts()
        facts: dict[str, Any] = {
            "order": self.lm.order,
            "tokens": getattr(self.config, "tokens", "remi"),
            "smoothing": self.lm.smoothing,
            "vocab_size": vocab,
            # Distinct n-grams seen against the V^n possible: why long chains are sparse.
            "ngrams": [
                {"order": n, "distinct": c, "possible": vocab**n, "fraction_seen": c / vocab**n}
                for n, c in enumerate(counts, start=1)
            ],
        }
        if self.lm.discounts:
            facts["discounts"] = {str(n): list(d) for n, d in self.lm.discounts.items()}
        if self.directory is not None:
            facts["model_bytes"] = (self.directory / runs.TENSOR_FILE).stat().st_size
        return facts

    def export(self, fmt: str, path: Path, quantization: str | None = None) -> None:
        from gentool_ngram.arpa import write_arpa

        with runs.atomic_path(path) as tmp:
            write_arpa(self.lm, tmp)


class NGramModel(NGramBase, TextGeneration, TextScoring, Importable):
    family = "ngram"
    description = "Markov chain of order N over chars or words, Kneser-Ney smoothed"
    config_class = NGramConfig
    import_formats = ("arpa",)
    default_data = default_text_path()

    # -- training and tasks ----------------------------------------------------------------
    @classmethod
    def train(cls, config: NGramConfig, context: TrainingContext[Any]) -> NGramModel:
        # Counted within --memory: what does not fit is sorted in runs on disk, in a
        # scratch folder inside the run being built (removed with it on failure).
        scratch = tempfile.TemporaryDirectory(
            prefix=".ngram-", dir=context.run_dir, ignore_cleanup_errors=True
        )
        try:
            result = streaming.estimate_files(
                context.data,
                config.tokens,
                Path(scratch.name),
                _tensor_metadata(),
                order=config.order,
                smoothing=config.smoothing,
                k=config.k,
                alpha=config.alpha,
                discount_fallback=tuple(config.discount_fallback),  # type: ignore[arg-type]
                memory=context.runtime.memory,
                log=context.log,
                text_field=context.fields.text,
            )
        except BaseException:
            scratch.cleanup()
            raise
        lm = result.lm
        if lm.discount_fallback_orders:
            orders = ", ".join(map(str, lm.discount_fallback_orders))
            context.log(
                f"warning: Kneser-Ney discounts of order {orders} are undefined on this small "
                f"corpus; using the fallback {config.discount_fallback} (model.discount_fallback)"
            )
        model = cls(lm, config)
        model._tensor_file, model._scratch = result.tensor_file, scratch
        model.training = {
            "sentences": result.sentences,
            "tokens": result.tokens,
            "vocab_size": len(lm.vocab),
            "ngrams": lm.ngram_counts(),
            "train_seconds": round(sum(result.seconds.values()), 3),
        }
        if context.val is not None:
            val = model.evaluate_text([context.val])
            model.training.update({f"val_{k}": v for k, v in val.items()})
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
        context.log(
            f"ngram order {config.order} ({config.tokens} tokens, {config.smoothing}): "
            f"{model.training['tokens']} tokens, vocabulary {len(lm.vocab)}, "
            f"n-grams per order {lm.ngram_counts()}; {stages}; memory "
            f"{format_size(context.runtime.memory)}, at most "
            f"{result.spilled_bytes / 2**20:,.0f} MB on disk"
        )
        return model

    def generate(self, request: GenerationRequest) -> Iterator[str]:
        if request.num_beams > 1:
            raise PluginError("ngram models sample token by token; they have no --beams search")
        tokenizer = get_tokenizer(self.config.tokens)
        prompt = tokenizer.split(request.prompt)
        rng = np.random.default_rng(request.seed)
        for _ in range(request.num_samples):
            new = self.sample_tokens(prompt, request.max_tokens, rng, request)
            yield tokenizer.join([*prompt, *new])

    def count_tokens(self, text: str) -> int | None:
        return len(get_tokenizer(self.config.tokens).split(text))

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        """The first sample token by token: each piece is what the token adds to the text."""
        if request.num_beams > 1:
            raise PluginError("ngram models sample token by token; they have no --beams search")
        tokenizer = get_tokenizer(self.config.tokens)
        prompt = tokenizer.split(request.prompt)
        tokens, text = list(prompt), request.prompt
        rng = np.random.default_rng(request.seed)
        for token in self.iter_tokens(prompt, request.max_tokens, rng, request):
            tokens.append(token)
            joined = tokenizer.join(tokens)
            if joined.startswith(text):
                yield joined[len(text) :]
            else:  # the tokenizer respaced the prompt: give the new token as joined alone
                yield joined[len(tokenizer.join(tokens[:-1])) :]
            text = joined

    def describe_heldout(self, paths: Sequence[Path]) -> dict[str, Any]:
        """Per order n, the share of the held-out n-grams (one ending at each scored token
        with n-1 tokens before it, <s> counted) that the model never saw: why a long
        chain needs smoothing. Order 1: the words out of the vocabulary."""
        sentences = streaming.read_sentences(paths, self.config.tokens, SCORE_BYTES)
        scores = self.lm.score([s for batch in sentences for s in batch])
        lengths = scores.sentence_lengths
        # each token's place in its sentence: the n-gram ending there has n-1 tokens before
        # it once place >= n-2 (the first word follows <s>)
        place = np.arange(scores.num_tokens) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        orders = []
        for n in range(1, self.lm.order + 1):
            whole = place >= n - 2
            total = int(whole.sum())
            # every stored n-gram's prefixes are stored, so the longest match is shorter
            # than n exactly when the n-gram itself was never seen
            unseen = scores.num_oov if n == 1 else int((scores.ngram_lengths[whole] < n).sum())
            orders.append(
                {
                    "order": n,
                    "heldout": total,
                    "unseen": unseen,
                    "unseen_fraction": unseen / total if total else None,
                }
            )
        return {"tokens": scores.num_tokens, "ngrams": orders}

    def evaluate_text(self, paths: Sequence[Path]) -> dict[str, Any]:
        sums = ScoreSums()  # the text is read and scored in pieces, never held whole
        sentences_of = streaming.read_sentences(
            paths, self.config.tokens, SCORE_BYTES, self.text_field
        )
        for sentences in sentences_of:
            sums += self.lm.score(sentences).sums()
        metrics = {
            "tokens": sums.tokens,
            "oov": sums.oov,
            "perplexity": sums.perplexity(include_oov=True),
            "perplexity_excluding_oov": sums.perplexity(include_oov=False),
            "bits_per_token": sums.bits_per_token(),
        }
        if not self.lm.normalized:
            metrics["normalized"] = False  # stupid backoff: scores, not probabilities
        return metrics

    @classmethod
    def import_model(cls, fmt: str, path: Path) -> tuple[NGramModel, NGramConfig]:
        from gentool_ngram.arpa import read_arpa

        lm = read_arpa(path)
        # KenLM and SRILM read whitespace-separated tokens. ARPA does not record the
        # smoothing; the model's own meta says where it came from.
        config = NGramConfig(order=lm.order, tokens="whitespace")
        model = cls(lm, config)
        model.training = {"vocab_size": len(lm.vocab), "ngrams": lm.ngram_counts()}
        return model, config


def _tensor_metadata() -> dict[str, str]:
    """What runs.save_tensors tags a model file with (the trained model writes its own)."""
    return {"gentool.family": NGramModel.family, "gentool.format": str(runs.FORMAT_VERSION)}
