"""A piano roll of a piece as a PNG: pitch upwards, time to the right, one colour per track,
bar lines and numbers, octave lines labelled C2, C3 ... (C4 is middle C). pillow only."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from gentool.music.stats import notes_of
from gentool.output.images import save_image

# Margins (pixels): pitch labels on the left; the legend and the bar numbers above.
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 30, 8
# Track colours: distinct at a glance, dark enough on white, told apart without red/green.
PALETTE = (
    (31, 119, 180),  # blue
    (230, 120, 20),  # orange
    (44, 160, 44),  # green
    (200, 40, 60),  # red
    (140, 90, 190),  # purple
    (140, 86, 75),  # brown
    (220, 100, 180),  # pink
    (100, 100, 100),  # grey
    (170, 170, 20),  # olive
    (20, 170, 190),  # cyan
)
BLACK_KEYS = {1, 3, 6, 8, 10}


def pianoroll_layout(
    score: Any, pixels_per_beat: float = 16, pixels_per_pitch: int = 6, max_width: int = 2400
) -> tuple[int, int, float, int, int, float]:
    """(width, height, pixels per quarter note, lowest pitch, highest pitch, end in quarter
    notes) of the piano roll of ``score``: two pitches of room above and below its notes, time
    to the end of the last bar that sounds, squeezed to at most ``max_width`` pixels."""
    notes = notes_of(score)
    if len(notes) == 0:
        low, high, end = 58, 70, 4.0
    else:
        low, high = int(notes.pitch.min()) - 2, int(notes.pitch.max()) + 2
        last = float(notes.end.max())
        later = notes.bars[notes.bars >= last - 1e-9]
        length = float(np.diff(notes.bars[-2:])[0]) if len(notes.bars) > 1 else 4.0
        end = float(later[0]) if len(later) else float(notes.bars[-1]) + length
        end = max(end, last)
    ppb = float(pixels_per_beat)
    if LEFT + RIGHT + math.ceil(end * ppb) > max_width:
        ppb = (max_width - LEFT - RIGHT) / end
    width = LEFT + RIGHT + math.ceil(end * ppb)
    height = TOP + BOTTOM + (high - low + 1) * pixels_per_pitch
    return width, height, ppb, low, high, end


def draw_pianoroll(
    score: Any,
    title: str = "",
    pixels_per_beat: float = 16,
    pixels_per_pitch: int = 6,
    max_width: int = 2400,
) -> Any:
    """The piano roll of ``score`` as a PIL image (RGB); see ``pianoroll_layout`` for its size."""
    from PIL import Image, ImageDraw, ImageFont

    width, height, ppb, low, high, end = pianoroll_layout(
        score, pixels_per_beat, pixels_per_pitch, max_width
    )
    ppp = pixels_per_pitch
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    right, bottom = width - RIGHT, height - BOTTOM

    def y_of(pitch: int) -> int:  # top edge of the pitch's row
        return TOP + (high - pitch) * ppp

    # Rows: black keys shaded, a line under every C, labelled with its octave.
    for pitch in range(low, high + 1):
        y = y_of(pitch)
        if pitch % 12 in BLACK_KEYS:
            draw.rectangle((LEFT, y, right - 1, y + ppp - 1), fill=(242, 242, 246))
        if pitch % 12 == 0:
            draw.line((LEFT, y + ppp - 1, right - 1, y + ppp - 1), fill=(190, 190, 200))
            draw.text(
                (4, y + ppp / 2), f"C{pitch // 12 - 1}", fill=(60, 60, 60), font=font, anchor="lm"
            )

    # Beats (when there is room) and bars, numbered.
    notes = notes_of(score)
    if ppb >= 8:
        for q in range(int(end) + 1):
            x = LEFT + round(q * ppb)
            draw.line((x, TOP, x, bottom - 1), fill=(232, 232, 236))
    bars = notes.bars[notes.bars < end - 1e-9] if len(notes) else np.array([0.0])
    bar_pixels = np.diff(np.append(bars, end)).min() * ppb if len(bars) else 0
    step = max(1, math.ceil(24 / bar_pixels)) if bar_pixels else 1
    for number, start in enumerate(bars, 1):
        x = LEFT + round(float(start) * ppb)
        draw.line((x, TOP, x, bottom - 1), fill=(150, 150, 160))
        if (number - 1) % step == 0:
            draw.text((x + 2, TOP - 2), str(number), fill=(90, 90, 90), font=font, anchor="lb")
    draw.line((right - 1, TOP, right - 1, bottom - 1), fill=(150, 150, 160))

    # Notes, one colour per track, drawn track by track.
    for track in np.unique(notes.track):
        colour = PALETTE[list(np.unique(notes.track)).index(track) % len(PALETTE)]
        edge = tuple(c * 6 // 10 for c in colour)
        mask = notes.track == track
        for s, e, p in zip(notes.start[mask], notes.end[mask], notes.pitch[mask], strict=True):
            x0 = LEFT + round(float(s) * ppb)
            x1 = max(x0 + 2, LEFT + round(float(e) * ppb) - 1)
            y = y_of(int(p))
            draw.rectangle((x0, y, x1, y + ppp - 1), fill=colour, outline=edge)

    # Title and legend along the top.
    x = LEFT
    if title:
        draw.text((x, 2), title, fill=(0, 0, 0), font=font, anchor="lt")
        x += int(draw.textlength(title, font=font)) + 12
    for k, track in enumerate(np.unique(notes.track)):
        name = score.tracks[int(track)].name or f"track {int(track) + 1}"
        colour = PALETTE[k % len(PALETTE)]
        draw.rectangle((x, 3, x + 8, 11), fill=colour)
        draw.text((x + 11, 2), name, fill=(40, 40, 40), font=font, anchor="lt")
        x += 11 + int(draw.textlength(name, font=font)) + 10
    draw.rectangle((LEFT, TOP, right - 1, bottom - 1), outline=(120, 120, 130))
    return image


def save_pianoroll(score: Any, path: Path, title: str = "", **layout: Any) -> None:
    """Draw ``score`` (see ``draw_pianoroll``) and write it to ``path`` atomically."""
    save_image(draw_pianoroll(score, title, **layout), Path(path))
