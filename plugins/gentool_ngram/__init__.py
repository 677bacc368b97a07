"""The ``ngram`` family: count-based Markov chains with Kneser-Ney smoothing.

Registered through the ``gentool`` entry-point group like any third-party plugin.
"""

from collections.abc import Callable

import gentool
from gentool_ngram.family import NGramConfig, NGramModel

__all__ = ["NGramConfig", "NGramModel"]


@gentool.hookimpl
def register_models(register: Callable[[type], None]) -> None:
    register(NGramModel)
