"""Symbolic music as data: reading MIDI, tokenizing it, and writing it back. No torch.

**Reading.** A source is a folder of ``.mid``/``.midi`` files (recursive), one MIDI file, or a
file list (a ``.txt`` naming one MIDI file per line, as bach_chorales' ``train.txt``). Unreadable
files and files without notes are skipped and counted (``MusicSet.skipped``) as corrupt images
are in gentool.data.images; a source with no usable piece is a DataError naming it.
``fingerprint_music`` identifies a source by every file it reads.

**Tokenizing.** One scheme for every family, so the n-gram, rnn and transformer score the same
tokens and their perplexities compare: miditok's REMI (bars, positions in the bar, pitches,
velocities, durations, tempo, time signature; with ``programs`` the REMI+ Program token before
each note, so instruments stay apart). ``MusicTokenizer`` gives one id stream per piece, the
vocabulary as strings (for ngram), prompts of the first N bars, and ``decode``: any id stream
becomes a valid piece, its faults repaired and counted (``Decoded.problems``), or ``usable`` is
False and the caller samples again. The tokenizer is saved as JSON and reloaded from it.

MusicXML is not read: symusic reads MIDI (and ABC) only, and music21, the maintained MusicXML
reader, is a large dependency that takes about a second per chorale.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gentool.data.files import files_under
from gentool.errors import DataError, GentoolError, RunError
from gentool.runs import atomic_path, fingerprint, sha256_file, write_json

MUSIC_SUFFIXES = (".mid", ".midi")
TOKENIZER_FILE = "music_tokenizer.json"  # in a run directory, beside the model
WRITE_TPQ = 480  # ticks per quarter of the files we write (the tokenizer's grid is coarser)

INSTALL_HINT = "install the music extra: pip install 'gentool[music]'"


def _symusic() -> Any:
    try:
        import symusic
    except ImportError as err:
        raise GentoolError(f"reading MIDI needs symusic; {INSTALL_HINT}") from err
    return symusic


def _miditok() -> Any:
    try:
        import miditok
    except ImportError as err:
        raise GentoolError(f"tokenizing music needs miditok; {INSTALL_HINT}") from err
    return miditok


# -- reading --------------------------------------------------------------------------------


@dataclass
class Piece:
    """One piece of music: its name (path below the source) and its ``symusic.Score``."""

    name: str
    path: Path
    score: Any


@dataclass
class MusicSet:
    """The readable pieces of the sources, in a stable order, and what was skipped."""

    pieces: list[Piece]
    skipped: dict[str, str] = field(default_factory=dict)  # file -> why it was skipped

    def __len__(self) -> int:
        return len(self.pieces)

    @property
    def scores(self) -> list[Any]:
        return [p.score for p in self.pieces]

    def report(self) -> str | None:
        """One line for the log when files were skipped, else None."""
        if not self.skipped:
            return None
        first, why = next(iter(self.skipped.items()))
        return f"skipped {len(self.skipped)} unusable MIDI file(s); first: {why}"


def music_files(folder: Path) -> list[Path]:
    """MIDI files under ``folder`` (recursive, by suffix), in a stable order; hidden skipped."""
    return files_under(folder, MUSIC_SUFFIXES)


def is_music_source(path: Path) -> bool:
    """Whether ``path`` is music data: a MIDI file, a folder holding one (at any depth), or a
    ``.txt`` list of MIDI files. Cheap: a folder is walked only until its first MIDI file."""
    path = Path(path)
    if path.is_file():
        if path.name.lower().endswith(MUSIC_SUFFIXES):
            return True
        return path.suffix.lower() == ".txt" and _is_file_list(path)
    if path.is_dir():
        for _root, dirs, files in os.walk(path):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            if any(f.lower().endswith(MUSIC_SUFFIXES) for f in files if not f.startswith(".")):
                return True
    return False


def _is_file_list(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as f:
            head = [line.strip() for _, line in zip(range(50), f, strict=False)]
    except (OSError, UnicodeDecodeError):
        return False
    names = [line for line in head if line and not line.startswith("#")]
    return bool(names) and all(n.lower().endswith(MUSIC_SUFFIXES) for n in names)


def listed_files(listing: Path) -> list[Path]:
    """The MIDI files a list names, one per line (blank lines and ``#`` comments ignored).

    A name is a path relative to the list's folder, or to a folder below it: bach_chorales'
    ``train.txt`` names ``bwv10.7.mid``, which lies in ``midi/`` beside it. A name that matches
    no file, or several, is a DataError.
    """
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read the file list '{listing}' ({err})") from err
    names = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not names:
        raise DataError(f"the file list '{listing}' names no MIDI files; one name per line")
    base = listing.parent
    below: dict[str, list[Path]] | None = None  # file name -> files below base, built once
    found = []
    for name in names:
        direct = base / name
        if direct.is_file():
            found.append(direct)
            continue
        if below is None:
            below = {}
            for file in music_files(base):
                below.setdefault(file.name, []).append(file)
        tail = Path(name).as_posix()
        matches = [f for f in below.get(Path(name).name, []) if f.as_posix().endswith("/" + tail)]
        if len(matches) != 1:
            how = "matches no file" if not matches else f"matches {len(matches)} files"
            raise DataError(
                f"'{name}' in the file list '{listing}' {how} below '{base}'; "
                "name each file by its path relative to the list's folder"
            )
        found.append(matches[0])
    return found


def source_files(path: Path) -> list[Path]:
    """The MIDI files a source stands for: a folder's, a list's, or the file itself."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"music data '{path}' does not exist; check the path")
    if path.is_dir():
        files = music_files(path)
        if not files:
            raise DataError(f"'{path}' holds no MIDI files (.mid, .midi); check the folder")
        return files
    if path.name.lower().endswith(MUSIC_SUFFIXES):
        return [path]
    if path.suffix.lower() == ".txt":
        return listed_files(path)
    raise DataError(
        f"'{path}' is not music data gentool reads; give a folder of MIDI files, a .mid file, "
        "or a .txt list of MIDI file names"
    )


def read_midi(path: Path) -> Any:
    """One MIDI file as a ``symusic.Score`` (ticks) with at least one note, or a DataError
    naming the file."""
    symusic = _symusic()
    try:
        score = symusic.Score(str(path))
    except (RuntimeError, ValueError, OSError, IndexError) as err:
        raise DataError(f"'{path}' is not a readable MIDI file ({err}); fix or remove it") from err
    if score.note_num() == 0:
        raise DataError(f"'{path}' has no notes; give a MIDI file with notes, or remove it")
    return score


def read_music(paths: Sequence[str | Path]) -> MusicSet:
    """Every piece of every source in ``paths``; unusable files skipped and counted.

    A single MIDI file that cannot be used is an error; in a folder or a list it is skipped,
    and a source where every file is unusable is an error naming the first.
    """
    if not paths:
        raise DataError("no music data given; pass --data FOLDER (of MIDI files)")
    pieces: list[Piece] = []
    skipped: dict[str, str] = {}
    for source in map(Path, paths):
        files = source_files(source)
        if len(files) == 1 and files[0] == source:
            pieces.append(Piece(source.name, source, read_midi(source)))
            continue
        base = source if source.is_dir() else source.parent
        before = len(pieces)
        for file in files:
            try:
                score = read_midi(file)
            except DataError as err:
                skipped[str(file)] = str(err)
                continue
            pieces.append(Piece(file.relative_to(base).as_posix(), file, score))
        if len(pieces) == before:
            raise DataError(
                f"'{source}' has {len(files)} MIDI files and none is usable "
                f"(first: {skipped[str(files[0])]})"
            )
    return MusicSet(pieces, skipped)


def fingerprint_music(path: Path) -> dict[str, Any]:
    """Identify a music source by every file it reads. A folder or a single file as
    gentool.runs.fingerprint does; a file list by the list and every file it names (their
    names relative to the list's folder and their sha256)."""
    path = Path(path)
    if path.is_dir() or path.name.lower().endswith(MUSIC_SUFFIXES):
        return fingerprint(path)
    files = [path, *listed_files(path)]
    digest, size = hashlib.sha256(), 0
    for file in files:
        name = file.relative_to(path.parent).as_posix()
        digest.update(f"{name}\0{sha256_file(file)}\n".encode())
        size += file.stat().st_size
    return {"path": str(path), "bytes": size, "files": len(files), "sha256": digest.hexdigest()}


# -- writing --------------------------------------------------------------------------------


def write_midi(score: Any, path: Path) -> None:
    """Write ``score`` to ``path`` (``.mid``/``.midi``) atomically; never an empty piece."""
    path = Path(path)
    if not path.name.lower().endswith(MUSIC_SUFFIXES):
        raise DataError(f"'{path}' has no MIDI suffix; name it e.g. '{path.stem}.mid'")
    if score.note_num() == 0:
        raise DataError(f"the piece for '{path}' has no notes; nothing was written")
    if score.tpq < WRITE_TPQ:  # a finer grid than the tokenizer's: other programs expect it
        score = score.resample(WRITE_TPQ)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        score.dump_midi(str(tmp))


# -- tokenizing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MusicTokenizerConfig:
    """The choices of the REMI tokenization; saved with the tokenizer.

    ``programs``: REMI+ — a Program token before every note, so instruments stay apart (tracks
    that share a program become one track, as miditok merges them). Without it, all tracks are
    merged into one piano part and a note is three tokens instead of four.
    """

    programs: bool = True
    positions_per_beat: int = 8  # grid of positions and durations up to 4 beats (32nd notes)
    velocities: int = 32  # velocity bins
    tempos: int = 22  # tempo bins: 40, 50, ... 250 quarter notes per minute (120 is one)
    pitch_range: tuple[int, int] = (21, 108)  # a piano's keys


# Time signatures with a token: every common metre, and all of the chorales' (4/4, 3/4, 3/2, 12/8).
_TIME_SIGNATURES = {8: [3, 6, 9, 12], 4: [2, 3, 4, 5, 6], 2: [2, 3, 4]}
SPECIALS = ("PAD", "BOS", "EOS")


def _miditok_config(config: MusicTokenizerConfig) -> Any:
    miditok = _miditok()
    res = config.positions_per_beat
    low, high = config.pitch_range
    if not (0 <= low <= high <= 127) or res < 1 or config.velocities < 1 or config.tempos < 1:
        raise DataError(f"invalid music tokenizer settings: {config}")
    return miditok.TokenizerConfig(
        pitch_range=(low, high + 1),  # miditok's range excludes its end
        beat_res={(0, 4): res, (4, 12): max(1, res // 2)},
        num_velocities=config.velocities,
        special_tokens=list(SPECIALS),
        # Two voices on one pitch at once (a chorale's unison) would be one track's note-on
        # before its note-off once tracks of a program merge: keep one of them.
        remove_duplicated_notes=True,
        use_velocities=True,
        use_tempos=True,
        num_tempos=config.tempos,
        tempo_range=(40, 250),
        use_time_signatures=True,
        time_signature_range=_TIME_SIGNATURES,
        use_programs=config.programs,
        one_token_stream_for_programs=True,
    )


@dataclass
class Decoded:
    """A token stream as music: the repaired piece, the ids it came from after repair,
    and what was wrong (fault -> count). ``usable`` is False when no note survived: sample
    again rather than write it."""

    score: Any
    ids: list[int]
    notes: int
    bars: int
    problems: dict[str, int]

    @property
    def usable(self) -> bool:
        return self.notes > 0


class MusicTokenizer:
    """REMI tokens for a piece, and back. Build with ``MusicTokenizer(config)`` or
    ``MusicTokenizer.load(run_dir)``; ``save(run_dir)`` writes ``music_tokenizer.json``."""

    def __init__(self, config: MusicTokenizerConfig | None = None, *, backend: Any = None):
        if backend is None:
            config = config or MusicTokenizerConfig()
            backend = _miditok().REMI(_miditok_config(config))
        self.miditok = backend  # the miditok REMI tokenizer
        self.config = config or _config_from(backend)
        vocab = backend.vocab  # token -> id
        self.vocab: list[str] = [""] * len(vocab)  # id -> token
        for token, i in vocab.items():
            self.vocab[i] = token
        self.ids_of = dict(vocab)
        self.pad_id, self.bos_id, self.eos_id = (vocab[f"{s}_None"] for s in SPECIALS)
        self.bar_id = vocab["Bar_None"]
        self._positions_per_beat = max(backend.config.beat_res.values())

    def __len__(self) -> int:
        return len(self.vocab)

    # saving ------------------------------------------------------------------------------

    def save(self, run_dir: Path) -> Path:
        """Write the tokenizer as JSON into ``run_dir`` (atomically); returns the file."""
        path = Path(run_dir) / TOKENIZER_FILE
        write_json(path, {**self.miditok.to_dict(), "gentool": asdict(self.config)})
        return path

    @classmethod
    def load(cls, path: Path) -> MusicTokenizer:
        """The tokenizer saved in a run directory (or that JSON file itself)."""
        import json

        path = Path(path)
        file = path / TOKENIZER_FILE if path.is_dir() else path
        try:
            saved = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise RunError(f"'{path}' has no music tokenizer ({TOKENIZER_FILE})") from err
        except (OSError, ValueError) as err:
            raise RunError(f"the music tokenizer '{file}' is unreadable ({err})") from err
        if saved.get("tokenization") != "REMI":
            raise RunError(f"'{file}' is not a REMI tokenizer; it cannot be loaded")
        tokenizer = _miditok().REMI(params=str(file))
        settings = saved.get("gentool", {})
        settings["pitch_range"] = tuple(settings.get("pitch_range", (21, 108)))
        return cls(MusicTokenizerConfig(**settings), backend=tokenizer)

    # encoding ----------------------------------------------------------------------------

    def encode(self, score: Any) -> list[int]:
        """One piece as one id stream (no BOS/EOS: the family adds what its model needs)."""
        if not self.config.programs:
            score = _one_track(score)
        seq = self.miditok.encode(score)
        if isinstance(seq, list):  # without programs miditok gives one sequence per track
            seq = seq[0] if seq else None
        return list(seq.ids) if seq is not None else []

    def tokens(self, ids: Sequence[int]) -> list[str]:
        """Ids as token strings (``Bar_None``, ``Pitch_60``, ...): no spaces, for ngram."""
        return [self.vocab[i] for i in ids]

    def ids(self, tokens: Sequence[str]) -> list[int]:
        """Token strings back to ids; an unknown token is a DataError naming it."""
        try:
            return [self.ids_of[t] for t in tokens]
        except KeyError as err:
            raise DataError(f"'{err.args[0]}' is not a token of this music tokenizer") from None

    def grammar(self) -> Any:
        """Which token may follow which, as REMI's grammar says by token type: a (V, V)
        numpy bool array, ``[previous, next]``. ``Bar TimeSig (Position [Tempo] ([Program]
        Pitch Velocity Duration)+)*``; a piece starts (after BOS) with a Bar and may end
        (BOS, EOS) after a note. Sampling under it gives streams that ``repair`` rarely needs
        to touch (the values, positions going back in time, are still checked there)."""
        import numpy as np

        note = ["Program"] if self.config.programs else ["Pitch", "PitchDrum"]
        follows = {
            "BOS": ["Bar"],
            "Bar": ["TimeSig"],
            "TimeSig": ["Position"],
            "Position": ["Tempo", *note],
            "Tempo": note,
            "Program": ["Pitch", "PitchDrum"],
            "Pitch": ["Velocity"],
            "PitchDrum": ["Velocity"],
            "Velocity": ["Duration"],
            "Duration": [*note, "Position", "Bar", "BOS", "EOS"],
        }
        kinds = [token.split("_", 1)[0] for token in self.vocab]
        allowed = np.zeros((len(kinds), len(kinds)), dtype=bool)
        for i, kind in enumerate(kinds):
            nexts = set(follows.get(kind, ()))
            allowed[i] = [k in nexts for k in kinds]
        return allowed

    def count_bars(self, ids: Sequence[int]) -> int:
        return sum(1 for i in ids if i == self.bar_id)

    def first_bars(self, ids: Sequence[int], bars: int) -> list[int]:
        """The stream up to the start of bar ``bars + 1``: a prompt of ``bars`` bars."""
        seen = 0
        for k, i in enumerate(ids):
            if i == self.bar_id:
                seen += 1
                if seen > bars:
                    return list(ids[:k])
        return list(ids)

    def prompt(self, score: Any, bars: int) -> list[int]:
        """The first ``bars`` bars of a piece as tokens, for a model to continue."""
        if bars < 1:
            raise DataError(f"a prompt needs at least one bar, not {bars}")
        return self.first_bars(self.encode(score), bars)

    # decoding ----------------------------------------------------------------------------

    def repair(self, ids: Sequence[int]) -> tuple[list[int], dict[str, int]]:
        """A token stream made grammatical REMI, and its faults (fault -> count).

        Kept: ``Bar TimeSig (Position [Tempo] ([Program] Pitch Velocity Duration)+)*`` with
        positions rising inside the bar's length. Dropped: what follows EOS, special tokens,
        a note cut short (a Pitch without its Velocity and Duration ...), a note before any
        Position, a Position that goes back in time or past the bar's end (with its notes),
        a drum pitch on a pitched program and the reverse, the same note twice at one
        position, empty bars before the first note and after the last. A Bar without its
        time signature gets the current one.
        """
        problems: Counter[str] = Counter()
        vocab, n = self.vocab, len(self.vocab)
        toks: list[str] = []
        for k, i in enumerate(ids):
            if not 0 <= int(i) < n:
                problems["unknown id"] += 1
                continue
            token = vocab[int(i)]
            if token == "EOS_None":
                break
            if token in ("PAD_None", "BOS_None", "MASK_None"):
                if not (token == "BOS_None" and k == 0):
                    problems["special token inside"] += 1
                continue
            toks.append(token)

        programs = self.config.programs
        note_len = 4 if programs else 3
        time_sig = "TimeSig_4/4"
        for token in toks:  # the first time signature, as miditok's decoder takes it
            if token.startswith("TimeSig_"):
                time_sig = token
                break
        bars: list[list[str]] = []  # each: Bar, TimeSig, then groups
        bar_notes: list[int] = []
        position, bar_length, position_ok, at_position = -1, 0, False, False
        seen: set[tuple[str, str]] = set()

        def new_bar(sig: str) -> None:
            nonlocal position, bar_length, position_ok, at_position, seen
            bars.append(["Bar_None", sig])
            bar_notes.append(0)
            position, position_ok, at_position, seen = -1, False, False, set()
            # miditok's beat is the time signature's denominator: num beats of equal positions
            bar_length = int(sig.split("_", 1)[1].split("/")[0]) * self._positions_per_beat

        k, broken_until = 0, -1
        while k < len(toks):
            token = toks[k]
            kind = token.split("_", 1)[0]
            if kind == "Bar":
                if k + 1 < len(toks) and toks[k + 1].startswith("TimeSig_"):
                    time_sig = toks[k + 1]
                    k += 1
                else:
                    problems["bar without time signature"] += 1
                new_bar(time_sig)
            elif kind == "TimeSig":
                problems["misplaced time signature"] += 1
            elif kind == "Position":
                if not bars:
                    problems["position before the first bar"] += 1
                    new_bar(time_sig)
                value = int(token.split("_", 1)[1])
                if value <= position:
                    problems["time going backwards"] += 1
                    position_ok = False
                elif value >= bar_length:
                    problems["position past the bar's end"] += 1
                    position_ok = False
                else:
                    position, position_ok, at_position, seen = value, True, True, set()
                    bars[-1].append(token)
            elif kind == "Tempo":
                if position_ok and at_position:
                    bars[-1].append(token)
                else:
                    problems["misplaced tempo"] += 1
            elif kind in ("Program", "Pitch", "PitchDrum"):
                note = toks[k : k + note_len]
                kinds = [t.split("_", 1)[0] for t in note]
                pitch_kind = kinds[1] if programs and len(kinds) > 1 else kinds[0]
                shape = ["Program"] if programs else []
                shape += [pitch_kind, "Velocity", "Duration"]
                if kinds != shape or pitch_kind not in ("Pitch", "PitchDrum"):
                    if broken_until != k:  # count a broken note once, not each of its tokens
                        problems["incomplete note"] += 1
                    k += 1  # drop one token: a whole note may start at the next
                    broken_until = k
                    continue
                k += note_len
                drum = programs and note[0] == "Program_-1"
                if (pitch_kind == "PitchDrum") != drum:
                    problems["drum pitch on a pitched instrument (or the reverse)"] += 1
                elif not position_ok:
                    problems["note without a valid position"] += 1
                elif (note[0], note[-3]) in seen:
                    problems["the same note twice"] += 1
                else:
                    seen.add((note[0], note[-3]))
                    bars[-1].extend(note)
                    bar_notes[-1] += 1
                    at_position = False
                continue
            else:  # a Velocity or Duration on its own
                if broken_until != k:
                    problems["incomplete note"] += 1
                broken_until = k + 1
            k += 1

        with_notes = [b for b, c in enumerate(bar_notes) if c]
        if with_notes:
            lead, tail = with_notes[0], len(bars) - 1 - with_notes[-1]
            if lead or tail:
                problems["empty bars trimmed"] += lead + tail
            bars = bars[with_notes[0] : with_notes[-1] + 1]
        else:
            bars = []
        out: list[str] = []
        for bar in bars:
            for j, token in enumerate(bar):
                # A Position with neither a tempo nor a note after it says nothing: drop it.
                if token.startswith("Position_") and not (
                    j + 1 < len(bar) and not bar[j + 1].startswith("Position_")
                ):
                    continue
                out.append(token)
        return self.ids(out), dict(problems)

    def decode(self, ids: Sequence[int]) -> Decoded:
        """Any id stream as a piece: repaired (see ``repair``), then decoded, then notes of one
        pitch on one track that overlap are cut where the next starts (in a MIDI file the
        second note-on would come before the first note's note-off)."""
        clean, problems = self.repair(ids)
        bars = self.count_bars(clean)
        if not clean:
            return Decoded(_symusic().Score(WRITE_TPQ), [], 0, 0, problems)
        # Without programs miditok decodes a list of sequences, one per track.
        score = self.miditok.decode(clean if self.config.programs else [clean])
        overlaps = _cut_overlaps(score)
        if overlaps:
            problems["overlapping notes cut"] = overlaps
        return Decoded(score, clean, score.note_num(), bars, problems)


def _config_from(tokenizer: Any) -> MusicTokenizerConfig:
    mt = tokenizer.config
    low, high = mt.pitch_range
    return MusicTokenizerConfig(
        programs=bool(mt.use_programs),
        positions_per_beat=max(mt.beat_res.values()),
        velocities=mt.num_velocities,
        tempos=mt.num_tempos,
        pitch_range=(low, high - 1),
    )


def _one_track(score: Any) -> Any:
    """All pitched notes of a score in one piano track (drums are left out)."""
    symusic = _symusic()
    merged = symusic.Score(score.tpq)
    merged.tempos = score.tempos.copy()
    merged.time_signatures = score.time_signatures.copy()
    merged.key_signatures = score.key_signatures.copy()
    track = symusic.Track(name="Piano", program=0)
    for t in score.tracks:
        if not t.is_drum:
            track.notes.extend(t.notes)
    track.notes.sort()
    merged.tracks.append(track)
    return merged


def _cut_overlaps(score: Any) -> int:
    """End each note where the next note of the same pitch on its track starts; count them."""
    cut = 0
    for track in score.tracks:
        last: dict[int, Any] = {}
        for note in sorted(track.notes, key=lambda n: (n.time, n.pitch)):
            before = last.get(note.pitch)
            if before is not None and before.end > note.time:
                before.duration = note.time - before.time
                cut += 1
            last[note.pitch] = note
    return cut
