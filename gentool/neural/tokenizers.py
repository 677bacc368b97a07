"""Char, word and byte-level BPE tokenizers trained with Hugging Face ``tokenizers``, for the
neural text families (rnn, transformer); import it only where torch/transformers are wanted.

Each is wrapped as a ``PreTrainedTokenizerFast`` (``TokenizersBackend`` in transformers 5), saves
as ``tokenizer.json`` + ``tokenizer_config.json`` and reloads with ``AutoTokenizer``. Ids 0 and 1
are ``<|endoftext|>`` (bos, eos and pad) and ``<unk>``; encoding never adds special tokens.
``encode_text`` encodes a large text fast (and exactly as ``tokenizer.encode`` would).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from gentool.data.text import SAFE_CUT
from gentool.data.tokenizers import _WORD

ENDOFTEXT = "<|endoftext|>"
UNK = "<unk>"
SPECIAL_TOKENS = [ENDOFTEXT, UNK]
KINDS = ("char", "word", "bpe")
DEFAULT_BPE_VOCAB = 1000
_KIND_KEY = "gentool_kind"  # stored in tokenizer_config.json

_CHUNK_CHARS = 16384


def _backend(kind: str) -> Tokenizer:
    """An untrained ``tokenizers.Tokenizer`` with the pre-tokenizer and decoder of ``kind``."""
    if kind == "char":
        tok = Tokenizer(models.WordLevel(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        tok.decoder = decoders.Fuse()
    elif kind == "word":
        tok = Tokenizer(models.WordLevel(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                # Drop spaces (every whitespace but "\n"), then isolate words, punctuation and "\n".
                pre_tokenizers.Split(Regex(r"[^\S\n]+"), behavior="removed"),
                pre_tokenizers.Split(Regex(_WORD.pattern + r"|\n"), behavior="isolated"),
            ]
        )
        tok.decoder = decoders.Sequence(
            [
                decoders.WordPiece(prefix="##", cleanup=False),  # joins tokens with spaces
                decoders.Fuse(),
                decoders.Replace(Regex(r" ?\n ?"), "\n"),
                decoders.Replace(Regex(r" (?=[,.;:!?%)\]}]|['’](?!\w))"), ""),
                decoders.Replace(Regex(r"(?<=[(\[{]) "), ""),
            ]
        )
    elif kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
    else:
        raise ValueError(f"tokenizer kind '{kind}' is unknown; valid values: {', '.join(KINDS)}")
    return tok


def _trainer(kind: str, vocab_size: int | None, min_frequency: int) -> trainers.Trainer:
    if kind == "bpe":
        size = DEFAULT_BPE_VOCAB if vocab_size is None else vocab_size
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        if size < len(alphabet) + len(SPECIAL_TOKENS):
            raise ValueError(
                f"a byte-level BPE vocab_size must be at least "
                f"{len(alphabet) + len(SPECIAL_TOKENS)}, got {size}"
            )
        return trainers.BpeTrainer(
            vocab_size=size,
            min_frequency=min_frequency,
            special_tokens=SPECIAL_TOKENS,
            initial_alphabet=alphabet,
            show_progress=False,
        )
    if vocab_size is not None and vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must exceed {len(SPECIAL_TOKENS)}, got {vocab_size}")
    return trainers.WordLevelTrainer(
        vocab_size=(1 << 31) - 1 if vocab_size is None else vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
    )


def wrap_tokenizer(backend: Tokenizer, kind: str | None = None) -> PreTrainedTokenizerFast:
    """Wrap a trained backend as a transformers fast tokenizer with our special tokens."""
    extra = {} if kind is None else {_KIND_KEY: kind}
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=ENDOFTEXT,
        eos_token=ENDOFTEXT,
        pad_token=ENDOFTEXT,
        unk_token=UNK,
        add_bos_token=False,
        add_eos_token=False,
        clean_up_tokenization_spaces=False,
        padding_side="left",  # RnnForCausalLM treats left padding exactly; generate() needs it
        **extra,
    )


def train_tokenizer(
    kind: str, texts: Iterable[str], vocab_size: int | None = None, min_frequency: int = 1
) -> PreTrainedTokenizerFast:
    """Train a ``kind`` tokenizer ("char", "word" or "bpe") on ``texts``.

    ``vocab_size`` counts the two special tokens; for char and word it keeps the most frequent
    symbols (the rest become ``<unk>``) and ``None`` keeps all; for bpe it defaults to 1000.
    """
    trainer = _trainer(kind, vocab_size, min_frequency)  # validates the sizes
    if kind == "char":
        return wrap_tokenizer(_char_backend(texts, vocab_size, min_frequency), kind)
    backend = _backend(kind)
    backend.train_from_iterator(texts, trainer=trainer)
    return wrap_tokenizer(backend, kind)


def run_tokenizer(
    run_dir: Path,
    resume: bool,
    train: Callable[[], PreTrainedTokenizerBase],
    log: Callable[[str], None] = lambda message: None,
) -> PreTrainedTokenizerBase:
    """The tokenizer of a training run in ``run_dir``: when resuming, the one saved there
    (the checkpoint was trained with it); otherwise ``train()``'s, saved there by the main
    process. A ValueError from ``train`` (a vocabulary size it cannot meet) is a RecipeError.
    ``log`` hears about a tokenizer that takes long to learn (a large BPE vocabulary)."""
    from transformers import AutoTokenizer

    from gentool.errors import RecipeError
    from gentool.progress import phase
    from gentool.runs import is_main_process

    if resume:
        return AutoTokenizer.from_pretrained(str(run_dir))
    try:
        with phase(log, "learning the tokenizer"):
            tokenizer = train()
    except ValueError as err:
        raise RecipeError(f"model.vocab_size: {err}") from None
    if is_main_process():
        tokenizer.save_pretrained(str(run_dir))
    return tokenizer


def _char_backend(texts: Iterable[str], vocab_size: int | None, min_frequency: int) -> Tokenizer:
    """The char tokenizer, its vocabulary counted by code point in numpy: what
    WordLevelTrainer would learn (most frequent first), many times faster than
    pre-tokenizing every character."""
    import numpy as np

    counts = np.zeros(0x110000, dtype=np.int64)
    for text in texts:
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        counts += np.bincount(points, minlength=len(counts))
    found = np.flatnonzero(counts >= max(min_frequency, 1))
    chars = [chr(c) for c in found[np.lexsort((found, -counts[found]))]]
    if vocab_size is not None:
        chars = chars[: vocab_size - len(SPECIAL_TOKENS)]
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *chars])}
    backend = _backend("char")
    backend.model = models.WordLevel(vocab, unk_token=UNK)
    backend.add_special_tokens(SPECIAL_TOKENS)
    return backend


def tokenizer_kind(tokenizer: PreTrainedTokenizerBase) -> str | None:
    """The kind a tokenizer was trained as ("char", "word", "bpe"), or None if unknown."""
    kind = getattr(tokenizer, "init_kwargs", {}).get(_KIND_KEY)
    return kind if kind in KINDS else None


def _chunks(text: str, size: int | None = None) -> Iterator[str]:
    size = _CHUNK_CHARS if size is None else size
    start, length = 0, len(text)
    while length - start > size:
        cut = SAFE_CUT.search(text, start + size)
        if cut is None:
            break
        yield text[start : cut.end()]
        start = cut.end()
    if start < length:
        yield text[start:]


def encode_text(tokenizer: PreTrainedTokenizerBase | Tokenizer, text: str) -> list[int]:
    """Token ids of a (possibly very large) text, the same as ``tokenizer.encode(text)``.

    A char tokenizer maps characters through its vocabulary directly; others encode chunks cut
    at newlines in parallel (``encode_batch_fast``). No special tokens are added.
    """
    if isinstance(tokenizer, PreTrainedTokenizerFast):
        backend = tokenizer.backend_tokenizer
    elif isinstance(tokenizer, Tokenizer):
        backend = tokenizer
    else:  # not backed by `tokenizers` (e.g. sentencepiece): no fast path
        return list(tokenizer.encode(text, add_special_tokens=False))
    added = [token.content for token in backend.get_added_tokens_decoder().values()]
    # Added (special) tokens are matched in the text first: only the chunked path does that.
    if (
        isinstance(tokenizer, PreTrainedTokenizerFast)
        and tokenizer_kind(tokenizer) == "char"
        and not any(token in text for token in added)
    ):
        vocab = backend.get_vocab(with_added_tokens=False)
        unk = vocab[UNK]
        return [vocab.get(ch, unk) for ch in text]
    encodings = backend.encode_batch_fast(list(_chunks(text)), add_special_tokens=False)
    return [i for encoding in encodings for i in encoding.ids]


__all__ = [
    "ENDOFTEXT",
    "KINDS",
    "SPECIAL_TOKENS",
    "UNK",
    "encode_text",
    "tokenizer_kind",
    "train_tokenizer",
    "wrap_tokenizer",
]
