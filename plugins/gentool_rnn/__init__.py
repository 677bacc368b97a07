"""The ``rnn`` family: LSTM/GRU/RNN language models on gentool's accelerate engine.

Registered through the ``gentool`` entry-point group like any third-party plugin. torch and
transformers are imported only when a model is trained or loaded (``family`` is the kind,
``task`` its training task, ``modeling`` the network); ``import gentool_rnn.modeling``
registers the model with transformers' Auto classes.
"""

from collections.abc import Callable

import gentool
from gentool_rnn.family import RnnModel, RnnModelConfig, RnnMusic, RnnMusicConfig, RnnTrainConfig

__all__ = ["RnnModel", "RnnModelConfig", "RnnMusic", "RnnMusicConfig", "RnnTrainConfig"]


@gentool.hookimpl
def register_models(register: Callable[[type], None]) -> None:
    register(RnnModel)  # first: text, and no data (the embedded sample)
    register(RnnMusic)  # music data (MIDI) routes here
