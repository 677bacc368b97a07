"""gentool train rnn|gan --init RUN: a new run goes on from a gentool run of the same kind,
with its [model] table and vocabulary, its weights, and its lineage in gentool.json."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import assert_error, assert_same_weights, invoke, invoke_json

torch = pytest.importorskip("torch")

RNN = ["--set", "train.batch_size=4", "--set", "train.seq_len=16", "--set", "train.eval_every=0",
       "--set", "train.checkpoint_every=0", "--set", "train.log_every=1"]  # fmt: skip
RNN_SIZES = ["--set", "model.hidden_size=32", "--set", "model.embedding_size=16",
             "--set", "model.num_layers=1", "--set", "model.tokens=word"]  # fmt: skip
GAN = ["--set", "train.batch_size=8", "--set", "train.sample_every=0",
       "--set", "train.eval_every=0"]  # fmt: skip


def test_rnn_goes_on_from_a_run_of_its_kind(corpus: Path, tmp_path: Path) -> None:
    corpus.write_text(corpus.read_text() * 8)
    invoke("train", "rnn", "--data", corpus, *RNN_SIZES, *RNN, "--set", "train.max_steps=30",
           "--out", "parent")  # fmt: skip
    other = tmp_path / "other.txt"
    other.write_text("the cat saw the log .\na dog sat on the mat .\n" * 10)
    # a vanishing learning rate: the child's weights are the parent's
    invoke("train", "rnn", "--init", "parent", "--data", other, *RNN, "--set", "train.lr=1e-12",
           "--set", "train.min_lr=0", "--set", "train.max_steps=1", "--out", "child")  # fmt: skip
    assert_same_weights(Path("parent"), Path("child"), atol=1e-6)
    assert Path("child/tokenizer.json").read_bytes() == Path("parent/tokenizer.json").read_bytes()
    details = invoke_json("info", "child")
    assert details["recipe"]["model"]["hidden_size"] == 32  # taken from the parent
    assert details["recipe"]["model"]["tokens"] == "word"
    assert details["recipe"]["model"]["init"] == "parent"
    parent = details["parent"]
    assert parent["source"] == "parent" and parent["kind"] == "rnn" and parent["sha256"]
    assert parent["data"] == [{"name": corpus.name, "sha256": parent["data"][0]["sha256"]}]
    assert details["data"]["train"][0]["path"].endswith("other.txt")  # its own data

    invoke("train", "rnn", "--init", "parent", "--data", other, *RNN, "--set", "train.lr=0.01",
           "--set", "train.max_steps=20", "--out", "tuned")  # fmt: skip
    assert invoke_json("generate", "tuned", "--max-tokens", "4", "--seed", "1")["samples"]

    result = invoke("train", "rnn", "--init", "parent", "--data", other,
                    "--set", "model.hidden_size=64", ok=False)  # fmt: skip
    assert_error(result, "model.hidden_size is fixed by the run it starts from", "drop")


def test_init_refuses_other_kinds_and_what_is_no_run(corpus: Path) -> None:
    invoke("train", "ngram", "--data", corpus, "--out", "ng")
    assert_error(invoke("train", "rnn", "--init", "ng", "--data", corpus, ok=False),
                 "'ng' is a ngram run", "a rnn starts from a run of its own kind")  # fmt: skip
    Path("plain").mkdir()
    assert_error(invoke("train", "rnn", "--init", "plain", "--data", corpus, ok=False),
                 "not a gentool run")  # fmt: skip
    assert_error(invoke("train", "ngram", "--init", "ng", "--data", corpus, ok=False),
                 "the ngram cannot start from a pretrained model")  # fmt: skip
    assert not Path("runs").exists()


def test_gan_goes_on_from_a_run_of_its_kind(tmp_path: Path) -> None:
    invoke("train", "gan", *GAN, "--set", "model.width=8", "--set", "model.latent_size=8",
           "--set", "train.max_steps=2", "--out", "parent")  # fmt: skip
    tiny_lr = ["--set", "train.lr=1e-12", "--set", "train.min_lr=1e-12"]
    invoke("train", "gan", "--init", "parent", *GAN, *tiny_lr, "--set", "train.max_steps=1",
           "--out", "child")  # fmt: skip
    # G and D's weights barely move; their batch-norm counters go on from the parent's
    from safetensors.torch import load_file

    before, after = load_file("parent/model.safetensors"), load_file("child/model.safetensors")
    assert before.keys() == after.keys()
    for key, value in before.items():
        if key.endswith("num_batches_tracked"):
            assert after[key] >= value > 0, key  # (the average copies its count)
        elif not key.endswith(("running_mean", "running_var")):
            assert torch.allclose(value, after[key], atol=1e-5), key
    details = invoke_json("info", "child")
    assert details["recipe"]["model"]["width"] == 8 and details["parent"]["kind"] == "generator"
    invoke("generate", "child", "-n", "4", "--grid", tmp_path / "grid.png")
    assert (tmp_path / "grid.png").is_file()

    result = invoke("train", "gan", "--init", "parent", *GAN, "--set", "train.ema_decay=0",
                    ok=False)  # fmt: skip
    assert_error(result, "its networks have ema=True", "ema=False")
    result = invoke("train", "gan", "--init", "parent", "--set", "model.width=16", ok=False)
    assert_error(result, "model.width is fixed by the run it starts from")


def assert_parent_weights(parent: Path, child: Path) -> None:
    """The child (trained one step at a vanishing learning rate) holds the parent's weights:
    the parent was trained with another seed, so a child from scratch would not."""
    from safetensors.torch import load_file

    before, after = (
        load_file(str(parent / "model.safetensors")),
        load_file(str(child / "model.safetensors")),
    )
    assert before.keys() == after.keys()
    for key, value in before.items():
        if not key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.allclose(value.float(), after[key].float(), atol=1e-5), key


def sets(values: dict[str, object]) -> list[str]:
    return [a for key, value in values.items() for a in ("--set", f"{key}={value}")]


STILL = {"train.lr": 1e-12, "train.min_lr": 1e-12, "train.max_steps": 1}


def test_every_gan_kind_goes_on_from_a_run_of_its_kind(tmp_path: Path) -> None:
    """restorer, paired, cyclegan (both directions): a new run from the parent's networks,
    the parent recorded; what the data decides must agree; another kind is refused."""
    from test_gan_translate import silhouettes

    a, b = silhouettes(tmp_path)
    train = {"train.batch_size": 4, "train.sample_every": 0, "train.checkpoint_every": 0,
             "train.val_fraction": 0.0}  # fmt: skip
    images = {"model.image_size": 16, "model.width": 4, **train}
    runs = {
        "restorer": ["--data", b, *sets({**images, "model.task": "upscale",
                                         "model.upscale_factor": 2})],
        "paired": ["--data", a, "--target", b, *sets({**images, "model.task": "paired"})],
        "cyclegan": ["--data", a, "--target", b, *sets({**images, "model.task": "cyclegan"})],
    }  # fmt: skip
    for kind, args in runs.items():
        invoke("train", "gan", *args, "--set", "train.max_steps=2", "--seed", "7",
               "--out", f"{kind}-parent")  # fmt: skip
        data = [x for x in args if isinstance(x, Path) or x in ("--data", "--target")]
        invoke("train", "gan", "--init", f"{kind}-parent", *data,
               *sets(train | STILL), "--out", f"{kind}-child")  # fmt: skip
        assert_parent_weights(Path(f"{kind}-parent"), Path(f"{kind}-child"))
        details = invoke_json("info", f"{kind}-child")
        assert details["parent"]["kind"] == kind and details["parent"]["sha256"]
        assert details["recipe"]["model"]["init"] == f"{kind}-parent"
        assert details["kind"] == kind  # (model.task is the parent's)

    result = invoke("train", "gan", "--init", "paired-parent", "--data", b, "--target", a,
                    "--set", "model.task=paired", ok=False)  # fmt: skip
    assert_error(result, "its networks have channels_a=", "train on data like its own")
    result = invoke("train", "gan", "--init", "restorer-parent", "--data", a, "--target", b,
                    "--set", "model.task=cyclegan", ok=False)  # fmt: skip
    assert_error(result, "'restorer-parent' is a gan restorer run")
    result = invoke("train", "gan", "--init", "cyclegan-parent", "--data", a, "--target", b,
                    "--set", "model.task=cyclegan", "--set", "model.width=8", ok=False)  # fmt: skip
    assert_error(result, "model.width is fixed by the run it starts from")


def test_music_kinds_go_on_from_a_run_of_their_kind(tmp_path: Path) -> None:
    """The gan composer and the rnn over REMI tokens (its music tokenizer the parent's)."""
    pytest.importorskip("miditok")
    from gentool.testing import write_sample_music

    music = write_sample_music(tmp_path / "music", 8, bars=8, seed=0)
    other = write_sample_music(tmp_path / "other", 6, bars=8, seed=1)
    composer = {"train.batch_size": 8, "train.sample_every": 0, "train.eval_every": 0}
    rnn = {"train.batch_size": 4, "train.seq_len": 16, "train.eval_every": 0,
           "train.checkpoint_every": 0}  # fmt: skip
    invoke("train", "gan", "--data", music, *sets(composer), "--set", "model.width=8",
           "--set", "model.latent_size=16", "--set", "train.max_steps=2",
           "--seed", "7", "--out", "composer-parent")  # fmt: skip
    invoke("train", "rnn", "--data", music, *sets(rnn), "--set", "model.hidden_size=16",
           "--set", "model.embedding_size=8", "--set", "model.num_layers=1",
           "--set", "model.programs=false", "--set", "train.max_steps=4", "--seed", "7",
           "--out", "rnn-parent")  # fmt: skip
    invoke("train", "gan", "--init", "composer-parent", "--data", music,
           *sets(composer | STILL), "--out", "composer-child")  # fmt: skip
    invoke("train", "rnn", "--init", "rnn-parent", "--data", other, *sets(rnn | STILL),
           "--out", "rnn-child")  # fmt: skip
    assert_parent_weights(Path("composer-parent"), Path("composer-child"))
    assert_same_weights(Path("rnn-parent"), Path("rnn-child"), atol=1e-6)
    tokenizer = "music_tokenizer.json"
    assert Path("rnn-child", tokenizer).read_bytes() == Path("rnn-parent", tokenizer).read_bytes()
    for kind in ("composer", "rnn"):
        details = invoke_json("info", f"{kind}-child")
        assert details["parent"]["source"] == f"{kind}-parent" and details["parent"]["sha256"]
    assert invoke_json("info", "rnn-child")["recipe"]["model"]["programs"] is False

    result = invoke("train", "rnn", "--init", "rnn-parent", "--data", music,
                    "--set", "model.hidden_size=32", ok=False)  # fmt: skip
    assert_error(result, "model.hidden_size is fixed by the run it starts from")
    result = invoke("train", "gan", "--init", "composer-parent", "--data", music,
                    "--set", "train.ema_decay=0", ok=False)  # fmt: skip
    assert_error(result, "its networks have ema=True", "ema=False")
