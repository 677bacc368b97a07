"""Rendering a piece to a WAV file with FluidSynth and a General MIDI soundfont.

Both are system packages, found at run time: the ``fluidsynth`` program on the PATH, and a
soundfont named by ``GENTOOL_SOUNDFONT`` or at a usual place. Without them, one GentoolError
says how to install them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from gentool.errors import DataError, GentoolError
from gentool.runs import atomic_path

SOUNDFONT_ENV = "GENTOOL_SOUNDFONT"
# Where Debian/Ubuntu (fluid-soundfont-gm, musescore-general-soundfont), Fedora
# (fluid-soundfont-gm) and Homebrew put a General MIDI soundfont.
SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/sounds/sf3/MuseScore_General.sf3",
    "/opt/homebrew/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2",
)
INSTALL = (
    "install FluidSynth and a General MIDI soundfont (Debian/Ubuntu: "
    "sudo apt-get install fluidsynth fluid-soundfont-gm; macOS: brew install fluid-synth, "
    f"then name an .sf2 file in {SOUNDFONT_ENV})"
)
SAMPLE_RATE = 44100


def find_synth() -> tuple[str, Path]:
    """The fluidsynth program and the soundfont to use, or a GentoolError saying how to
    install them."""
    program = shutil.which("fluidsynth")
    if program is None:
        raise GentoolError(f"rendering audio needs the fluidsynth program; {INSTALL}")
    named = os.environ.get(SOUNDFONT_ENV)
    if named:
        if not Path(named).is_file():
            raise GentoolError(f"{SOUNDFONT_ENV}='{named}' is not a file; name a .sf2 soundfont")
        return program, Path(named)
    for candidate in SOUNDFONTS:
        if Path(candidate).is_file():
            return program, Path(candidate)
    raise GentoolError(f"rendering audio needs a General MIDI soundfont; {INSTALL}")


def render_wav(score: Any, path: Path, sample_rate: int = SAMPLE_RATE, gain: float = 0.5) -> None:
    """Render ``score`` (a ``symusic.Score``) to a 16-bit stereo WAV at ``path``, atomically."""
    from gentool.data.music import write_midi

    path = Path(path)
    if path.suffix.lower() != ".wav":
        raise DataError(f"'{path}' has no .wav suffix; name it e.g. '{path.stem}.wav'")
    program, soundfont = find_synth()  # before any work: a missing synth fails fast
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, atomic_path(path) as out:
        midi = Path(tmp) / "piece.mid"
        write_midi(score, midi)
        command = [
            program, "-n", "-i", "-q",  # no MIDI input, no shell, quiet
            "-g", str(gain), "-r", str(sample_rate), "-T", "wav", "-O", "s16",
            "-F", str(out), str(soundfont), str(midi),
        ]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise GentoolError(f"fluidsynth failed to render '{path}' ({err})") from err
        if done.returncode != 0 or out.stat().st_size <= 44:  # 44 bytes: a bare WAV header
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise GentoolError(
                f"fluidsynth failed to render '{path}' (exit {done.returncode}: {tail[0]})"
            )
