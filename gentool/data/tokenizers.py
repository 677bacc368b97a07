"""Simple text tokenizers shared by the text families: char, word and whitespace.

A tokenizer turns one line (a sentence) into tokens and tokens back into text. The
subword (BPE) tokenizers of the neural families come from Hugging Face ``tokenizers``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gentool.errors import RecipeError

# A word keeps inner apostrophes and hyphens ("don't", "well-met") and an elided
# lower-case start ("'tis", "'em"); every other non-space, non-word character is a token.
_WORD = re.compile(r"(?:(?<!\w)['’](?=[a-z]))?\w+(?:['’-]\w+)*|[^\w\s]", re.UNICODE)
_NO_SPACE_BEFORE = re.compile(r" ([,.;:!?%)\]}]|['’](?!\w))")
_NO_SPACE_AFTER = re.compile(r"([(\[{]) ")


@dataclass(frozen=True)
class Tokenizer:
    name: str
    split: Callable[[str], list[str]]
    join: Callable[[Sequence[str]], str]


def _join_words(tokens: Sequence[str]) -> str:
    text = " ".join(tokens)
    return _NO_SPACE_AFTER.sub(r"\1", _NO_SPACE_BEFORE.sub(r"\1", text))


TOKENIZERS: dict[str, Tokenizer] = {
    "char": Tokenizer("char", list, "".join),
    "word": Tokenizer("word", _WORD.findall, _join_words),
    # Exactly what KenLM's lmplz and query see: runs of non-whitespace.
    "whitespace": Tokenizer("whitespace", str.split, " ".join),
}


def get_tokenizer(name: str) -> Tokenizer:
    try:
        return TOKENIZERS[name]
    except KeyError:
        raise RecipeError(
            f"tokens '{name}' is unknown; valid values: {', '.join(TOKENIZERS)}"
        ) from None
