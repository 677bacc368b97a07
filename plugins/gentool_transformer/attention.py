"""``gentool attention RUN "a sentence"``: attention weights as a PNG heat map (pillow)."""

from __future__ import annotations

from pathlib import Path

import click

from gentool.options import json_option, run_argument


@click.command("attention")
@run_argument
@click.argument("text")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("attention.png"),
    show_default=True,
    help="The PNG to write.",
)
@json_option
def attention_command(run: str, text: str, output: Path, as_json: bool) -> None:
    """Draw the attention weights of the transformer in RUN on TEXT, per layer and head.

    A translator shows its encoder self-attention and its decoder cross-attention (over
    the translation it produces); a language model its (causal) self-attention.

    \b
    Example:
      gentool attention runs/transformer "A dog runs in the snow." -o attention.png
    """
    raise NotImplementedError  # written with the translator (see translation.py)
