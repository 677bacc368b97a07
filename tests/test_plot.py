"""gentool plot and gentool compare, through the CLI, on tiny runs."""

from __future__ import annotations

import json
import math
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import assert_error, invoke, invoke_json

from gentool import runs

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from PIL import Image  # noqa: E402

TINY_RNN = [
    "--set", "model.hidden_size=16",
    "--set", "model.embedding_size=8",
    "--set", "model.num_layers=1",
    "--set", "train.batch_size=4",
    "--set", "train.seq_len=16",
    "--set", "train.warmup_steps=1",
    "--set", "train.max_steps=6",
    "--set", "train.log_every=2",
    "--set", "train.eval_every=3",
    "--set", "train.eval_batches=1",
    "--set", "train.checkpoint_every=0",
]  # fmt: skip
TINY_GAN = [
    "--set", "model.width=8",
    "--set", "model.latent_size=16",
    "--set", "train.batch_size=8",
    "--set", "train.max_steps=4",
    "--set", "train.log_every=2",
    "--set", "train.checkpoint_every=0",
    "--set", "train.sample_every=0",
    "--set", "train.eval_batches=1",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A char rnn and a gan generator, on the embedded samples (a few seconds)."""
    root = tmp_path_factory.mktemp("runs")
    invoke("train", "rnn", *TINY_RNN, "--out", root / "rnn")
    invoke("train", "gan", *TINY_GAN, "--out", root / "gan")
    return {"rnn": root / "rnn", "gan": root / "gan"}


def test_plot_a_text_run_writes_a_png_and_its_series(trained: dict[str, Path]) -> None:
    out = invoke_json("plot", trained["rnn"], "-o", "curves.png")
    assert out["files"] == ["curves.png"]
    # Two panels a row at 600 x 360 pixels, and a band of 60 for the legend of runs: loss
    # against steps and against time, learning rate, throughput.
    assert Image.open("curves.png").size == (1200, 2 * 360 + 60)
    (run,) = out["runs"]
    assert run["family"] == "rnn" and run["unit"] == "tokens"
    loss, val = run["series"]["loss"], run["series"]["val_loss"]
    assert loss["step"] == [2, 4, 6] and val["step"] == [3, 6]
    assert len(loss["value"]) == 3 and all(v > 0 for v in loss["value"])
    assert loss["seconds"] == sorted(loss["seconds"]) and loss["seconds"][0] > 0
    assert set(run["series"]) >= {"lr", "tokens_per_s"}
    # An existing file is replaced only with --force; --svg writes a vector copy beside it.
    assert_error(invoke("plot", trained["rnn"], "-o", "curves.png", ok=False), "--force")
    invoke("plot", trained["rnn"], "-o", "curves.png", "--svg", "--force")
    assert Path("curves.svg").read_text().lstrip().startswith("<?xml")


def test_plot_a_gan_shows_the_adversarial_figures(trained: dict[str, Path]) -> None:
    out = invoke_json("plot", trained["gan"], "-o", "gan.png")
    (run,) = out["runs"]
    assert run["kind"] == "generator" and run["unit"] == "images"
    for key in ("d_real", "d_fake", "loss_d", "loss_g", "grad_norm_d", "grad_norm_g"):
        assert run["series"][key]["step"] == [2, 4], key
    assert all(0 < v < 1 for v in run["series"]["d_real"]["value"])
    assert all(v > 0 for v in run["series"]["diversity"]["value"])
    # D outputs, losses, gradient norms, diversity, learning rate, throughput: 3 rows.
    assert Image.open("gan.png").size == (1200, 3 * 360 + 60)


def test_plot_overlays_runs_and_refuses_bad_outputs(trained: dict[str, Path]) -> None:
    out = invoke_json("plot", trained["rnn"], trained["gan"], "-o", "both.png")
    assert [r["family"] for r in out["runs"]] == ["rnn", "gan"]
    # Text and GAN panels, and throughput once per unit (tokens, images): 5 rows.
    assert Image.open("both.png").size == (1200, 5 * 360 + 60)
    result = invoke("plot", trained["rnn"], "-o", trained["rnn"] / "c.png", ok=False)
    assert_error(result, "inside the run directory")
    assert_error(invoke("plot", trained["rnn"], "-o", "c.jpg", ok=False), ".png or .svg")
    assert_error(invoke("plot", "nowhere", "-o", "c.png", ok=False), "does not exist")
    assert not Path("c.png").exists()


def test_plot_an_ngram_run_says_there_is_no_curve(tmp_path: Path) -> None:
    invoke("train", "ngram", "--out", tmp_path / "ng")
    assert_error(invoke("plot", tmp_path / "ng", "-o", "c.png", ok=False), "no training curve")


def test_plot_without_matplotlib_is_one_error_line(
    trained: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ImportError
    result = invoke("plot", trained["rnn"], "-o", "c.png", ok=False)
    assert_error(result, "matplotlib", "pip install 'gentool[plot]'")
    assert not Path("c.png").exists()
    # The series need no plotting library.
    series = json.loads(invoke("plot", trained["rnn"], "--json").stdout)
    assert series["files"] == [] and series["runs"][0]["series"]["loss"]["step"] == [2, 4, 6]


# -- compare ----------------------------------------------------------------------------------

HELD_OUT = "To be, or not to be: that is the question.\nWhether 'tis nobler in the mind\n"


def test_compare_an_ngram_and_an_rnn_on_the_same_characters(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    text = tmp_path / "held-out.txt"
    text.write_text(HELD_OUT)
    invoke("train", "ngram", "--set", "model.tokens=char", "--out", tmp_path / "ng")
    table = invoke_json("compare", tmp_path / "ng", trained["rnn"], "--data", text)
    assert table["task"] == "text" and table["data"] == [str(text)]
    ngram, rnn = table["rows"]
    assert (ngram["family"], rnn["family"]) == ("ngram", "rnn")
    # One token per character (ngram's </s> stands for the newline): one unit per column.
    assert ngram["tokens_scored"] == rnn["tokens_scored"] == len(HELD_OUT)
    assert ngram["tokens"] == rnn["tokens"] == "char"
    for row in (ngram, rnn):
        assert row["perplexity"] == pytest.approx(2 ** row["bits_per_token"])
        assert row["cross_entropy"] == pytest.approx(row["bits_per_token"] * 0.6931471805599453)
        assert row["parameters"] > 0 and row["size_bytes"] > 0 and row["train_seconds"] > 0
    assert set(table["columns"]) == set(ngram)
    # The plain table, and the same drawn (-o): written outside the run, once.
    result = invoke("compare", tmp_path / "ng", trained["rnn"], "--data", text, "-o", "t.png")
    assert result.stdout.splitlines()[0].split()[:4] == ["run", "family", "kind", "tokens"]
    assert Image.open("t.png").size[0] > 600


def test_compare_refuses_word_against_character_perplexity(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    text = tmp_path / "held-out.txt"
    text.write_text(HELD_OUT)
    invoke("train", "ngram", "--set", "model.tokens=word", "--out", tmp_path / "words")
    result = invoke("compare", tmp_path / "words", trained["rnn"], "--data", text, ok=False)
    assert_error(result, "word tokens", "char tokens", "one column", "model.tokens")
    result = invoke("compare", tmp_path / "words", trained["gan"], "--data", text, ok=False)
    assert_error(result, "different tasks")


# -- n-gram growth (gentool info --data) ------------------------------------------------------


def test_info_shows_ngram_growth_and_unseen_heldout_ngrams(
    trained: dict[str, Path], corpus: Path, tmp_path: Path
) -> None:
    args = ["--set", "model.tokens=char", "--set", "model.order=4", "--data", corpus]
    invoke("train", "ngram", *args, "--out", tmp_path / "c4")
    # The training text itself: every one of its n-grams was seen.
    seen = invoke_json("info", tmp_path / "c4", "--data", corpus)["heldout"]
    assert [o["unseen"] for o in seen["ngrams"]] == [0, 0, 0, 0]
    assert seen["tokens"] == len(corpus.read_text())
    # New text: more of its n-grams are new the longer they are; a new character is OOV.
    text = tmp_path / "new.txt"
    text.write_text("the cow sat on a hat .\nzebras ate the mat .\n")
    heldout = invoke_json("info", tmp_path / "c4", "--data", text)["heldout"]["ngrams"]
    assert [o["order"] for o in heldout] == [1, 2, 3, 4]
    assert heldout[0]["unseen"] == 2  # 'z' and 'b' never occur in the corpus
    shares = [o["unseen_fraction"] for o in heldout]
    assert shares == sorted(shares) and shares[-1] > shares[0]
    table = invoke("info", tmp_path / "c4", "--data", text).stdout
    assert "possible (V^n)" in table and "held-out unseen" in table
    result = invoke("info", trained["rnn"], "--data", text, ok=False)
    assert_error(result, "no held-out statistics", "gentool evaluate")


# -- gradient flow (gentool evaluate --gradient-flow) -----------------------------------------


def test_gradient_flow_of_a_tanh_rnn_falls_with_the_distance(tmp_path: Path) -> None:
    # A few dozen steps teach a tanh RNN to lean on the last characters: the gradient
    # reaching the input k steps back then shrinks with k (vanishing gradients).
    settings = [*TINY_RNN, "--set", "model.cell=rnn", "--set", "train.max_steps=60"]
    invoke("train", "rnn", *settings, "--out", tmp_path / "tanh")
    out = invoke_json("evaluate", tmp_path / "tanh", "--gradient-flow", "--max-distance", "16")
    assert out["cell"] == "rnn" and out["distance"] == list(range(17))
    norms, relative = out["gradient_norm"], out["relative"]
    assert all(a > b for a, b in zip(norms[::4], norms[4::4], strict=False)), norms
    assert relative[0] == 1.0 and relative[-1] < 0.1 * relative[1]
    # The run's own held-out text by default: the end of its training file.
    assert out["data"]["tail"] == 0.1 and out["windows"] == 64
    # The table, and the figure: two panels side by side.
    result = invoke("evaluate", tmp_path / "tanh", "--gradient-flow", "-o", "grad.png")
    assert result.stdout.split()[:6] == ["k", "gradient", "norm", "relative", "to", "k=0"]
    assert Image.open("grad.png").size == (1200, 420)
    held_out = tmp_path / "held-out.txt"
    held_out.write_text(HELD_OUT)
    out = invoke_json("evaluate", tmp_path / "tanh", "--gradient-flow", "--data", held_out)
    # <|endoftext|> and 75 characters: 11 windows of 65 inputs and the token they predict.
    assert out["data"] == [str(held_out)] and out["windows"] == len(HELD_OUT) + 1 - 65


def test_gradient_flow_of_a_transformer_and_the_refusals(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    tiny = ["--set", "model.d_model=16", "--set", "model.num_layers=1", "--set",
            "model.num_heads=2", "--set", "model.d_ff=32", "--set", "model.context_length=16",
            "--set", "train.batch_size=2", "--set", "train.seq_len=16", "--set",
            "train.max_steps=2", "--set", "train.checkpoint_every=0"]  # fmt: skip
    invoke("train", "transformer", *tiny, "--out", tmp_path / "lm")
    out = invoke_json("evaluate", tmp_path / "lm", "--gradient-flow", "--max-distance", "15")
    assert out["family"] == "transformer" and len(out["gradient_norm"]) == 16
    assert all(v > 0 for v in out["gradient_norm"])  # attention reaches every position
    result = invoke("evaluate", tmp_path / "lm", "--gradient-flow", ok=False)
    assert_error(result, "--max-distance 64", "context of 16", "--max-distance 15")
    # A kind that embeds no tokens, in one line; nothing is drawn.
    invoke("train", "ngram", "--out", tmp_path / "ng")
    result = invoke("evaluate", tmp_path / "ng", "--gradient-flow", "-o", "g.png", ok=False)
    assert_error(result, "'ngram' models have no gradient flow", "rnn and transformer")
    result = invoke("evaluate", trained["gan"], "--gradient-flow", ok=False)
    assert_error(result, "'gan generator' models have no gradient flow", "input embeddings")
    assert not Path("g.png").exists()
    held_out = tmp_path / "short.txt"
    held_out.write_text("too short\n")
    result = invoke("evaluate", trained["rnn"], "--gradient-flow", "--data", held_out, ok=False)
    assert_error(result, "has 11 tokens", "smaller --max-distance")


# -- GAN equilibrium (gentool info on a GAN run) ----------------------------------------------


def _with_metrics(run: Path, out: Path, records: list[dict[str, float]]) -> Path:
    """A copy of ``run`` whose metrics.jsonl holds ``records`` (listed again in gentool.json,
    so the run still verifies): a GAN that trained as the records say."""
    shutil.copytree(run, out)
    metrics = out / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(r) + "\n" for r in records))
    meta = json.loads((out / "gentool.json").read_text())
    meta["files"]["metrics.jsonl"] = {
        "bytes": metrics.stat().st_size,
        "sha256": runs.sha256_file(metrics),
    }
    (out / "gentool.json").write_text(json.dumps(meta))
    return out


Curve = Callable[[int], float]  # the value logged at the i-th record


def _gan_log(d_real: Curve, d_fake: Curve, diversity: Curve) -> list[dict[str, float]]:
    """30 records of a GAN's log, a step of 10 apart."""
    return [
        {"step": 10 * (i + 1), "d_real": d_real(i), "d_fake": d_fake(i), "diversity": diversity(i)}
        for i in range(30)
    ]


def test_gan_equilibrium_settled_oscillating_diverged_collapsed(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    calm = [0.0, 0.01, -0.01, 0.005, -0.005]  # late noise, well under the tolerance
    settled = _gan_log(
        lambda i: 0.7 + (0.2 - 0.01 * i if i < 10 else calm[i % 5]),
        lambda i: 0.3 - (0.2 - 0.01 * i if i < 10 else calm[i % 5]),
        lambda i: 0.9 + calm[i % 5],
    )
    swinging = _gan_log(
        lambda i: 0.6 + 0.2 * math.sin(i * math.pi / 2),
        lambda i: 0.4 - 0.2 * math.sin(i * math.pi / 2),
        lambda i: 0.9,
    )
    won = _gan_log(lambda i: min(0.99, 0.6 + 0.05 * i), lambda i: max(0.01, 0.4 - 0.05 * i),
                   lambda i: 0.9)  # fmt: skip
    collapsed = _gan_log(lambda i: 0.7, lambda i: 0.3, lambda i: 0.9 if i < 15 else 0.1)
    found = {}
    for name, records in [("settled", settled), ("swinging", swinging), ("won", won),
                          ("collapsed", collapsed)]:  # fmt: skip
        run = _with_metrics(trained["gan"], tmp_path / name, records)
        found[name] = invoke_json("info", run)["equilibrium"]
    assert found["settled"]["verdict"] == "settled"
    assert found["settled"]["d_real"]["early"]["std"] > found["settled"]["d_real"]["late"]["std"]
    assert found["settled"]["diversity"]["collapsed"] is False
    assert found["swinging"]["verdict"] == "oscillating"
    assert found["swinging"]["d_real"]["verdict"] == "oscillating"
    assert found["won"]["verdict"] == "diverged" and "pinned" in found["won"]["reason"]
    assert found["collapsed"]["verdict"] == "settled"
    diversity = found["collapsed"]["diversity"]
    assert diversity["collapsed"] is True and diversity["late"] == pytest.approx(0.1)
    assert diversity["peak"] == pytest.approx(0.9)
    # The text output: one table, the diversity and the verdict.
    text = invoke("info", tmp_path / "collapsed").stdout
    assert "GAN equilibrium" in text and "diversity collapsed" in text
    assert "verdict: settled" in text


def test_gan_equilibrium_of_a_tiny_real_run(trained: dict[str, Path], tmp_path: Path) -> None:
    # Logged every 2 steps (a discriminator and a generator step: diversity needs both).
    settings = [*TINY_GAN, "--set", "train.max_steps=24"]
    invoke("train", "gan", *settings, "--out", tmp_path / "gan")
    found = invoke_json("info", tmp_path / "gan")["equilibrium"]
    assert found["verdict"] in ("settled", "oscillating", "diverged")
    for key in ("d_real", "d_fake"):
        late = found[key]["late"]
        assert 0 < late["mean"] < 1 and late["std"] >= 0
    assert found["diversity"]["late"] > 0
    # Too few values logged to tell (2): said, not guessed.
    few = invoke_json("info", trained["gan"])["equilibrium"]
    assert few["verdict"] is None and "too few logged values" in few["reason"]
    assert few["diversity"] is None
    # Non-GAN runs have no such summary.
    invoke("train", "ngram", "--out", tmp_path / "ng")
    assert "equilibrium" not in invoke_json("info", tmp_path / "ng")


def test_info_plot_draws_the_ngram_growth(
    trained: dict[str, Path], corpus: Path, tmp_path: Path
) -> None:
    args = ["--set", "model.tokens=char", "--set", "model.order=3", "--data", corpus]
    invoke("train", "ngram", *args, "--out", tmp_path / "c3")
    text = tmp_path / "new.txt"
    text.write_text("the cow sat on a hat .\nzebras ate the mat .\n")
    found = invoke_json("info", tmp_path / "c3", "--data", text, "--plot", "growth.png")
    assert [o["order"] for o in found["heldout"]["ngrams"]] == [1, 2, 3]
    # Two panels: the growth against V^n, and the unseen share of the held-out n-grams.
    assert Image.open("growth.png").size == (1200, 420)
    # Without held-out data, the growth alone.
    invoke("info", tmp_path / "c3", "--plot", "alone.png")
    assert Image.open("alone.png").size == (600, 420)
    result = invoke("info", tmp_path / "c3", "--plot", "alone.png", ok=False)
    assert_error(result, "--force")
    result = invoke("info", trained["rnn"], "--plot", "rnn.png", ok=False)
    assert_error(result, "'rnn' models have no n-gram table", "ngram run")
    assert not Path("rnn.png").exists()
