"""Music through the command line: tiny MIDI files written at test time (symusic) train each
sequence family, and the pieces they write read back with the same library."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import assert_error, assert_same_weights, interrupt_at, invoke

symusic = pytest.importorskip("symusic")
pytest.importorskip("miditok")

from gentool.testing import write_sample_music  # noqa: E402

RNN = ["model.hidden_size=16", "model.embedding_size=8", "model.num_layers=1"]
TRANSFORMER = ["model.d_model=16", "model.num_layers=1", "model.num_heads=2", "model.d_ff=32",
               "model.context_length=32"]  # fmt: skip
NEURAL = ["train.max_steps=6", "train.batch_size=4", "train.seq_len=16", "train.eval_every=0",
          "train.checkpoint_every=0"]  # fmt: skip
FAMILIES = {
    "ngram": ["model.order=4"],
    "rnn": [*NEURAL, *RNN],
    "transformer": [*NEURAL, *TRANSFORMER],
}


def sets(values: list[str]) -> list[str]:
    return [a for v in values for a in ("--set", v)]


@pytest.fixture
def music(tmp_path: Path) -> Path:
    return write_sample_music(tmp_path / "music", 8, bars=8, seed=0)


def notes(path: Path) -> list[tuple[int, int, int]]:
    """(program, start in quarters x 8, pitch) of every note of a MIDI file."""
    score = symusic.Score(str(path))
    return sorted(
        (track.program, round(n.time * 8 / score.tpq), n.pitch)
        for track in score.tracks
        for n in track.notes
    )


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_trains_on_midi_and_writes_midi(
    family: str, music: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    invoke("train", family, "--data", music, "--out", run, *sets(FAMILIES[family]))
    meta = json.loads((run / "gentool.json").read_text())
    assert (meta["kind"], meta["tasks"]) == ("music", ["generate-music", "score-music"])
    assert "music_tokenizer.json" in meta["files"]
    assert not list(run.glob("*.pkl")) and not list(run.glob("tokenizer.json"))
    assert meta["data"]["train"][0]["files"] == 8  # every file is in the fingerprint

    a, b = tmp_path / "a.mid", tmp_path / "b.mid"
    png = tmp_path / "a.png"
    invoke("generate", run, "-o", a, "--seed", "1", "--bars", "4", "--pianoroll", png)
    invoke("generate", run, "-o", b, "--seed", "1", "--bars", "4")
    assert notes(a) and a.read_bytes() == b.read_bytes()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    sampling = ["--max-tokens", "120", "--temperature", "0.9", "--top-k", "20", "--json"]
    out = invoke("generate", run, "-n", "3", "--out-dir", tmp_path / "many", "--seed", "2",
                 *sampling)  # fmt: skip
    pieces = json.loads(out.stdout)["pieces"]
    assert len(pieces) == 3 and all(p["notes"] > 0 for p in pieces)
    assert all(notes(Path(p["file"])) for p in pieces)

    info = json.loads(invoke("info", run, "--json").stdout)
    assert info["model"]["music_tokenizer"]["scheme"] == "REMI+"

    held = write_sample_music(tmp_path / "held", 2, seed=5)
    metrics = json.loads(invoke("evaluate", run, "--data", held, "-n", "2", "--json").stdout)
    m = metrics["metrics"]
    assert m["perplexity"] > 1 and m["generated_pieces"] == 2 and m["heldout_pieces"] == 2
    assert m["copying_mean"] is not None and m["heldout_copying_mean"] is not None


def test_the_token_cross_entropy_counts_the_same_tokens_in_every_family(
    music: Path, tmp_path: Path
) -> None:
    held = write_sample_music(tmp_path / "held", 2, seed=5)
    counts = set()
    for family in ("ngram", "rnn"):
        invoke("train", family, "--data", music, "--out", tmp_path / family,
               *sets(FAMILIES[family]))  # fmt: skip
        found = invoke("evaluate", tmp_path / family, "--data", held, "-n", "1", "--json")
        counts.add(json.loads(found.stdout)["metrics"]["tokens"])
    assert len(counts) == 1


def test_a_prompt_keeps_its_bars(music: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    invoke("train", "ngram", "--data", music, "--out", run, "--set", "model.order=4")
    prompt = music / "piece03.mid"
    out = tmp_path / "more.mid"
    invoke("generate", run, "--prompt", prompt, "--prompt-bars", "2", "--bars", "2",
           "-o", out, "--seed", "3")  # fmt: skip
    first_two_bars = [n for n in notes(prompt) if n[1] < 2 * 4 * 8]
    assert notes(out)[: len(first_two_bars)] == first_two_bars or set(first_two_bars) <= set(
        notes(out)
    )
    assert len(notes(out)) > len(first_two_bars)


def test_resume_is_the_uninterrupted_run_for_the_music_lm(
    music: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gentool_transformer.gpt2 import WindowTask

    settings = sets([*TRANSFORMER, "train.max_steps=6", "train.batch_size=4", "train.seq_len=16",
                     "train.eval_every=0", "train.checkpoint_every=2"])  # fmt: skip
    invoke("train", "transformer", "--data", music, *settings, "--out", tmp_path / "whole")
    interrupt_at(monkeypatch, WindowTask, 3)
    result = invoke("train", "transformer", "--data", music, *settings, "--out", tmp_path / "cut",
                    ok=False)  # fmt: skip
    assert result.exit_code == 130
    monkeypatch.undo()
    invoke("train", "--resume", "--out", tmp_path / "cut")
    assert_same_weights(tmp_path / "whole", tmp_path / "cut", atol=1e-6)
    for name in ("music_tokenizer.json",):
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "cut" / name).read_bytes()


def test_bad_music_is_one_error_and_unusable_files_are_skipped_and_counted(
    music: Path, tmp_path: Path
) -> None:
    (music / "broken.mid").write_bytes(b"MThd\0\0\0\6" + b"\0" * 10)
    run = tmp_path / "run"
    result = invoke("train", "ngram", "--data", music, "--out", run)
    assert "skipped 1 unusable MIDI file(s)" in result.stderr
    assert json.loads((run / "gentool.json").read_text())["metrics"]["skipped_files"] == 1

    silent_dir = tmp_path / "silent"
    silent_dir.mkdir()
    score = symusic.Score(str(music / "piece01.mid"))
    for track in score.tracks:
        track.notes.clear()
    score.dump_midi(str(silent_dir / "silent.mid"))
    result = invoke("train", "rnn", "--data", silent_dir / "silent.mid", "--out", tmp_path / "x",
                    ok=False)  # fmt: skip
    assert_error(result, "has no notes")
    assert not (tmp_path / "x").exists()

    only_broken = tmp_path / "only-broken"
    only_broken.mkdir()
    shutil.copy(music / "broken.mid", only_broken / "a.mid")
    assert_error(invoke("train", "ngram", "--data", only_broken, "--out", tmp_path / "y",
                        ok=False), "none is usable")  # fmt: skip

    no_midi = tmp_path / "no-midi"
    no_midi.mkdir()
    (no_midi / "readme.txt").write_text("no music here\n")
    result = invoke("train", "transformer", "--data", no_midi, "--out", tmp_path / "z", ok=False)
    assert result.exit_code == 1 and not (tmp_path / "z").exists()

    result = invoke("generate", run, "-n", "2", "-o", tmp_path / "p.mid", ok=False)
    assert_error(result, "--out-dir")
    result = invoke("generate", run, "-o", tmp_path / "p.txt", ok=False)
    assert_error(result, "MIDI suffix")
    assert_error(invoke("generate", run, ok=False), "-o PIECE.mid")


def test_wav_without_fluidsynth_is_one_error_saying_how_to_install(
    music: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    invoke("train", "ngram", "--data", music, "--out", run)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    result = invoke("generate", run, "-o", tmp_path / "p.mid", "--wav", tmp_path / "p.wav",
                    ok=False)  # fmt: skip
    assert_error(result, "fluidsynth", "apt-get install")
    assert not (tmp_path / "p.mid").exists() and not (tmp_path / "p.wav").exists()


@pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="needs the fluidsynth program")
def test_wav_renders(music: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    invoke("train", "ngram", "--data", music, "--out", run)
    invoke("generate", run, "-o", tmp_path / "p.mid", "--bars", "2", "--wav", tmp_path / "p.wav",
           "--seed", "1")  # fmt: skip
    assert (tmp_path / "p.wav").read_bytes()[:4] == b"RIFF"
