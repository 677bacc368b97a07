"""Readers for the data families train on, and simple text tokenizers."""

from gentool.data.parallel import ParallelCorpus, read_parallel, read_tsv
from gentool.data.text import default_text_path, read_corpus, read_lines, read_text
from gentool.data.tokenizers import TOKENIZERS, Tokenizer, get_tokenizer

__all__ = [
    "ParallelCorpus",
    "read_parallel",
    "read_tsv",
    "TOKENIZERS",
    "Tokenizer",
    "default_text_path",
    "get_tokenizer",
    "read_corpus",
    "read_lines",
    "read_text",
]
