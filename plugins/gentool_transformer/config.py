"""What both kinds of the ``transformer`` family share in their recipes: the network's
sizes and their checks (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass

from gentool.errors import RecipeError


@dataclass
class TransformerLayers:
    """The [model] keys of every transformer: the sizes of its layers."""

    d_model: int = 256
    num_layers: int = 4  # the language model's layers; a translator's on each side
    num_heads: int = 8
    d_ff: int = 1024  # feed-forward inner size
    context_length: int = 256  # positions: the longest text (LM) or sentence (translator)
    dropout: float = 0.1
    tie_embeddings: bool = True


@dataclass
class TransformerSizes(TransformerLayers):
    """The layers, and the vocabulary a text transformer learns (music has its own)."""

    vocab_size: int = 8000  # bpe: the vocabulary size to learn


def check_sizes(config: TransformerLayers) -> None:
    """Reject sizes that cannot build a transformer, naming the key and a fix."""
    for key in ("d_model", "num_layers", "num_heads", "d_ff", "context_length"):
        if getattr(config, key) < 1:
            raise RecipeError(f"model.{key} must be at least 1, got {getattr(config, key)}")
    if config.d_model % config.num_heads:
        divisors = [h for h in range(1, config.d_model + 1) if config.d_model % h == 0]
        raise RecipeError(
            f"model.d_model={config.d_model} must divide evenly by model.num_heads="
            f"{config.num_heads}; use num_heads in {', '.join(map(str, divisors[:8]))}, ..."
        )
    if not 0 <= config.dropout < 1:
        raise RecipeError(f"model.dropout must be in [0, 1), got {config.dropout}")
