"""Token streams for the neural language models (rnn, the transformer LM): the text as one
sequence of ids that starts with ``<|endoftext|>``, its held-out part, and the figures
``evaluate`` reports for it, in the units of ngram's perplexity."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gentool.data.text import read_corpus
from gentool.errors import DataError
from gentool.progress import phase

if TYPE_CHECKING:
    import torch

LN2 = math.log(2)


def encode_stream(tokenizer: Any, text: str, bos: int) -> torch.Tensor:
    """``text`` as one stream of ids, ``bos`` (``<|endoftext|>``) first."""
    import torch

    from gentool.neural.tokenizers import encode_text

    return torch.tensor([bos, *encode_text(tokenizer, text)], dtype=torch.long)


def split_stream(
    tokenizer: Any,
    text: str,
    bos: int,
    val: Path | None,
    val_fraction: float,
    log: Callable[[str], None] = lambda message: None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The training stream, and the held-out one: ``val`` when given, else the last
    ``val_fraction`` of the text's stream (None when that is empty). ``log`` hears about
    an encoding that takes long."""
    with phase(log, "encoding the text"):
        ids = encode_stream(tokenizer, text, bos)
        if val is not None:
            return ids, encode_stream(tokenizer, read_corpus([val]), bos)
    cut = len(ids) - int(len(ids) * val_fraction)
    return ids[:cut], (ids[cut:] if cut < len(ids) else None)


def scoring_stream(tokenizer: Any, paths: Sequence[Path], bos: int) -> torch.Tensor:
    """What ``evaluate`` scores: the files read as one stream; a DataError if it is empty."""
    ids = encode_stream(tokenizer, read_corpus(paths), bos)
    if len(ids) < 2:
        raise DataError(f"'{paths[0]}' has no tokens to score; give a file with text")
    return ids


def stream_metrics(total: float, ids: torch.Tensor, unk: int, seconds: float) -> dict[str, Any]:
    """``evaluate``'s figures for ``ids`` scored token by token from the first: ``total``
    is the summed cross-entropy (nats) of predicting ``ids[1:]``."""
    count = len(ids) - 1
    loss = total / count
    return {
        "tokens": count,
        "oov": int((ids[1:] == unk).sum()),
        "cross_entropy": loss,
        "perplexity": math.exp(loss),
        "bits_per_token": loss / LN2,
        "seconds": seconds,
    }
