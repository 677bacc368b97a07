"""The ``rnn`` family: LSTM/GRU/RNN language models on gentool's accelerate engine.

Registered through the ``gentool`` entry-point group like any third-party plugin. torch and
transformers are imported only when a model is trained or loaded; ``import
gentool_rnn.modeling`` registers the model with transformers' Auto classes.
"""

from collections.abc import Callable

import gentool
from gentool_rnn.family import RnnFamily, RnnModelConfig, RnnTrainConfig

__all__ = ["RnnFamily", "RnnModelConfig", "RnnTrainConfig"]


@gentool.hookimpl
def register_models(register: Callable[[type], None]) -> None:
    register(RnnFamily)
