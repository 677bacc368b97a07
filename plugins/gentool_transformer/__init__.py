"""The ``transformer`` family: two kinds of model built from scratch as Hugging Face models
on gentool's engine: a decoder-only language model (``lm``: ``lm.LanguageModel``, GPT-2) and
the 2017 encoder-decoder translator (``translator``: ``translator.Translator``, Marian).

``gentool train transformer --data x.txt`` trains the language model; ``--source/--target``
(or ``--data x.tsv``, or ``--set model.arch=encoder-decoder``) the translator: gentool's
router chooses by the kinds' ``selected_by`` and ``trains_on``. ``gentool attention``
(``attention``) draws either one's attention maps. The kind modules import no torch; their
torch sides are ``gpt2`` and ``marian``, imported when a model is trained or loaded.
"""

from collections.abc import Callable

import click

import gentool
from gentool_transformer.lm import LanguageModel, LMConfig, LMTrainConfig, MusicLM, MusicLMConfig
from gentool_transformer.translator import Translator, TranslatorConfig, TranslatorTrainConfig

__all__ = [
    "LMConfig",
    "LMTrainConfig",
    "LanguageModel",
    "MusicLM",
    "MusicLMConfig",
    "Translator",
    "TranslatorConfig",
    "TranslatorTrainConfig",
]


@gentool.hookimpl
def register_models(register: Callable[[type], None]) -> None:
    register(LanguageModel)  # first: the family's kind when neither data nor recipe choose
    register(Translator)
    register(MusicLM)  # music data (MIDI) routes here


@gentool.hookimpl
def register_commands(cli: click.Group) -> None:
    from gentool_transformer.attention import attention_command

    cli.add_command(attention_command)
