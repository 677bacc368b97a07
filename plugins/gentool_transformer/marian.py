"""The translator's torch side: the 2017 encoder-decoder Transformer ("Attention Is All You
Need") as a Hugging Face ``MarianMTModel``, its tokenizer, its training task, and
translating and scoring with it.

The network is a Hugging Face ``MarianMTModel`` built from scratch from the recipe's [model]
table: sinusoidal positions, post-layer-norm blocks, ReLU feed-forward, ``num_heads``-head
attention, one embedding matrix shared by encoder, decoder and output projection (the
paper's weight tying). Source and target share one byte-level BPE vocabulary learned on both
sides of the training pairs; ``<|endoftext|>`` (id 0) ends every sentence, pads, and starts
the decoder.

Training batches hold ``train.batch_size`` sentence pairs of similar length (little
padding): each epoch shuffles the pairs with a generator seeded by (seed, epoch), sorts
pools of them by length, cuts the pools into batches and shuffles the batches, all on the
pairs' lengths (``tokencache.PairIds``: memory-mapped, read a batch at a time). Batch ``i``
is thus a pure function of ``i``, so a resumed run equals an uninterrupted one. The loss is
the label-smoothed cross-entropy per target token.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import (
    MarianConfig,
    MarianMTModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from gentool.data.parallel import ParallelCorpus, read_parallel
from gentool.neural.engine import TrainingTask
from gentool.neural.tokencache import PairIds
from gentool.neural.tokenizers import ENDOFTEXT, UNK, train_tokenizer
from gentool.tasks import TranslationRequest
from gentool_transformer.config import TransformerSizes

PAD_MULTIPLE = 8  # batch lengths are rounded up to this: few distinct shapes (see collate)
POOL_BATCHES = 50  # batches per length-sorted pool: more means less padding, less randomness
TRANSLATE_BATCH = 64  # sentences per generate() call when evaluating a test set
Pair = tuple[list[int], list[int]]  # (source ids, target ids), each ending with eos


# -- tokens ----------------------------------------------------------------------------------


def train_joint_bpe(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE vocabulary learned on source and target text together
    (``joint_bpe``)."""
    return joint_bpe(train_tokenizer("bpe", texts, vocab_size=vocab_size))


def joint_bpe(bpe: PreTrainedTokenizerBase) -> PreTrainedTokenizerFast:
    """The translator's tokenizer of a learned BPE ``bpe``: encoding appends
    ``<|endoftext|>`` (the eos every sentence ends with) and pads on the right (the
    positions are absolute, so padding must come after the text)."""
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe.backend_tokenizer,
        eos_token=ENDOFTEXT,
        pad_token=ENDOFTEXT,
        unk_token=UNK,
        add_bos_token=False,
        add_eos_token=True,
        clean_up_tokenization_spaces=False,
        padding_side="right",
        model_max_length=1 << 30,
        gentool_kind="bpe",
    )


def encode(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, eos included."""
    if not texts:
        return []
    return [list(ids) for ids in tokenizer(list(texts))["input_ids"]]


def encode_pairs(tokenizer: PreTrainedTokenizerBase, corpus: ParallelCorpus) -> list[Pair]:
    return list(
        zip(encode(tokenizer, corpus.sources), encode(tokenizer, corpus.targets), strict=True)
    )


def filter_long(pairs: Any, limit: int) -> tuple[Any, int]:
    """The pairs whose sides both fit ``limit`` tokens, and how many did not: a list of
    pairs, or PairIds (read from their lengths)."""
    if isinstance(pairs, PairIds):
        import numpy as np

        fits = (pairs.source_lengths <= limit) & (pairs.target_lengths <= limit)
        return pairs[np.flatnonzero(fits)], int(len(pairs) - fits.sum())
    kept = [p for p in pairs if len(p[0]) <= limit and len(p[1]) <= limit]
    return kept, len(pairs) - len(kept)


def collate(
    pairs: Sequence[Pair], pad: int, start: int, multiple: int = PAD_MULTIPLE
) -> dict[str, torch.Tensor]:
    """Right-padded tensors: encoder input, decoder input (the target shifted right after
    the start token) and labels (-100 where padded).

    Lengths are rounded up to ``multiple``: oneDNN's bf16 kernels are compiled per shape,
    and a new shape every batch makes a CPU step 3-5x slower than a few cached ones."""
    batch = len(pairs)
    src_len = -(-max(len(s) for s, _ in pairs) // multiple) * multiple
    tgt_len = -(-max(len(t) for _, t in pairs) // multiple) * multiple
    input_ids = torch.full((batch, src_len), pad, dtype=torch.long)  # (B, S)
    mask = torch.zeros((batch, src_len), dtype=torch.long)
    decoder_ids = torch.full((batch, tgt_len), pad, dtype=torch.long)  # (B, T)
    labels = torch.full((batch, tgt_len), -100, dtype=torch.long)
    for row, (src, tgt) in enumerate(pairs):
        input_ids[row, : len(src)] = torch.tensor(src)
        mask[row, : len(src)] = 1
        decoder_ids[row, : len(tgt)] = torch.tensor([start, *tgt[:-1]])
        labels[row, : len(tgt)] = torch.tensor(tgt)
    return {
        "input_ids": input_ids,
        "attention_mask": mask,
        "decoder_input_ids": decoder_ids,
        "labels": labels,
    }


def token_losses(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], smoothing: float = 0.0
) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the batch's target tokens, and their count."""
    device = next(model.parameters()).device
    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    labels = batch.pop("labels")
    logits = model(**batch).logits  # (B, T, V)
    loss = F.cross_entropy(
        logits.float().flatten(0, 1),
        labels.flatten(),
        ignore_index=-100,
        label_smoothing=smoothing,
        reduction="sum",
    )
    return loss, int((labels != -100).sum())


# -- the network and its training task -------------------------------------------------------


def build_model(config: TransformerSizes, tokenizer: PreTrainedTokenizerBase) -> MarianMTModel:
    """A freshly initialised translator of ``config``'s sizes; ``<|endoftext|>`` pads, ends
    every sentence and starts the decoder."""
    eos = tokenizer.eos_token_id
    model = MarianMTModel(
        MarianConfig(
            vocab_size=len(tokenizer),
            d_model=config.d_model,
            encoder_layers=config.num_layers,
            decoder_layers=config.num_layers,
            encoder_attention_heads=config.num_heads,
            decoder_attention_heads=config.num_heads,
            encoder_ffn_dim=config.d_ff,
            decoder_ffn_dim=config.d_ff,
            max_position_embeddings=config.context_length,
            dropout=config.dropout,
            attention_dropout=0.0,  # the paper's dropout: on sublayer outputs and embeddings
            activation_dropout=0.0,
            activation_function="relu",
            scale_embedding=True,  # embeddings x sqrt(d_model), as in the paper
            share_encoder_decoder_embeddings=True,
            tie_word_embeddings=config.tie_embeddings,
            pad_token_id=eos,
            eos_token_id=eos,
            decoder_start_token_id=eos,
            forced_eos_token_id=eos,
        )
    )
    model.generation_config.update(
        pad_token_id=eos,
        eos_token_id=eos,
        decoder_start_token_id=eos,
        forced_eos_token_id=eos,
        num_beams=TranslationRequest().num_beams,
        max_length=config.context_length,
        bad_words_ids=None,
    )
    return model


def prepare(
    pairs: PairIds,
    val_pairs: PairIds | None,
    dropped: dict[str, int],
    val_dropped: dict[str, int],
    limit: int,
    val_fraction: float,
    log: Any,
) -> tuple[PairIds, PairIds, dict[str, int], dict[str, int]]:
    """The training and validation pairs (the last ``val_fraction`` of the training pairs
    without held-out ones), those over ``limit`` tokens dropped; ``dropped`` and
    ``val_dropped`` (by reason: those dropped while reading) are added to, and logged."""
    if val_pairs is None:
        cut = len(pairs) - int(len(pairs) * val_fraction)
        pairs, val_pairs = pairs[:cut], pairs[cut:]
    pairs, too_long = filter_long(pairs, limit)
    val_pairs, val_too_long = filter_long(val_pairs, limit)
    dropped = {**dropped, **({"too_long": too_long} if too_long else {})}
    val_dropped = {**val_dropped, **({"too_long": val_too_long} if val_too_long else {})}
    for name, counts in (("training", dropped), ("validation", val_dropped)):
        if counts:
            log(f"dropped {sum(counts.values())} {name} pairs: {_describe_drops(counts, limit)}")
    return pairs, val_pairs, dropped, val_dropped


def _describe_drops(counts: dict[str, int], limit: int) -> str:
    names = {
        "empty": "with an empty side",
        "too_long": f"longer than model.context_length={limit} tokens",
    }
    return ", ".join(f"{n} {names.get(reason, reason)}" for reason, n in counts.items())


class PairTask(TrainingTask):
    """Sentence pairs in length-bucketed batches of ``rows``; see the module docstring.
    The pairs (PairIds, or a list of (source ids, target ids)) are read a batch at a time;
    batches are made from their lengths."""

    def __init__(
        self,
        model: torch.nn.Module,
        train: Sequence[Pair] | PairIds,
        val: Sequence[Pair] | PairIds,
        rows: int,
        seed: int,
        pad: int,
        smoothing: float,
        start: int | None = None,
    ) -> None:
        import numpy as np

        self.model = model
        self.start = pad if start is None else start  # what the decoder starts from
        self.train = PairIds.of(train)
        val = PairIds.of(val)
        self.val_pairs = val  # as given: a translator's BLEU after training takes the first
        # little padding: by target, then source length (a stable sort, as sorted() is)
        self.val = val[np.lexsort((val.source_lengths, val.target_lengths))]
        self.rows = rows
        self.seed = seed
        self.pad = pad
        self.smoothing = smoothing
        self.batches_per_epoch = len(self.train) // rows
        self.items_per_batch = round(rows * float(self.train.target_lengths.mean()))

    def epoch(self, number: int) -> list[list[int]]:
        """The batches of epoch ``number``: lists of pair indices, similar lengths together."""
        return self._epoch(number).tolist()

    @functools.lru_cache(maxsize=2)  # noqa: B019  (one task per training run)
    def _epoch(self, number: int) -> Any:
        """``epoch``'s batches as an array (batches, rows): no Python list per pair."""
        import numpy as np

        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + number)
        order = torch.randperm(len(self.train), generator=generator).numpy()
        order = order[: self.batches_per_epoch * self.rows]  # the rest comes in other epochs
        targets, sources = self.train.target_lengths, self.train.source_lengths
        pool = self.rows * POOL_BATCHES  # (a multiple of rows, as is len(order))
        chunks = []
        for start in range(0, len(order), pool):
            chunk = order[start : start + pool]
            chunks.append(chunk[np.lexsort((sources[chunk], targets[chunk]))])
        batches = np.concatenate(chunks).reshape(-1, self.rows) if chunks else order.reshape(0, 1)
        shuffle = torch.randperm(len(batches), generator=generator).numpy()
        return batches[shuffle]

    def train_batch(self, index: int, rows: slice) -> dict[str, torch.Tensor]:
        number, position = divmod(index, self.batches_per_epoch)
        indices = self._epoch(number)[position][rows]
        return collate([self.train[int(i)] for i in indices], self.pad, self.start)

    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        total, count = token_losses(model, batch, self.smoothing)
        return total / max(1, count)

    def evaluate(self, model: torch.nn.Module, rows: slice, max_batches: int) -> tuple[float, int]:
        """Cross-entropy (no smoothing) summed over the validation targets' tokens."""
        total, count = 0.0, 0
        for n, start in enumerate(range(0, len(self.val), self.rows)):
            if max_batches and n >= max_batches:
                break
            pairs = self.val[start : start + self.rows][rows]
            if pairs:
                loss, tokens = token_losses(model, collate(pairs, self.pad, self.start))
                total, count = total + float(loss), count + tokens
        return total, count


# -- translating and scoring ----------------------------------------------------------------


def positions(network: Any) -> int:
    """The longest sentence the model takes, in tokens (relative positions, T5: 512)."""
    from gentool.neural.hf import context_length

    return context_length(network.config) or 512


def translate(
    network: Any,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    request: TranslationRequest,
    source_cap: bool = False,
) -> list[str]:
    """Beam-search translations, one per text, in order; an empty text gives ''.
    ``source_cap``: at most twice the batch's longest source plus 10 tokens each."""
    out = [""] * len(texts)
    todo = [i for i, text in enumerate(texts) if text.strip()]
    if not todo:
        return out
    limit = positions(network)
    ids = encode(tokenizer, [texts[i].strip() for i in todo])
    if any(len(x) > limit for x in ids):
        sys.stderr.write(
            f"warning: sentences longer than the model's {limit} tokens were cut to fit\n"
        )
        ids = [x[: limit - 1] + x[-1:] if len(x) > limit else x for x in ids]
    eos = tokenizer.eos_token_id
    # The model's limit, not one derived from the batch: a sentence translates the same
    # in any batch. A trained model ends its sentences long before. (source_cap gives
    # that up, to score a model that may not have learnt to end a sentence.)
    max_new = min(request.max_tokens or limit, limit - 1)
    if source_cap:
        max_new = min(max_new, 2 * max(len(x) for x in ids) + 10)
    options: dict[str, Any] = {
        "max_new_tokens": max_new,
        "num_beams": request.num_beams,
        "do_sample": False,
    }
    if request.num_beams > 1:
        # A sentence is done when it has num_beams finished hypotheses.
        options.update(length_penalty=request.length_penalty, early_stopping=True)
    batch = collate([(x, [eos]) for x in ids], tokenizer.pad_token_id, eos, multiple=1)
    device = network.device
    with torch.no_grad():
        generated = network.generate(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            **options,
        )
    texts_out = tokenizer.batch_decode(generated, skip_special_tokens=True)
    for i, text in zip(todo, texts_out, strict=True):
        out[i] = text.strip()
    return out


def translate_all(
    network: Any,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    request: TranslationRequest,
    advance: Callable[[int], None] | None = None,
    source_cap: bool = False,
) -> list[str]:
    """``translate`` over many sentences, in length-sorted batches (less padding);
    ``advance(n)`` hears of each batch done."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = [""] * len(texts)
    for start in range(0, len(order), TRANSLATE_BATCH):
        chunk = order[start : start + TRANSLATE_BATCH]
        translated = translate(network, tokenizer, [texts[i] for i in chunk], request, source_cap)
        for i, text in zip(chunk, translated, strict=True):
            out[i] = text
        if advance is not None:
            advance(len(chunk))
    return out


def score(
    network: Any,
    tokenizer: PreTrainedTokenizerBase,
    sources: Sequence[str],
    targets: Sequence[str],
    request: TranslationRequest | None = None,
    advance: Callable[[int], None] | None = None,
    source_cap: bool = False,
) -> dict[str, Any]:
    """Corpus BLEU and chrF (sacrebleu defaults: cased, detokenized, 13a) of beam-search
    translations of ``sources`` against ``targets``."""
    import sacrebleu

    request = request or TranslationRequest()
    hypotheses = translate_all(network, tokenizer, sources, request, advance, source_cap)
    bleu, chrf = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
    bleu_score = bleu.corpus_score(hypotheses, [list(targets)])
    chrf_score = chrf.corpus_score(hypotheses, [list(targets)])
    return {
        "bleu": bleu_score.score,
        "bleu_signature": str(bleu.get_signature()),
        "chrf": chrf_score.score,
        "chrf_signature": str(chrf.get_signature()),
    }


def evaluate_translation(
    network: Any, tokenizer: PreTrainedTokenizerBase, source: Path, target: Path
) -> dict[str, Any]:
    """BLEU and chrF of the beam-search translations of ``source`` against ``target``,
    and the teacher-forced cross-entropy per target token."""
    started = time.perf_counter()
    corpus = read_parallel(source, target)
    result = score(network, tokenizer, corpus.sources, corpus.targets)
    total, count = 0.0, 0
    pad = tokenizer.pad_token_id
    limit = positions(network)
    scored, too_long = filter_long(encode_pairs(tokenizer, corpus), limit)
    with torch.no_grad():
        for start in range(0, len(scored), TRANSLATE_BATCH):
            loss, tokens = token_losses(
                network, collate(scored[start : start + TRANSLATE_BATCH], pad, pad)
            )
            total, count = total + float(loss), count + tokens
    result.update(
        sentences=len(corpus.pairs),
        loss=total / count if count else None,
        loss_tokens=count,
        seconds=time.perf_counter() - started,
    )
    if corpus.dropped or too_long:
        result["dropped_pairs"] = {
            **corpus.dropped,
            **({"too_long": too_long} if too_long else {}),
        }
    return result
