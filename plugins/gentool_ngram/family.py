"""The ngram family's glue to gentool: config, training from files, the run directory, tasks.

The numbers live in ``lm.py`` (estimation, scoring) and ``arpa.py`` (KenLM's format).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gentool import runs
from gentool.data import default_text_path, get_tokenizer, read_lines
from gentool.data.text import warn_long_lines
from gentool.errors import PluginError
from gentool.model import Exportable, Importable, Model, TrainingContext
from gentool.tasks import GenerationRequest, TextGeneration, TextScoring
from gentool_ngram.lm import BOS, EOS, UNK, NGramLM
from gentool_ngram.sampling import sample_token

VOCAB_FILE = "vocab.json"
CONFIG_FILE = "config.json"


@dataclass
class NGramConfig:
    """The [model] table of an ngram recipe."""

    order: int = 3  # 3 = a trigram model, a "2nd-order Markov chain"
    tokens: Literal["char", "word", "whitespace"] = "word"
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


def read_sentences(
    paths: Sequence[Path], tokens: str, log: Callable[[str], None] | None = None
) -> list[list[str]]:
    """One sentence per line, tokenized; with ``log``, a warning for absurdly long lines."""
    split = get_tokenizer(tokens).split
    sentences = []
    for path in paths:
        lines = read_lines(path)
        if log is not None:
            warn_long_lines(path, lines, log)
        sentences += [split(line) for line in lines]
    return sentences


class NGramModel(Model, TextGeneration, TextScoring, Exportable, Importable):
    family = "ngram"
    description = "Markov chain of order N over chars or words, Kneser-Ney smoothed"
    config_class = NGramConfig
    export_formats = ("arpa",)
    import_formats = ("arpa",)
    default_data = default_text_path()

    def __init__(self, lm: NGramLM, config: NGramConfig, directory: Path | None = None) -> None:
        self.lm = lm
        self.config = config
        self.directory = directory
        self.training: dict[str, Any] = {}

    # -- training and persistence -------------------------------------------------------
    @classmethod
    def train(cls, config: NGramConfig, context: TrainingContext[Any]) -> NGramModel:
        started = time.perf_counter()
        sentences = read_sentences(context.data, config.tokens, context.log)
        lm = NGramLM.estimate(
            sentences,
            order=config.order,
            smoothing=config.smoothing,
            k=config.k,
            alpha=config.alpha,
            discount_fallback=tuple(config.discount_fallback),  # type: ignore[arg-type]
        )
        if lm.discount_fallback_orders:
            orders = ", ".join(map(str, lm.discount_fallback_orders))
            context.log(
                f"warning: Kneser-Ney discounts of order {orders} are undefined on this small "
                f"corpus; using the fallback {config.discount_fallback} (model.discount_fallback)"
            )
        model = cls(lm, config)
        model.training = {
            "sentences": len(sentences),
            "tokens": sum(len(s) for s in sentences),
            "vocab_size": len(lm.vocab),
            "ngrams": lm.ngram_counts(),
            "train_seconds": round(time.perf_counter() - started, 3),
        }
        if context.val is not None:
            val = model.evaluate_text([context.val])
            model.training.update({f"val_{k}": v for k, v in val.items()})
        context.log(
            f"ngram order {config.order} ({config.tokens} tokens, {config.smoothing}): "
            f"{model.training['tokens']} tokens, vocabulary {len(lm.vocab)}, "
            f"n-grams per order {lm.ngram_counts()}"
        )
        return model

    def save(self, directory: Path) -> dict[str, Any]:
        runs.save_tensors(directory / runs.TENSOR_FILE, self.lm.to_tensors(), self.family)
        runs.write_json(directory / VOCAB_FILE, self.lm.vocab)
        runs.write_json(
            directory / CONFIG_FILE,
            {"model_type": self.family, **asdict(self.config), "lm": self.lm.meta()},
        )
        return self.training

    @classmethod
    def load(cls, directory: Path, config: NGramConfig) -> NGramModel:
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
        tensors = runs.load_tensors(path, cls.family)
        try:
            lm = NGramLM.from_tensors(tensors, vocab, meta)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise runs.damaged(directory, f"its n-gram model is inconsistent ({err})") from None
        return cls(lm, config, directory)

    # -- tasks --------------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> Iterator[str]:
        if request.num_beams > 1:
            raise PluginError("ngram models sample token by token; they have no --beams search")
        tokenizer = get_tokenizer(self.config.tokens)
        prompt = tokenizer.split(request.prompt)
        rng = np.random.default_rng(request.seed)
        banned = [BOS, UNK]  # never start a sentence mid-way, never emit "<unk>"
        for _ in range(request.num_samples):
            context = [BOS, *self.lm.encode(prompt).tolist()]
            new: list[str] = []
            for _ in range(request.max_tokens):
                history = context[max(0, len(context) - self.lm.order + 1) :]
                logprobs = self.lm.next_token_logprobs(history)
                logprobs[banned] = -np.inf
                if len(context) == 1:  # blank lines are sentences too; a sample is not one
                    logprobs[EOS] = -np.inf
                if not np.isfinite(logprobs).any():  # nothing may follow (an odd model)
                    break
                token = sample_token(
                    logprobs, rng, request.temperature, request.top_k, request.top_p
                )
                if token == EOS:
                    break
                context.append(token)
                new.append(self.lm.vocab[token])
            yield tokenizer.join([*prompt, *new])

    def evaluate_text(self, paths: Sequence[Path]) -> dict[str, Any]:
        scores = self.lm.score(read_sentences(paths, self.config.tokens))
        metrics = {
            "tokens": scores.num_tokens,
            "oov": scores.num_oov,
            "perplexity": scores.perplexity(include_oov=True),
            "perplexity_excluding_oov": scores.perplexity(include_oov=False),
            "bits_per_token": scores.bits_per_token(),
        }
        if not self.lm.normalized:
            metrics["normalized"] = False  # stupid backoff: scores, not probabilities
        return metrics

    def describe(self) -> dict[str, Any]:
        vocab = len(self.lm.vocab)
        counts = self.lm.ngram_counts()
        facts: dict[str, Any] = {
            "order": self.lm.order,
            "tokens": self.config.tokens,
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

    def describe_heldout(self, paths: Sequence[Path]) -> dict[str, Any]:
        """Per order n, the share of the held-out n-grams (one ending at each scored token
        with n-1 tokens before it, <s> counted) that the model never saw: why a long
        chain needs smoothing. Order 1: the words out of the vocabulary."""
        scores = self.lm.score(read_sentences(paths, self.config.tokens))
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

    def export(self, fmt: str, path: Path) -> None:
        from gentool_ngram.arpa import write_arpa

        with runs.atomic_path(path) as tmp:
            write_arpa(self.lm, tmp)

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
