"""The ``transformer`` family: a decoder-only language model, and the 2017 encoder-decoder
for translation, both built from scratch as Hugging Face models on gentool's engine.

``gentool_transformer.lm`` holds the language model, ``gentool_transformer.translation``
the translator; ``gentool attention`` (``gentool_transformer.attention``) draws attention
maps. torch and transformers are imported only when a model is trained or loaded.
"""

from collections.abc import Callable

import click

import gentool
from gentool_transformer.family import (
    TransformerFamily,
    TransformerModelConfig,
    TransformerTrainConfig,
)

__all__ = ["TransformerFamily", "TransformerModelConfig", "TransformerTrainConfig"]


@gentool.hookimpl
def register_models(register: Callable[[type], None]) -> None:
    register(TransformerFamily)


@gentool.hookimpl
def register_commands(cli: click.Group) -> None:
    from gentool_transformer.attention import attention_command

    cli.add_command(attention_command)
