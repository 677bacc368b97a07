"""The gan composes: MIDI files written at test time (symusic) train the gan's music kind
(multi-track piano-roll phrases) through the command line, and the pieces it writes read back
with the same library; phrases to piano rolls and back; resume; what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_error, assert_same_weights, interrupt_at, invoke

symusic = pytest.importorskip("symusic")
pytest.importorskip("miditok")
pytest.importorskip("torch")

from gentool.data.music import read_music  # noqa: E402
from gentool.testing import write_sample_music  # noqa: E402
from gentool_gan.rolls import (  # noqa: E402
    STEPS_PER_BAR,
    Layout,
    binarize,
    make_layout,
    piece_roll,
    read_rolls,
    roll_score,
)

TINY = ["model.width=8", "model.latent_size=16", "train.batch_size=8", "train.max_steps=12",
        "train.sample_every=6", "train.eval_every=0", "train.log_every=2"]  # fmt: skip


def sets(values: list[str]) -> list[str]:
    return [a for v in values for a in ("--set", v)]


@pytest.fixture(scope="module")
def music(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_music(tmp_path_factory.mktemp("music") / "music", 8, bars=8, seed=0)


@pytest.fixture(scope="module")
def run(music: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gan") / "run"
    invoke("train", "gan", "--data", music, "--out", out, *sets(TINY))
    return out


def notes(path: Path) -> list[tuple[str, int, int, int]]:
    """(track, start in sixteenths, length in sixteenths, pitch) of every note of a file."""
    score = symusic.Score(str(path))
    step = score.tpq // 4
    return sorted(
        (t.name, n.time // step, n.duration // step, n.pitch) for t in score.tracks for n in t.notes
    )


def test_the_data_chooses_the_music_kind_and_the_run_holds_no_pickle(run: Path) -> None:
    meta = json.loads((run / "gentool.json").read_text())
    assert (meta["family"], meta["kind"], meta["tasks"]) == ("gan", "music", ["generate-music"])
    assert {"model.safetensors", "config.json", "music_tokenizer.json", "samples.png"} <= set(
        meta["files"]
    )
    assert not list(run.glob("*.pkl")) and not list(run.glob("*.pt"))  # (the model: safetensors)
    spec = json.loads((run / "config.json").read_text())
    assert spec["track_names"] == ["Melody", "Bass"] and spec["programs"] == [0, 32]
    assert spec["monophonic"] == [True, True] and spec["pitches"] % 12 == 0
    assert len(spec["thresholds"]) == 2
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == ["step-12.png", "step-6.png"]
    info = json.loads(invoke("info", run, "--json").stdout)
    assert info["model"]["tracks"] == ["Melody", "Bass"]
    assert info["model"]["music_tokenizer"]["scheme"] == "REMI+"


def test_generate_writes_midi_that_reads_back_the_same_for_the_same_seed(
    run: Path, tmp_path: Path
) -> None:
    a, b, c, png = (tmp_path / n for n in ("a.mid", "b.mid", "c.mid", "a.png"))
    invoke("generate", run, "-o", a, "--seed", "1", "--bars", "8", "--pianoroll", png)
    invoke("generate", run, "-o", b, "--seed", "1", "--bars", "8")
    invoke("generate", run, "-o", c, "--seed", "2", "--bars", "8")
    assert notes(a) and a.read_bytes() == b.read_bytes() != c.read_bytes()
    assert {track for track, *_ in notes(a)} <= {"Melody", "Bass"}
    assert max(start + length for _, start, length, _ in notes(a)) <= 8 * STEPS_PER_BAR
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    out = invoke("generate", run, "-n", "3", "--out-dir", tmp_path / "many", "--seed", "3",
                 "--bars", "2", "--temperature", "0.8", "--json")  # fmt: skip
    pieces = json.loads(out.stdout)["pieces"]
    assert len(pieces) == 3 and all(p["notes"] > 0 and p["bars"] == 2 for p in pieces)
    assert all(notes(Path(p["file"])) for p in pieces)
    # no --bars: one phrase of model.bars (4)
    invoke("generate", run, "-o", tmp_path / "phrase.mid", "--seed", "1")
    assert max(s + n for _, s, n, _ in notes(tmp_path / "phrase.mid")) <= 4 * STEPS_PER_BAR


def test_evaluate_gives_the_statistics_and_no_perplexity(
    run: Path, music: Path, tmp_path: Path
) -> None:
    held = write_sample_music(tmp_path / "held", 2, seed=5)
    found = json.loads(invoke("evaluate", run, "--data", held, "-n", "2", "--json").stdout)
    m = found["metrics"]
    assert m["generated_pieces"] == 2 and m["heldout_pieces"] == 2
    assert 0 <= m["pitch_class_distance"] <= 1 and m["polyphony"] > 0
    assert m["copying_mean"] is not None  # against the training pieces, in REMI tokens
    assert "perplexity" not in m  # a gan scores no tokens


def test_a_prompt_is_refused_with_one_error(run: Path, music: Path, tmp_path: Path) -> None:
    result = invoke("generate", run, "--prompt", music / "piece01.mid", "-o", tmp_path / "p.mid",
                    ok=False)  # fmt: skip
    assert_error(result, "--prompt", "cannot continue")
    assert not (tmp_path / "p.mid").exists()


def test_resume_is_the_uninterrupted_run(
    music: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gentool_gan.composition import RollTask

    settings = ["--data", music, *sets([*TINY, "train.checkpoint_every=2"])]
    invoke("train", "gan", *settings, "--out", tmp_path / "whole")
    interrupt_at(monkeypatch, RollTask, 7)  # during step 8: after two generator steps
    result = invoke("train", "gan", *settings, "--out", tmp_path / "cut", ok=False)
    assert result.exit_code == 130
    monkeypatch.undo()
    invoke("train", "--resume", "--out", tmp_path / "cut")
    weights = assert_same_weights(tmp_path / "whole", tmp_path / "cut", atol=1e-6)
    assert any(k.startswith("ema.") for k in weights)
    for name in ("config.json", "music_tokenizer.json", "samples.png"):
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "cut" / name).read_bytes()


def test_pieces_not_in_four_four_are_left_out_and_none_is_one_error(
    music: Path, tmp_path: Path
) -> None:
    waltz = tmp_path / "waltz"
    waltz.mkdir()
    score = symusic.Score(str(music / "piece01.mid"))
    score.time_signatures = [symusic.TimeSignature(0, 3, 4)]
    score.dump_midi(str(waltz / "waltz.mid"))
    result = invoke("train", "gan", "--data", waltz, "--out", tmp_path / "x", ok=False)
    assert_error(result, "4/4")
    assert not (tmp_path / "x").exists()

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("piece01.mid", "piece02.mid", "piece03.mid"):
        (mixed / name).write_bytes((music / name).read_bytes())
    score.dump_midi(str(mixed / "a-waltz.mid"))  # (first: the last piece is held out)
    result = invoke("train", "gan", "--data", mixed, "--out", tmp_path / "y", *sets(TINY))
    assert "left out 1 piece(s) the gan cannot use" in result.stderr
    assert "is not in 4/4" in result.stderr
    assert json.loads((tmp_path / "y" / "config.json").read_text())["data"]["skipped_files"] == 1


# -- piano rolls ---------------------------------------------------------------------------------


def test_a_piece_becomes_phrases_and_a_roll_becomes_the_same_notes(music: Path) -> None:
    pieces = read_music([music])
    layout = make_layout(pieces.scores)
    assert layout.names == ["Melody", "Bass"] and layout.low <= 45 and layout.pitches == 36
    rolls = read_rolls(pieces, layout, bars=4)
    # 8 pieces of 8 bars: 5 phrases each, one starting on every bar that leaves 4
    assert rolls.phrases.shape == (8 * 5, 2, 4 * STEPS_PER_BAR, 36)
    assert set(np.unique(rolls.phrases)) == {0, 255}

    score = pieces.pieces[0].score
    back = roll_score(piece_roll(score, layout), layout)
    tpq, step = score.tpq, score.tpq // 4
    for theirs, ours in zip(score.tracks, back.tracks, strict=True):
        want = [(n.time // step, n.pitch) for n in theirs.notes]
        got = [(n.time * tpq // back.tpq // step, n.pitch) for n in ours.notes]
        # every onset is kept, repeated pitches too (the roll leaves a one-step gap)
        assert sorted(got) == sorted(want)


def test_binarize_keeps_one_pitch_of_a_voice_and_thresholds_per_track() -> None:
    layout = Layout(["voice", "chords"], [0, 0], [True, False], 60, 12, thresholds=[0.0, 0.5])
    output = np.full((2, 4, 12), -1.0, dtype=np.float32)
    output[0, 0, [2, 5]] = [0.3, 0.9]  # two pitches above 0 at one step: the louder one
    output[1, 1, [0, 4, 7]] = [0.6, 0.7, 0.4]  # a chord: what is above the track's 0.5
    on = binarize(output, layout)
    assert np.argwhere(on[0]).tolist() == [[0, 5]]
    assert np.argwhere(on[1]).tolist() == [[1, 0], [1, 4]]
