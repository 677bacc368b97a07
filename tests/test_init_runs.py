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
