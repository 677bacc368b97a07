"""Training is visible: progress off a terminal (CI, nohup, a pipe) comes as plain lines
at a steady interval, long phases (tokenizer, encoding, final evaluation, BLEU) are
announced with their time, and a translator's BLEU after training is capped."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
from conftest import assert_error, invoke

from gentool.progress import phase


def test_a_short_phase_says_nothing() -> None:
    lines: list[str] = []
    with phase(lines.append, "encoding the text", after=10):
        pass
    assert lines == []


def test_a_long_phase_is_announced_then_timed() -> None:
    lines: list[str] = []
    with phase(lines.append, "learning the tokenizer", terminal=False, after=0.05):
        time.sleep(0.3)
    assert lines[0] == "learning the tokenizer..."
    assert lines[1].startswith("learning the tokenizer: done in ") and len(lines) == 2


def test_a_counted_phase_off_a_terminal_writes_plain_lines() -> None:
    lines: list[str] = []
    with phase(
        lines.append, "BLEU", total=3, unit="sentences", terminal=False, after=0, every=0
    ) as advance:
        for _ in range(3):
            advance(1)
    assert "BLEU: 3/3 sentences" in lines and lines[-1].startswith("BLEU: done in ")
    assert not any("\r" in line for line in lines)


def test_a_counted_phase_on_a_terminal_rewrites_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines: list[str] = []
    with phase(lines.append, "BLEU", total=2, unit="sentences", terminal=True, after=0) as advance:
        advance(1)
        advance(1)
    err = capsys.readouterr().err
    assert "\rBLEU: 1/2 sentences" in err and "\rBLEU: 2/2 sentences" in err
    assert lines[-1].startswith("BLEU: done in ")


def test_training_off_a_terminal_logs_plain_progress_lines(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from gentool import api
    from gentool.model import Runtime

    overrides = ["model.hidden_size=16", "model.embedding_size=8", "model.num_layers=1",
                 "train.batch_size=2", "train.seq_len=8", "train.max_steps=4",
                 "train.log_every=2", "train.eval_every=0", "train.checkpoint_every=0"]  # fmt: skip
    lines: list[str] = []
    runtime = Runtime(progress=False, plain_every=0)  # a line at every log step
    api.train("rnn", overrides=overrides, out=tmp_path / "r", runtime=runtime, log=lines.append)
    steps = [line for line in lines if line.startswith("step ")]
    assert [s.split()[1] for s in steps] == ["2/4", "4/4"], lines
    assert " tokens/s  ETA " in steps[0] and not any("\r" in line for line in lines)
    lines.clear()  # the default: at most one line every 30 s, none in a run this short
    api.train("rnn", overrides=overrides, out=tmp_path / "q", runtime=Runtime(progress=False),
              log=lines.append)  # fmt: skip
    assert not [line for line in lines if line.startswith("step ")], lines


def test_train_help_says_what_runs_after_the_last_step() -> None:
    text = " ".join(invoke("train", "--help").stdout.split())
    assert "After the last step:" in text and "train.bleu_pairs" in text
    assert "plain line every 30 seconds" in text


# -- a translator's BLEU after training -----------------------------------------------------

WORDS = {"one": "eins", "two": "zwei", "three": "drei", "cat": "Katze", "dog": "Hund"}


@pytest.fixture
def pairs_tsv(tmp_path: Path) -> Path:
    rng = random.Random(0)
    lines = []
    for _ in range(80):
        words = rng.choices(list(WORDS), k=rng.randint(2, 5))
        lines.append(" ".join(words) + "\t" + " ".join(WORDS[w] for w in words))
    path = tmp_path / "pairs.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def translator(data: Path, out: Path, *settings: str, ok: bool = True) -> object:
    pytest.importorskip("torch")
    return invoke(
        "train", "transformer", "--data", data, "--out", out,
        "--set", "model.d_model=16", "--set", "model.num_layers=1", "--set", "model.num_heads=2",
        "--set", "model.d_ff=32", "--set", "model.vocab_size=280", "--set", "train.batch_size=8",
        "--set", "train.max_steps=2", "--set", "train.checkpoint_every=0",
        "--set", "train.val_fraction=0.25", *settings, ok=ok,
    )  # fmt: skip


def test_translator_bleu_after_training_is_capped_and_optional(
    pairs_tsv: Path, tmp_path: Path
) -> None:
    translator(pairs_tsv, tmp_path / "some", "--set", "train.bleu_pairs=5")
    meta = json.loads((tmp_path / "some" / "gentool.json").read_text())["metrics"]
    assert meta["val_bleu_pairs"] == 5 and 0 <= meta["val_bleu"] <= 100
    translator(pairs_tsv, tmp_path / "none", "--set", "train.bleu_pairs=0")
    meta = json.loads((tmp_path / "none" / "gentool.json").read_text())["metrics"]
    assert "val_bleu" not in meta and meta["val_loss"] is not None
    result = translator(pairs_tsv, tmp_path / "bad", "--set", "train.bleu_pairs=-1", ok=False)
    assert_error(result, "train.bleu_pairs must be at least 0")


def test_an_untrained_translator_stops_at_twice_the_source_length(
    pairs_tsv: Path, tmp_path: Path
) -> None:
    """It may never end a sentence: BLEU after training caps each translation (and only
    there: ``gentool translate`` runs to the model's limit)."""
    from gentool import api
    from gentool.tasks import TranslationRequest

    translator(pairs_tsv, tmp_path / "run", "--set", "train.bleu_pairs=0")
    model = api.load(tmp_path / "run")
    asked: list[int] = []
    generate = model.model.generate

    def spy(**options: object) -> object:
        asked.append(options["max_new_tokens"])
        return generate(**options)

    model.model.generate = spy
    length = len(model.tokenizer("one two")["input_ids"])
    model.translate(["one two"], TranslationRequest(num_beams=1), source_cap=True)
    model.translate(["one two"], TranslationRequest(num_beams=1))
    assert asked == [2 * length + 10, model.model.config.max_position_embeddings - 1]
