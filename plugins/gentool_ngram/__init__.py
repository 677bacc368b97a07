"""The ``ngram`` family: count-based Markov chains with Kneser-Ney smoothing.

Registered through the ``gentool`` entry-point group like any third-party plugin.
"""

from collections.abc import Callable

import gentool
from gentool_ngram.family import NGramConfig, NGramModel
from gentool_ngram.music import NGramMusic, NGramMusicConfig

__all__ = ["NGramConfig", "NGramModel", "NGramMusic", "NGramMusicConfig"]


@gentool.hookimpl
def register_models(register: Callable[[type], None]) -> None:
    register(NGramModel)  # first: the family's kind for text, and with no data
    register(NGramMusic)  # music data (MIDI) routes here
