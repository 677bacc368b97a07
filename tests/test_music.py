"""Music data: reading MIDI (corrupt and empty files), REMI tokens and back, repairing streams
a model may generate, prompts, piano rolls, audio, and the statistics used to evaluate pieces.
Tiny MIDI files are written at test time with symusic."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA

symusic = pytest.importorskip("symusic")
pytest.importorskip("miditok")

from gentool.data.music import (  # noqa: E402
    TOKENIZER_FILE,
    MusicTokenizer,
    MusicTokenizerConfig,
    fingerprint_music,
    is_music_source,
    read_midi,
    read_music,
    write_midi,
)
from gentool.errors import DataError, GentoolError  # noqa: E402
from gentool.music import audio  # noqa: E402
from gentool.music.pianoroll import BOTTOM, LEFT, PALETTE, RIGHT, TOP, save_pianoroll  # noqa: E402
from gentool.music.stats import (  # noqa: E402
    CopyIndex,
    copying,
    estimate_key,
    histogram_distance,
    piece_stats,
    set_stats,
)

TPQ = 480
C_MAJOR = [60, 62, 64, 65, 67, 69, 71, 72]


def score(
    tracks: dict[str, list[tuple[float, float, int]]],
    programs: tuple[int, ...] = (0, 40, 42, 71),
    time_signature: tuple[int, int] = (4, 4),
    qpm: float = 120,
) -> object:
    """A score from notes (start and duration in quarter notes, pitch) per named track."""
    s = symusic.Score(TPQ)
    s.time_signatures.append(symusic.TimeSignature(0, *time_signature))
    s.tempos.append(symusic.Tempo(0, qpm=qpm))
    for (name, notes), program in zip(tracks.items(), programs, strict=False):
        track = symusic.Track(name=name, program=program)
        for start, length, pitch in notes:
            track.notes.append(symusic.Note(round(start * TPQ), round(length * TPQ), pitch, 80))
        s.tracks.append(track)
    return s


def midi(path: Path, s: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    s.dump_midi(str(path))  # type: ignore[attr-defined]
    return path


def scale_piece() -> object:
    """Two bars of 4/4: a C major scale in eighths on top of a held C-E-G, two instruments."""
    melody = [(i * 0.5, 0.5, p + 12) for i, p in enumerate(C_MAJOR)]
    melody += [(4 + i * 0.5, 0.5, p + 12) for i, p in enumerate(reversed(C_MAJOR))]
    chords = [(0, 4, 48), (0, 4, 52), (0, 4, 55), (4, 4, 53), (4, 4, 57), (4, 4, 60)]
    return score({"Violin": melody, "Piano": chords}, programs=(40, 0))


def notes_of(s: object) -> list[tuple[int, int, int]]:
    """(start, duration, pitch) in 32nd-note units, over all tracks, sorted."""
    unit = s.tpq / 8  # type: ignore[attr-defined]
    return sorted(
        (round(n.time / unit), round(n.duration / unit), n.pitch)
        for t in s.tracks  # type: ignore[attr-defined]
        for n in t.notes
    )


@pytest.fixture(scope="module")
def tokenizer() -> MusicTokenizer:
    return MusicTokenizer()


# -- reading ------------------------------------------------------------------------------------


def test_corrupt_and_empty_midi_among_good_ones_are_skipped_and_counted(tmp_path: Path) -> None:
    midi(tmp_path / "a.mid", scale_piece())
    midi(tmp_path / "deep" / "b.MIDI", scale_piece())
    (tmp_path / "garbage.mid").write_bytes(b"not a midi file at all")
    good = (tmp_path / "a.mid").read_bytes()
    (tmp_path / "truncated.mid").write_bytes(good[: len(good) // 2])
    midi(tmp_path / "silent.mid", score({"Piano": []}))
    (tmp_path / "notes.txt").write_text("not music")
    found = read_music([tmp_path])
    assert [p.name for p in found.pieces] == ["a.mid", "deep/b.MIDI"]
    assert sorted(Path(f).name for f in found.skipped) == [
        "garbage.mid",
        "silent.mid",
        "truncated.mid",
    ]
    assert "has no notes" in found.skipped[str(tmp_path / "silent.mid")]
    assert found.report() is not None and "skipped 3 unusable MIDI file(s)" in found.report()
    assert all(p.score.note_num() == 22 for p in found.pieces)


def test_no_midi_and_no_notes_are_one_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no music here")
    with pytest.raises(DataError, match=r"'.*empty' holds no MIDI files"):
        read_music([tmp_path / "empty"])
    silent = midi(tmp_path / "silent" / "quiet.mid", score({"Piano": []}))
    with pytest.raises(DataError, match=r"quiet\.mid' has no notes"):
        read_music([silent])
    with pytest.raises(DataError, match=r"none is usable \(first: .*quiet\.mid' has no notes"):
        read_music([silent.parent])
    with pytest.raises(DataError, match="does not exist"):
        read_music([tmp_path / "missing"])
    with pytest.raises(DataError, match="not a readable MIDI file"):
        read_midi(tmp_path / "empty" / "readme.txt")


def test_file_list_names_files_below_it_and_the_fingerprint_covers_them(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        midi(tmp_path / "midi" / f"{name}.mid", scale_piece())
    listing = tmp_path / "train.txt"
    listing.write_text("a.mid\n\n# a comment\nmidi/b.mid\n")
    assert is_music_source(listing) and is_music_source(tmp_path) and is_music_source(listing)
    assert not is_music_source(tmp_path / "midi" / "nothing.txt")
    found = read_music([listing])
    assert [p.name for p in found.pieces] == ["midi/a.mid", "midi/b.mid"]

    before = fingerprint_music(listing)
    assert before["files"] == 3  # the list and the two files it names
    midi(tmp_path / "midi" / "c.mid", score({"Piano": [(0, 1, 60)]}))  # not listed
    assert fingerprint_music(listing) == before
    midi(tmp_path / "midi" / "b.mid", score({"Piano": [(0, 1, 61)]}))  # listed
    assert fingerprint_music(listing)["sha256"] != before["sha256"]

    listing.write_text("a.mid\nzzz.mid\n")
    with pytest.raises(DataError, match=r"'zzz.mid' in the file list .* matches no file"):
        read_music([listing])


# -- tokens ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("programs", [True, False])
def test_round_trip_tokens_midi_tokens(tmp_path: Path, programs: bool) -> None:
    tok = MusicTokenizer(MusicTokenizerConfig(programs=programs))
    piece = scale_piece()
    ids = tok.encode(piece)
    tokens = tok.tokens(ids)
    assert tokens[:4] == ["Bar_None", "TimeSig_4/4", "Position_0", "Tempo_120.0"]
    assert all(" " not in t for t in tokens) and tok.ids(tokens) == ids
    assert ("Program_40" in tokens) == programs

    decoded = tok.decode(ids)
    assert decoded.usable and decoded.problems == {} and decoded.ids == ids
    assert decoded.notes == 22 and decoded.bars == 2
    write_midi(decoded.score, tmp_path / "back.mid")
    back = read_midi(tmp_path / "back.mid")
    assert back.tpq == 480 and notes_of(back) == notes_of(piece)
    assert tok.encode(back) == ids
    if programs:  # the instruments come back
        assert sorted(t.program for t in back.tracks) == [0, 40]


def test_tokenizer_saves_as_json_and_reloads(tmp_path: Path) -> None:
    tok = MusicTokenizer(MusicTokenizerConfig(programs=False, positions_per_beat=4))
    path = tok.save(tmp_path)
    assert path == tmp_path / TOKENIZER_FILE
    saved = json.loads(path.read_text())  # JSON, never pickle
    assert saved["tokenization"] == "REMI" and saved["gentool"]["programs"] is False
    again = MusicTokenizer.load(tmp_path)
    assert again.vocab == tok.vocab and again.config == tok.config
    assert again.encode(scale_piece()) == tok.encode(scale_piece())
    assert len({tok.pad_id, tok.bos_id, tok.eos_id, tok.bar_id}) == 4
    with pytest.raises(GentoolError, match="has no music tokenizer"):
        MusicTokenizer.load(tmp_path / "elsewhere")


def test_prompt_is_the_first_bars(tokenizer: MusicTokenizer) -> None:
    four = score({"Piano": [(b * 4 + i, 1, 60 + b) for b in range(4) for i in range(4)]})
    prompt = tokenizer.prompt(four, 2)
    assert tokenizer.count_bars(prompt) == 2
    decoded = tokenizer.decode(prompt)
    assert notes_of(decoded.score) == notes_of(
        score({"Piano": [(b * 4 + i, 1, 60 + b) for b in range(2) for i in range(4)]})
    )
    assert tokenizer.prompt(four, 9) == tokenizer.encode(four)  # a short piece: all of it


# -- repair -------------------------------------------------------------------------------------


def ids_of(tok: MusicTokenizer, text: str) -> list[int]:
    return tok.ids(text.split())


NOTE = "Program_0 Pitch_{} Velocity_79 Duration_1.0.8"


def test_repair_drops_what_cannot_be_decoded(tokenizer: MusicTokenizer) -> None:
    bar = "Bar_None TimeSig_4/4"
    stream = " ".join([
        "BOS_None", bar, bar,  # an empty bar first: trimmed
        "Position_0", NOTE.format(60), "PAD_None",  # a special token inside
        "Position_8", NOTE.format(62), "Velocity_79",  # a stray velocity
        "Position_4", NOTE.format(64),  # back in time: dropped with its note
        "Position_16", NOTE.format(65), NOTE.format(65),  # the same note twice
        "Position_40", NOTE.format(67),  # past the end of a 4/4 bar (32 positions)
        "Bar_None", "Position_0", NOTE.format(69),  # a bar without its time signature
        "Position_8", "Program_0 Pitch_71 Velocity_79",  # a note cut short
        bar, bar, "EOS_None", bar, "Position_0", NOTE.format(72),  # empty bars, then the end
    ])  # fmt: skip
    decoded = tokenizer.decode(ids_of(tokenizer, stream))
    assert decoded.problems == {
        "empty bars trimmed": 3,
        "special token inside": 1,
        "incomplete note": 2,
        "time going backwards": 1,
        "note without a valid position": 2,
        "the same note twice": 1,
        "position past the bar's end": 1,
        "bar without time signature": 1,
    }
    assert [p for _, _, p in notes_of(decoded.score)] == [60, 62, 65, 69]
    assert decoded.bars == 2 and tokenizer.repair(decoded.ids) == (decoded.ids, {})


def test_overlapping_notes_of_one_pitch_are_cut(tokenizer: MusicTokenizer, tmp_path: Path) -> None:
    long_note = "Program_0 Pitch_60 Velocity_79 Duration_3.0.8"
    stream = f"Bar_None TimeSig_4/4 Position_0 {long_note} Position_8 {NOTE.format(60)}"
    decoded = tokenizer.decode(ids_of(tokenizer, stream))
    assert decoded.problems == {"overlapping notes cut": 1}
    write_midi(decoded.score, tmp_path / "cut.mid")
    assert notes_of(read_midi(tmp_path / "cut.mid")) == [(0, 8, 60), (8, 8, 60)]


def test_nothing_decodable_is_not_usable_and_never_written(
    tokenizer: MusicTokenizer, tmp_path: Path
) -> None:
    decoded = tokenizer.decode(
        ids_of(tokenizer, "Bar_None TimeSig_4/4 Pitch_60 Velocity_79 EOS_None")
    )
    assert not decoded.usable and decoded.ids == [] and decoded.problems
    (tmp_path / "old.mid").write_bytes(b"keep me")
    with pytest.raises(DataError, match="has no notes; nothing was written"):
        write_midi(decoded.score, tmp_path / "old.mid")
    assert (tmp_path / "old.mid").read_bytes() == b"keep me"
    with pytest.raises(DataError, match="no MIDI suffix"):
        write_midi(scale_piece(), tmp_path / "piece.wav")


def test_any_stream_decodes_to_a_valid_file(tokenizer: MusicTokenizer, tmp_path: Path) -> None:
    """Random edits of a real stream (what a model gets wrong): repaired streams are
    grammatical, and what is written reads back with the same notes and no overlaps."""
    rng = np.random.default_rng(0)
    real = tokenizer.encode(scale_piece()) * 3
    usable = 0
    for _ in range(60):
        ids = list(real)
        for _ in range(int(rng.integers(1, 12))):
            k = int(rng.integers(0, len(ids)))
            ids[k : k + int(rng.integers(0, 2))] = rng.integers(-1, len(tokenizer) + 1, 1).tolist()
        decoded = tokenizer.decode(ids[: int(rng.integers(1, len(ids)))])
        assert tokenizer.repair(decoded.ids) == (decoded.ids, {})
        if decoded.usable:
            usable += 1
            write_midi(decoded.score, tmp_path / "x.mid")
            back = read_midi(tmp_path / "x.mid")
            assert back.note_num() == decoded.notes
            for track in back.tracks:
                ends: dict[int, int] = {}
                for n in sorted(track.notes, key=lambda n: (n.time, n.pitch)):
                    assert ends.get(n.pitch, -1) <= n.time
                    ends[n.pitch] = n.end
    assert usable > 40


# -- looking and listening ----------------------------------------------------------------------


def test_pianoroll_writes_a_png_of_the_expected_size(tmp_path: Path) -> None:
    Image = pytest.importorskip("PIL.Image")
    piece = scale_piece()  # 2 bars of 4/4, pitches 48..84
    save_pianoroll(
        piece, tmp_path / "roll.png", title="scale", pixels_per_beat=10, pixels_per_pitch=4
    )
    with Image.open(tmp_path / "roll.png") as image:
        assert image.format == "PNG"
        assert image.size == (LEFT + 8 * 10 + RIGHT, TOP + (86 - 46 + 1) * 4 + BOTTOM)
        # the first note of each track in its colour: the violin's C5, the piano's C3
        y = TOP + (86 - 72) * 4 + 2
        assert image.convert("RGB").getpixel((LEFT + 3, y)) == PALETTE[0]
        y = TOP + (86 - 48) * 4 + 2
        assert image.convert("RGB").getpixel((LEFT + 3, y)) == PALETTE[1]
    # a long piece is squeezed to the width asked
    long = score({"Piano": [(i, 1, 60) for i in range(400)]})
    save_pianoroll(long, tmp_path / "long.png", max_width=500)
    with Image.open(tmp_path / "long.png") as image:
        assert image.size[0] == 500


def test_wav_without_fluidsynth_is_one_error_saying_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audio.shutil, "which", lambda name: None)
    with pytest.raises(GentoolError, match="sudo apt-get install fluidsynth fluid-soundfont-gm"):
        audio.render_wav(scale_piece(), tmp_path / "out.wav")
    monkeypatch.setattr(audio.shutil, "which", lambda name: "/usr/bin/fluidsynth")
    monkeypatch.setattr(audio, "SOUNDFONTS", ())
    monkeypatch.delenv(audio.SOUNDFONT_ENV, raising=False)
    with pytest.raises(GentoolError, match="needs a General MIDI soundfont; install"):
        audio.render_wav(scale_piece(), tmp_path / "out.wav")
    monkeypatch.setenv(audio.SOUNDFONT_ENV, str(tmp_path / "none.sf2"))
    with pytest.raises(GentoolError, match="none.sf2' is not a file"):
        audio.render_wav(scale_piece(), tmp_path / "out.wav")
    assert not (tmp_path / "out.wav").exists()


def test_wav_renders_with_fluidsynth(tmp_path: Path) -> None:
    try:
        audio.find_synth()
    except GentoolError as err:
        pytest.skip(f"no FluidSynth here: {err}")
    audio.render_wav(scale_piece(), tmp_path / "out.wav", sample_rate=22050)
    with wave.open(str(tmp_path / "out.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (22050, 2, 2)
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    assert w.getnframes() / 22050 >= 4.0  # two bars at 120 per minute, and the release
    assert np.abs(frames).max() > 1000  # not silence


# -- statistics ---------------------------------------------------------------------------------


def test_statistics_of_known_pieces() -> None:
    scale = score({"Piano": [(i, 1, p) for i, p in enumerate(C_MAJOR)]})
    stats = piece_stats(scale)
    assert stats["key"] == "C major" and stats["in_key"] == 1.0
    assert (stats["pitch_range"], stats["bars"], stats["notes_per_bar"]) == (12, 2, 4.0)
    assert stats["polyphony"] == 1.0 and stats["empty_bars"] == 0.0

    # a held triad (3 voices) for a bar, a silent bar, then one note: 2 of 3 bars sound
    gappy = score({"Piano": [(0, 4, 57), (0, 4, 60), (0, 4, 64), (8, 2, 68)]})
    stats = piece_stats(gappy)
    assert stats["polyphony"] == pytest.approx((3 * 4 + 1 * 2) / 6)
    assert stats["empty_bars"] == pytest.approx(1 / 3) and stats["bars"] == 3
    assert estimate_key(gappy)[:2] == (9, "minor")  # A C E and G#: A minor
    assert stats["in_key"] == 1.0  # G# is A minor's leading tone

    a = set_stats([scale])["pitch_class_histogram"]
    assert histogram_distance(a, a) == 0.0
    assert histogram_distance([1] + [0] * 11, [0, 1] + [0] * 10) == 1.0
    waltz = score({"Piano": [(0, 3, 60), (3, 3, 64)]}, time_signature=(3, 4))
    assert piece_stats(waltz)["bars"] == 2


def test_copying_is_the_longest_shared_run() -> None:
    index = CopyIndex([[1, 2, 3, 4, 5], [9, 9, 9]])
    assert index.longest([0, 2, 3, 4, 7]) == 3
    assert index.longest([3, 4, 5, 9, 9]) == 3  # no run crosses from one piece to the next
    assert index.longest([8, 8]) == 0 and index.longest([]) == 0
    rng = np.random.default_rng(1)
    reference = [rng.integers(0, 4, int(rng.integers(1, 30))).tolist() for _ in range(6)]
    index = CopyIndex(reference)
    for _ in range(30):
        query = rng.integers(0, 4, int(rng.integers(0, 25))).tolist()
        brute = max(
            (
                j - i
                for i in range(len(query))
                for j in range(i + 1, len(query) + 1)
                if any(_contains(r, query[i:j]) for r in reference)
            ),
            default=0,
        )
        assert index.longest(query) == brute
    figures = copying([[1, 2, 3], [9]], CopyIndex([[1, 2, 3, 4], [9]]))
    assert figures == {"mean": 2.0, "median": 2.0, "max": 3.0, "share_mean": 1.0}


def _contains(seq: list[int], run: list[int]) -> bool:
    return any(seq[i : i + len(run)] == run for i in range(len(seq) - len(run) + 1))


CHORALES = SHARED_DATA / "bach_chorales"


@pytest.mark.skipif(not CHORALES.is_dir(), reason="needs ../shared/data/bach_chorales")
def test_real_chorales_tokenize_cleanly(tokenizer: MusicTokenizer) -> None:
    """Real data is already what repair makes of a stream, and its statistics look like Bach."""
    pieces = read_music([CHORALES / "val.txt"]).pieces[:4]
    for piece in pieces:
        ids = tokenizer.encode(piece.score)
        assert tokenizer.repair(ids) == (ids, {})
    stats = set_stats([p.score for p in pieces])
    assert stats["in_key"] > 0.85 and 3.5 < stats["polyphony"] < 4.5
    assert stats["empty_bars"] == 0.0
