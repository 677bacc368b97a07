"""``gentool attention RUN "a sentence"``: attention weights as a PNG heat map (pillow).

One panel per layer and head, the queries down its left side and the keys along its top;
a translator draws its encoder self-attention and its decoder cross-attention over the
translation it produces (greedy), a language model its causal self-attention. Each kind
computes its own maps (``ShowsAttention.attention_maps``); ``draw_attention`` is the
command's work, callable from Python. PyTorch's fused attention (SDPA) returns no weights,
so the model runs with eager attention here. torch is imported only when the command runs
(``gentool --help`` stays fast).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gentool.errors import DataError, GentoolError
from gentool.options import json_option, run_argument

if TYPE_CHECKING:
    from gentool.api import RunLike

GAP = 8  # pixels between panels
TITLE = 14  # a panel's title line
HEADER = 20  # a section's heading ("encoder self-attention")
LABEL_MAX = 90  # the widest token label, in pixels
FONT_SIZE = 10


@dataclass
class AttentionMap:
    """One kind of attention: ``weights[layer][head][query][key]`` with the token labels."""

    title: str
    weights: list[Any]  # per layer: a (heads, queries, keys) tensor
    queries: list[str]
    keys: list[str]

    @property
    def heads(self) -> int:
        return int(self.weights[0].shape[0])


class ShowsAttention(ABC):
    """A model whose attention ``gentool attention`` draws (both transformer kinds)."""

    @abstractmethod
    def attention_maps(self, text: str) -> list[AttentionMap]:
        """The attention of the model over ``text``: one map per kind of attention."""


# -- the command -------------------------------------------------------------------------------


@click.command("attention")
@run_argument
@click.argument("text")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("attention.png"),
    show_default=True,
    help="The PNG to write (never inside a run directory).",
)
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@json_option
def attention_command(run: str, text: str, output: Path, force: bool, as_json: bool) -> None:
    """Draw the attention weights of the transformer in RUN on TEXT, per layer and head.

    A translator shows its encoder self-attention and its decoder cross-attention (over
    the translation it produces); a language model its (causal) self-attention. An
    existing output file is replaced only with --force.

    \b
    Example:
      gentool attention runs/transformer "A dog runs in the snow." -o attention.png
    """
    from gentool import runs

    record = draw_attention(run, text, output, force)
    click.echo(runs.dumps_json(record) if as_json else record["file"])


def draw_attention(run: RunLike, text: str, output: Path, force: bool = False) -> dict[str, Any]:
    """Draw the attention of the model in ``run`` (a path or a loaded model) over ``text``
    into the PNG ``output`` (never inside a run; an existing file only with ``force``).
    Returns what ``--json`` prints: the file, its size, the maps and their tokens."""
    from gentool import api, runs
    from gentool.output.images import save_image

    output = Path(output)
    if output.suffix.lower() != ".png":
        raise DataError(f"'{output}' is not a .png file; name it e.g. '{output.stem}.png'")
    if not text.strip():
        raise DataError("TEXT is empty; give a sentence to draw the attention over")
    runs.check_output_file(output, "--output", force)  # before loading: fail at once
    maps = attention_maps(api.load(run), text.strip(), str(run))
    image = render(maps)
    with runs.output_files() as written:
        written.write(output, lambda path: save_image(image, path), "--output")
    return {
        "file": str(output),
        "width": image.width,
        "height": image.height,
        "layers": len(maps[0].weights),
        "heads": maps[0].heads,
        "maps": [m.title for m in maps],
        "tokens": {m.title: {"queries": m.queries, "keys": m.keys} for m in maps},
    }


# -- the weights -----------------------------------------------------------------------------


def attention_maps(model: Any, text: str, run: str = "RUN") -> list[AttentionMap]:
    """The attention maps of a loaded model (a transformer's: ``ShowsAttention``)."""
    if not isinstance(model, ShowsAttention):
        family = getattr(model, "family", "non-transformer")
        raise GentoolError(
            f"'{run}' holds a {family} model; gentool attention draws a transformer's "
            "attention: give a transformer run"
        )
    return model.attention_maps(text)


def _labels(tokenizer: Any, ids: list[int]) -> list[str]:
    """A readable label per token: its text without surrounding spaces, or its name."""
    special = set(tokenizer.all_special_ids)
    labels = []
    for i in ids:
        piece = "" if i in special else tokenizer.decode([i])
        if "\ufffd" in piece:  # part of a character's UTF-8 bytes: show the raw token
            piece = ""
        if piece and not piece.strip():  # a whitespace token (char models)
            piece = repr(piece)
        labels.append(piece.strip() or tokenizer.convert_ids_to_tokens(i) or "?")
    return labels


def translator_maps(network: Any, tokenizer: Any, text: str) -> list[AttentionMap]:
    """An encoder-decoder's encoder self-attention over ``text``, and its cross-attention
    while it translates ``text`` (greedy)."""
    import torch

    from gentool_transformer.marian import positions

    network.set_attn_implementation("eager")  # SDPA computes no weights to return
    limit = positions(network)
    ids = tokenizer(text)["input_ids"][:limit]
    source = torch.tensor([ids], device=network.device)
    produced = network.generate(
        input_ids=source,
        attention_mask=torch.ones_like(source),
        num_beams=1,
        do_sample=False,
        max_new_tokens=min(2 * len(ids) + 10, limit - 1),
    )  # (1, T + 1): the decoder start token, then the translation
    with torch.no_grad():
        out = network(
            input_ids=source,
            attention_mask=torch.ones_like(source),
            decoder_input_ids=produced[:, :-1],
            output_attentions=True,
        )
    src_labels = _labels(tokenizer, ids)
    # Row t of the cross-attention is where the decoder looked to produce token t + 1.
    tgt_labels = _labels(tokenizer, produced[0, 1:].tolist())
    return [
        AttentionMap(
            "encoder self-attention", _layers(out.encoder_attentions), src_labels, src_labels
        ),
        AttentionMap(
            "decoder cross-attention", _layers(out.cross_attentions), tgt_labels, src_labels
        ),
    ]


def decoder_maps(network: Any, tokenizer: Any, text: str) -> list[AttentionMap]:
    """A decoder's causal self-attention over ``text`` (after ``<|endoftext|>``)."""
    import torch

    network.set_attn_implementation("eager")  # SDPA computes no weights to return
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if tokenizer.bos_token_id is not None and ids[:1] != [tokenizer.bos_token_id]:
        ids.insert(0, tokenizer.bos_token_id)  # a document starts after <|endoftext|>
    limit = getattr(network.config, "max_position_embeddings", None)
    ids = ids[:limit] if limit else ids
    with torch.no_grad():
        out = network(input_ids=torch.tensor([ids], device=network.device), output_attentions=True)
    labels = _labels(tokenizer, ids)
    return [AttentionMap("causal self-attention", _layers(out.attentions), labels, labels)]


def _layers(attentions: Any) -> list[Any]:
    if not attentions or attentions[0] is None:
        raise GentoolError(
            "the model returned no attention weights; it may not support eager attention"
        )
    return [a[0].float().cpu() for a in attentions]  # per layer: (heads, queries, keys)


# -- drawing ---------------------------------------------------------------------------------


def _font() -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=FONT_SIZE)


def _cell(tokens: int) -> int:
    """Pixels per token: 14, smaller for long sentences (a panel stays under ~420 px)."""
    return max(4, min(14, 420 // max(1, tokens)))


def _label_width(font: Any, labels: list[str]) -> int:
    return min(LABEL_MAX, int(max(font.getlength(t) for t in labels)) + 4)


def panel_size(amap: AttentionMap, font: Any = None) -> tuple[int, int]:
    """(width, height) of one panel of ``amap``, labels and title included."""
    font = font or _font()
    cell = _cell(max(len(amap.queries), len(amap.keys)))
    left, top = _label_width(font, amap.queries), _label_width(font, amap.keys)
    return left + len(amap.keys) * cell, TITLE + top + len(amap.queries) * cell


def image_size(maps: list[AttentionMap]) -> tuple[int, int]:
    """(width, height) of the picture ``render`` draws: per map, a heading and a grid of
    layers (rows) by heads (columns)."""
    width, height = 0, GAP
    for amap in maps:
        w, h = panel_size(amap)
        width = max(width, GAP + amap.heads * (w + GAP))
        height += HEADER + len(amap.weights) * (h + GAP)
    return width, height


def render(maps: list[AttentionMap]) -> Any:
    """One RGB image: each map's heading, then its panels, a layer a row, a head a column."""
    from PIL import Image, ImageDraw

    font = _font()
    image = Image.new("RGB", image_size(maps), "white")
    draw = ImageDraw.Draw(image)
    y = GAP
    for amap in maps:
        draw.text((GAP, y + 3), amap.title, fill="black", font=font)
        y += HEADER
        w, h = panel_size(amap, font)
        for layer, weights in enumerate(amap.weights):
            for head in range(amap.heads):
                x = GAP + head * (w + GAP)
                _panel(image, draw, font, amap, weights[head], (x, y), f"L{layer + 1} H{head + 1}")
            y += h + GAP
    return image


def _panel(
    image: Any,
    draw: Any,
    font: Any,
    amap: AttentionMap,
    weights: Any,
    at: tuple[int, int],
    title: str,
) -> None:
    """One head's (queries, keys) weights as a heat map, the query tokens on its left and the
    key tokens (rotated) on top."""
    from PIL import Image

    x, y = at
    cell = _cell(max(len(amap.queries), len(amap.keys)))
    left, top = _label_width(font, amap.queries), _label_width(font, amap.keys)
    draw.text((x + left, y), title, fill="black", font=font)
    # (queries, keys) in [0, 1]; the square root keeps a spread-out row (1/keys) visible
    # without letting it look as strong as a sharp one. White to dark blue.
    level = weights.clamp(0, 1).sqrt()
    rgb = [255 - 225 * level, 255 - 170 * level, 255 - 60 * level]
    pixels = _stack_bytes(rgb)
    heat = Image.frombytes("RGB", (len(amap.keys), len(amap.queries)), pixels)
    heat = heat.resize((len(amap.keys) * cell, len(amap.queries) * cell), Image.Resampling.NEAREST)
    image.paste(heat, (x + left, y + TITLE + top))
    for row, label in enumerate(amap.queries):
        ty = y + TITLE + top + row * cell + (cell - FONT_SIZE) // 2
        draw.text(
            (x + left - 2, ty), _fit(font, label, left - 4), fill="black", font=font, anchor="ra"
        )
    for col, label in enumerate(amap.keys):
        tag = Image.new("RGB", (top, cell), "white")
        from PIL import ImageDraw

        ImageDraw.Draw(tag).text(
            (2, (cell - FONT_SIZE) // 2), _fit(font, label, top - 4), fill="black", font=font
        )
        image.paste(tag.rotate(90, expand=True), (x + left + col * cell, y + TITLE))


def _stack_bytes(channels: list[Any]) -> bytes:
    import torch

    stacked = torch.stack(channels, dim=-1).round().clamp(0, 255).to(torch.uint8)  # (Q, K, 3)
    return bytes(stacked.flatten().tolist())


def _fit(font: Any, text: str, width: int) -> str:
    """``text`` cut (with an ellipsis) to ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"
