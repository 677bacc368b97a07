"""The engine's ``[train]`` table, its checks and the learning-rate schedule (torch-free,
so that kinds can declare their configs without importing torch)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from gentool.errors import RecipeError


@dataclass
class TrainConfig:
    """The recipe's [train] table for every neural kind (kinds may add fields)."""

    max_steps: int = 1000
    batch_size: int = 32  # sequences (or samples) per optimizer step, over all processes
    grad_accum: int = 1  # micro-batches per optimizer step (each batch_size / grad_accum)
    lr: float = 3e-3
    min_lr: float = 3e-4  # the end of the cosine decay
    warmup_steps: int = 100
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # max gradient norm; 0 disables clipping
    # auto: bf16 where this machine runs it fast (see devices.resolve_precision), else float32
    mixed_precision: Literal["no", "auto", "bf16", "fp16"] = "no"
    log_every: int = 10
    eval_every: int = 250  # steps between evaluations on the validation split; 0: only at the end
    eval_batches: int = 20  # batches per evaluation during training; 0: the whole split
    checkpoint_every: int = 500  # steps between checkpoints; 0: only when interrupted
    keep_checkpoints: int = 2
    val_fraction: float = 0.1  # held out from the end of the data when no --val is given


@dataclass
class StreamTrainConfig(TrainConfig):
    """[train] of a language model read as one token stream (``gentool.neural.streams``):
    the engine's settings plus how many tokens a training row holds."""

    seq_len: int = 128  # tokens per training row (window): how far back gradients flow

    def __post_init__(self) -> None:
        if self.seq_len < 1:
            raise ValueError(f"train.seq_len must be at least 1, got {self.seq_len}")


def check_config(config: TrainConfig, world: int) -> None:
    """Reject settings that cannot train, naming the key and a valid value."""
    positive = ("max_steps", "batch_size", "grad_accum", "log_every", "keep_checkpoints")
    for key in positive:
        if getattr(config, key) < 1:
            raise RecipeError(f"train.{key} must be at least 1, got {getattr(config, key)}")
    if config.lr <= 0 or config.min_lr < 0:
        raise RecipeError("train.lr must be positive and train.min_lr not negative")
    if not 0 <= config.val_fraction < 1:
        raise RecipeError(f"train.val_fraction must be in [0, 1), got {config.val_fraction}")
    per_step = world * config.grad_accum
    if config.batch_size % per_step:
        raise RecipeError(
            f"train.batch_size={config.batch_size} must divide evenly over {world} process(es) x "
            f"{config.grad_accum} accumulation step(s); use a multiple of {per_step}"
        )


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``min_lr`` at ``max_steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, config.max_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return config.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (config.lr - config.min_lr)
