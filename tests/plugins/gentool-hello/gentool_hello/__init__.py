"""A small but real third-party family: characters drawn from their training frequencies.

It exercises both hooks exactly as an outside author would: a family through
``register_models`` and a command through ``register_commands``.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

import gentool
from gentool.data import read_text
from gentool.model import Model, TrainingContext
from gentool.tasks import GenerationRequest, TextGeneration


@dataclass
class HelloConfig:
    lowercase: bool = False


class HelloModel(Model, TextGeneration):
    family = "hello"
    description = "character unigram model (a test plugin)"
    config_class = HelloConfig

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    @classmethod
    def train(cls, config: HelloConfig, context: TrainingContext) -> HelloModel:
        text = "".join(read_text(p) for p in context.data)
        if config.lowercase:
            text = text.lower()
        return cls(dict(Counter(text.replace("\n", ""))))

    def save(self, directory: Path) -> dict[str, int]:
        (directory / "counts.json").write_text(json.dumps(self.counts, sort_keys=True))
        return {"characters": sum(self.counts.values())}

    @classmethod
    def load(cls, directory: Path, config: HelloConfig) -> HelloModel:
        return cls(json.loads((directory / "counts.json").read_text()))

    def generate(self, request: GenerationRequest) -> Iterator[str]:
        rng = random.Random(request.seed)
        chars, weights = zip(*sorted(self.counts.items()), strict=True)
        for _ in range(request.num_samples):
            yield request.prompt + "".join(rng.choices(chars, weights, k=request.max_tokens))


@gentool.hookimpl
def register_models(register):
    register(HelloModel)


@gentool.hookimpl
def register_commands(cli):
    @cli.command()
    @click.argument("name", default="world")
    def hello(name: str) -> None:
        """Say hello (a command added by the gentool-hello test plugin)."""
        click.echo(f"Hello, {name}!")
