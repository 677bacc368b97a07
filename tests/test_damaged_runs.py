"""Damaged and hostile runs and checkpoints (a run is user data: edited, synced, downloaded).

Each gives one ``Error:`` line naming the run and the fix: nothing outside the run is
read, nothing is allocated beyond what the weights file holds, no pickle is loaded, and
a checkpoint is complete or refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import resource
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import assert_error, invoke, run_gentool

from gentool import api, runs
from gentool.testing import fuzz_run, write_sample_corpus

READERS = [["info", "r"], ["generate", "r", "-n", "1", "--max-tokens", "5"]]


# -- helpers ------------------------------------------------------------------------------


def copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to, symlinks=True)
    return to


def edit_json(path: Path, edit: Callable[[Any], Any]) -> None:
    """Change the JSON in ``path`` in place with ``edit`` (its return value is ignored)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    edit(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")


def rehash(run: Path, *names: str) -> None:
    """Record the present size and sha256 of ``names`` in gentool.json, as a deliberate
    edit would, so that the checksums no longer catch the change."""

    def update(meta: dict[str, Any]) -> None:
        for name in names:
            data = (run / name).read_bytes()
            meta["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    edit_json(run / "gentool.json", update)


def lie(run: Path, edit: Callable[[dict[str, Any]], Any]) -> None:
    """Edit the run's config.json and update its checksum to match."""
    edit_json(run / "config.json", edit)
    rehash(run, "config.json")


def readers(run: str = "r", data: Path | None = None) -> list[list[str]]:
    commands = [["info", run], ["generate", run, "-n", "1", "--max-tokens", "5"]]
    if data is not None:
        commands.append(["evaluate", run, "--data", str(data)])
    return commands


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_corpus(tmp_path_factory.mktemp("data") / "corpus.txt", count=60)


@pytest.fixture(scope="module")
def ngram_run(tmp_path_factory: pytest.TempPathFactory, corpus_file: Path) -> Path:
    out = tmp_path_factory.mktemp("ngram") / "run"
    api.train("ngram", data=[corpus_file], out=out)
    return out


@pytest.fixture
def r(ngram_run: Path, tmp_path: Path) -> Path:
    """A fresh copy of the n-gram run, at ./r."""
    return copy_run(ngram_run, tmp_path / "r")


# -- gentool.json against its schema ------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda m: m.update(files=list(m["files"])), "'files' is a list, not an object"),
        (lambda m: m.update(files=None), "'files' is null, not an object"),
        (lambda m: m.pop("files"), "has no 'files'"),
        (lambda m: m["files"]["vocab.json"].pop("bytes"), "entry 'vocab.json' needs 'bytes'"),
        (lambda m: m["files"]["vocab.json"].update(sha256=7), "needs 'bytes' (its size) and"),
        (lambda m: m.update(recipe="ngram"), "'recipe' is a string, not an object"),
        (lambda m: m.pop("family"), "has no 'family'"),
        (lambda m: m.update(family=3), "'family' is an integer, not a string"),
        (lambda m: m.update(tasks="generate-text"), "'tasks' is a string, not a list"),
        (lambda m: m.update(format_version="1"), "'format_version' is '1', not a positive"),
        (lambda m: m.pop("format_version"), "'format_version' is None"),
        (lambda m: m.update(files={"": {}}), "entry '' needs 'bytes'"),
    ],
)
def test_gentool_json_is_checked_against_its_schema(
    r: Path, corpus_file: Path, edit: Callable[[Any], Any], fragment: str
) -> None:
    edit_json(r / "gentool.json", edit)
    for command in readers(data=corpus_file):
        assert_error(
            invoke(*command, ok=False), "run 'r' is damaged", fragment, "restore it from a copy"
        )


def test_gentool_json_that_is_not_json_or_not_an_object(r: Path) -> None:
    (r / "gentool.json").write_bytes(b'{"family": "ngram", \xff')
    assert_error(invoke("info", "r", ok=False), "run 'r' is damaged: gentool.json is not valid")
    (r / "gentool.json").write_text("[]")
    assert_error(invoke("info", "r", ok=False), "gentool.json holds a list, not an object")


def test_a_run_of_a_newer_format_asks_for_a_newer_gentool(r: Path) -> None:
    edit_json(r / "gentool.json", lambda m: m.update(format_version=999))
    assert_error(
        invoke("generate", "r", ok=False),
        "run 'r' was made by a newer gentool (format 999; gentool",
        "reads format 2); upgrade gentool",
    )


def test_a_swapped_family_is_a_family_mismatch(r: Path) -> None:
    edit_json(r / "gentool.json", lambda m: m.update(family="rnn"))
    assert_error(
        invoke("info", "r", ok=False),
        "gentool.json says family 'rnn' but its recipe is for 'ngram' (a family mismatch)",
    )
    # Both family fields changed: the recipe's settings still say which family it is.
    edit_json(r / "gentool.json", lambda m: m["recipe"].update(family="rnn"))
    assert_error(
        invoke("generate", "r", ok=False),
        "gentool.json says family 'rnn' but its recipe is for family 'ngram' (a family mismatch)",
    )


# -- nothing outside the run --------------------------------------------------------------


@pytest.mark.parametrize("entry", ["../secret.txt", "ABSOLUTE", "sub/vocab.json", ".."])
def test_listed_paths_outside_the_run_are_refused_before_anything_is_read(
    r: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: str
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n")
    name = str(secret) if entry == "ABSOLUTE" else entry
    # The true size and sha256: the checksum check must not become an oracle.
    record = {"bytes": secret.stat().st_size, "sha256": runs.sha256_file(secret)}
    edit_json(r / "gentool.json", lambda m: m["files"].update({name: record}))
    hashed: list[Path] = []
    sha256_file = runs.sha256_file
    monkeypatch.setattr(runs, "sha256_file", lambda p: hashed.append(p) or sha256_file(p))
    for command in READERS:
        error = assert_error(
            invoke(*command, ok=False),
            "run 'r' is damaged: gentool.json lists",
            "which is not a file name in the run",
        )
        assert str(record["bytes"]) not in error.replace(name, "")
    assert hashed == []  # nothing hashed: refused before verify


def test_links_out_of_the_run_are_refused(r: Path, ngram_run: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('["<unk>", "<s>", "</s>"]')
    (r / "vocab.json").unlink()
    (r / "vocab.json").symlink_to(secret)
    rehash(r, "vocab.json")  # even with the checksum of the outside file
    for command in READERS:
        assert_error(
            invoke(*command, ok=False), "run 'r' is damaged: 'vocab.json' is a link to something"
        )
    (r / "gentool.json").rename(tmp_path / "elsewhere.json")  # its own record too
    (r / "gentool.json").symlink_to(tmp_path / "elsewhere.json")
    assert_error(invoke("info", "r", ok=False), "'gentool.json' is a link to something outside")
    (r / "gentool.json").unlink()
    (tmp_path / "elsewhere.json").rename(r / "gentool.json")
    # A link inside the run, and a run reached through a link (runs/latest -> r), are fine.
    (r / "vocab.json").unlink()
    shutil.copy(ngram_run / "vocab.json", r / ".vocab.json")
    (r / "vocab.json").symlink_to(".vocab.json")
    rehash(r, "vocab.json")
    (tmp_path / "latest").symlink_to("r")
    invoke("generate", "latest", "-n", "1")


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model-extra.safetensors", "notes.txt"])
def test_unlisted_files_are_refused(r: Path, name: str) -> None:
    (r / name).write_bytes(b"\x80\x04K\x01.")
    for command in READERS:
        assert_error(
            invoke(*command, ok=False),
            f"run 'r' is damaged: it holds '{name}', which its gentool.json does not list",
            "move that file out of the run",
        )
    (r / name).unlink()
    (r / ".DS_Store").write_bytes(b"\0")  # hidden files and folders are no part of a run
    (r / "checkpoints").mkdir()
    invoke("generate", "r", "-n", "1")


def test_force_over_a_hostile_run_deletes_nothing_outside_it(
    r: Path, tmp_path: Path, corpus_file: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (r / "linked").symlink_to(outside)
    (r / "model.safetensors").unlink()
    (r / "model.safetensors").symlink_to(outside / "keep.txt")
    edit_json(r / "gentool.json", lambda m: m["files"].update({"../outside/keep.txt": {}}))
    invoke("train", "ngram", "--data", corpus_file, "--out", "r", "--force")
    assert (outside / "keep.txt").read_text() == "keep"
    invoke("generate", "r", "-n", "1")


# -- the config agrees with the weights before anything is built ---------------------------


def test_ngram_tables_must_match_the_config(r: Path) -> None:
    lie(r, lambda c: c["lm"].update(order=5))
    assert_error(
        invoke("generate", "r", ok=False),
        "'model.safetensors' does not match config.json: the config's model needs tensor "
        "'ngram.3.backoff', absent from the file",
    )
    lie(r, lambda c: c["lm"].update(order=10**12))
    assert_error(invoke("info", "r", ok=False), "its n-gram config is incomplete", "not 1-10")


def set_ngram_table(run: Path, table: str, value: float, index: Any = 1) -> None:
    """Set entries of one n-gram table and record the new checksum (a deliberate edit)."""
    from safetensors.numpy import load_file

    tensors = load_file(str(run / "model.safetensors"))
    tensors[table] = tensors[table].copy()
    tensors[table][index] = np.float32(value)
    (run / "model.safetensors").unlink()
    runs.save_tensors(run / "model.safetensors", tensors, "ngram")
    rehash(run, "model.safetensors")


@pytest.mark.parametrize(
    ("table", "value", "fragment"),
    [
        ("ngram.2.logprob", math.nan, "is NaN or +infinity"),
        ("ngram.1.backoff", math.inf, "is NaN or +infinity"),
        # the bounds ARPA import holds a file to: else evaluate reports a perplexity of 0
        ("ngram.1.logprob", 3.0, "a log-prob is above 0"),
        ("ngram.1.backoff", 1e30, "a back-off is above 99"),
    ],
)
def test_ngram_tables_a_model_cannot_hold_are_refused(
    r: Path, corpus_file: Path, table: str, value: float, fragment: str
) -> None:
    set_ngram_table(r, table, value)
    for command in [*readers(data=corpus_file), ["export", "r", "--format", "arpa", "-o", "x"]]:
        assert_error(
            invoke(*command, ok=False),
            "run 'r' is damaged: its n-gram model is inconsistent",
            fragment,
        )


def test_ngram_log_probs_past_any_real_model_give_an_infinite_perplexity(
    r: Path, corpus_file: Path
) -> None:
    """-1e38 per token: 10 ** (1e38 / tokens) overflows a float; the result is infinite,
    which --json writes as null."""
    for order in (1, 2, 3):
        set_ngram_table(r, f"ngram.{order}.logprob", -1e38, index=slice(None))
    result = invoke("evaluate", "r", "--data", corpus_file, "--json")
    assert json.loads(result.stdout)["metrics"]["perplexity"] is None
    assert "inf" in invoke("evaluate", "r", "--data", corpus_file).stdout


# -- neural runs ----------------------------------------------------------------------------

RNN = [
    "model.hidden_size=32", "model.embedding_size=16", "model.num_layers=1",
    "model.dropout=0.0", "train.batch_size=4", "train.seq_len=16", "train.warmup_steps=1",
    "train.log_every=2", "train.eval_every=0", "train.max_steps=4",
    "train.checkpoint_every=2",
]  # fmt: skip


@pytest.fixture(scope="module")
def rnn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny character LSTM with checkpoints at steps 2 and 4."""
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("rnn") / "run"
    api.train("rnn", overrides=RNN, out=out)
    return out


@pytest.fixture(scope="module")
def neural_runs(
    tmp_path_factory: pytest.TempPathFactory, rnn_run: Path, corpus_file: Path
) -> dict[str, Path]:
    """One tiny run of every neural kind: rnn, transformer LM and translator, gan
    generator and restorer."""
    root = tmp_path_factory.mktemp("neural")
    pairs = root / "pairs.tsv"
    lines = corpus_file.read_text(encoding="utf-8").splitlines()
    pairs.write_text("".join(f"{a}\t{a.upper()}\n" for a in lines), encoding="utf-8")
    tiny = ["train.max_steps=2", "train.checkpoint_every=0", "train.warmup_steps=1"]
    transformer = [*tiny, "model.d_model=16", "model.num_layers=1", "model.num_heads=2"]
    transformer += ["model.d_ff=32", "model.context_length=64", "train.batch_size=4"]
    gan = [*tiny, "model.width=8", "train.batch_size=4", "train.val_fraction=0"]
    api.train("transformer", overrides=[*transformer, "train.seq_len=16"], out=root / "lm")
    api.train(
        "transformer",
        overrides=[*transformer, "model.arch=encoder-decoder", "model.vocab_size=300"],
        data=[pairs],
        out=root / "mt",
    )
    api.train("gan", overrides=[*gan, "model.latent_size=8"], out=root / "gan")
    api.train("gan", overrides=[*gan, "model.task=upscale", "model.image_size=16"], out=root / "up")
    return {"rnn": rnn_run, **{name: root / name for name in ("lm", "mt", "gan", "up")}}


LIES = [  # (run, config.json change) each claiming far more than the weights file holds
    ("rnn", {"hidden_size": 1 << 16}),
    ("rnn", {"num_layers": 100_000}),
    ("rnn", {"vocab_size": 1 << 40}),  # "Storage size calculation overflowed", before
    ("lm", {"n_embd": 1 << 20}),
    ("lm", {"n_layer": 10**6}),
    ("lm", {"n_positions": 1 << 30}),
    ("mt", {"d_model": 1 << 16}),
    ("mt", {"max_position_embeddings": 1 << 28}),  # positions recomputed, not saved
    ("gan", {"latent_size": 1 << 40}),
    ("gan", {"width": 1 << 20}),
    ("up", {"width": 1 << 30}),
    ("up", {"depth": 18, "image_size": 1 << 20}),
]


@pytest.mark.parametrize(("kind", "change"), LIES, ids=[f"{k}-{next(iter(c))}" for k, c in LIES])
def test_a_config_claiming_more_than_the_weights_is_refused_before_building(
    neural_runs: dict[str, Path], tmp_path: Path, kind: str, change: dict[str, int]
) -> None:
    run = copy_run(neural_runs[kind], tmp_path / "r")
    lie(run, lambda c: c.update(change))
    command = ["translate", "r", "a dog"] if kind == "mt" else ["info", "r"]
    error = assert_error(invoke(*command, ok=False), "run 'r' is damaged")
    assert "config.json" in error and "restore it from a copy, or retrain it" in error


def test_a_translator_of_real_size_is_not_taken_for_a_lie(tmp_path: Path) -> None:
    """The Multi30k recipe's translator: its shared 8,000 x 256 vocabulary is registered
    under several names as it is built, 3-4x the numbers its file holds."""
    from transformers import MarianConfig, MarianMTModel

    from gentool.neural.weights import check_weights

    config = MarianConfig(vocab_size=8000, d_model=256, encoder_layers=1, decoder_layers=1,
                          encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=32,
                          pad_token_id=0, decoder_start_token_id=0, tie_word_embeddings=True,
                          share_encoder_decoder_embeddings=True)  # fmt: skip
    MarianMTModel(config).save_pretrained(tmp_path)
    check_weights(lambda: MarianMTModel(config), tmp_path / "model.safetensors")


def test_a_lying_config_is_refused_under_a_memory_cap(rnn_run: Path, tmp_path: Path) -> None:
    """Built for real, this model would need 3 GB; the process may have 2.5 GB in all."""
    run = copy_run(rnn_run, tmp_path / "r")
    lie(run, lambda c: c.update(vocab_size=1 << 24))
    cap = 5 << 29

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    assert_error(
        run_gentool("generate", "r", "-n", "1", preexec_fn=limit, cwd=tmp_path),
        "run 'r' is damaged: config.json describes a model far larger than",
    )


def test_a_config_that_is_not_a_model_is_refused(
    neural_runs: dict[str, Path], tmp_path: Path
) -> None:
    for kind, change in [("rnn", {"cell": 7}), ("gan", {"channels": "x"}), ("up", {"task": "x"})]:
        run = copy_run(neural_runs[kind], tmp_path / kind)
        lie(run, lambda c, change=change: c.update(change))
        assert_error(invoke("info", kind, ok=False), f"run '{kind}' is damaged", "config.json")
    run = copy_run(neural_runs["rnn"], tmp_path / "other")
    lie(run, lambda c: c.update(model_type="gpt2"))
    assert_error(
        invoke("info", "other", ok=False),
        "config.json describes a 'gpt2' model, not 'gentool_rnn' (a family mismatch)",
    )
    run = copy_run(neural_runs["lm"], tmp_path / "lm")
    (run / "config.json").write_text("[]")
    rehash(run, "config.json")
    assert_error(invoke("info", "lm", ok=False), "config.json does not hold a JSON object")


def test_a_hugging_face_run_never_loads_a_pickle(rnn_run: Path, tmp_path: Path) -> None:
    """With model.safetensors gone and a pytorch_model.bin listed in its place, transformers
    would fall back to the pickle: gentool loads safetensors only."""
    import torch

    run = copy_run(rnn_run, tmp_path / "r")
    (run / "model.safetensors").unlink()
    torch.save({"x": torch.zeros(1)}, run / "pytorch_model.bin")
    edit_json(run / "gentool.json", lambda m: m["files"].pop("model.safetensors"))
    rehash(run, "pytorch_model.bin")
    assert_error(invoke("generate", "r", ok=False), "'r/model.safetensors' is missing")


# -- checkpoints on --resume -----------------------------------------------------------------

RESUME = ["train", "--resume", "--out", "r", "--set", "train.max_steps=6", "--override"]


def damage_file(name: str) -> Callable[[Path], Any]:
    return lambda step: (step / name).write_bytes((step / name).read_bytes()[:100])


def garble_file(name: str) -> Callable[[Path], Any]:
    """Bytes of the same size, so only loading the file tells."""

    def garble(step: Path) -> None:
        size = (step / name).stat().st_size
        (step / name).write_bytes(np.random.default_rng(0).bytes(size))

    return garble


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda s: (s / "trainer.json").write_text("{"), "trainer.json is not valid JSON"),
        (lambda s: (s / "trainer.json").write_text('{"step": 4}'), "'seconds' is None"),
        (lambda s: edit_json(s / "trainer.json", lambda t: t.update(step=2)), "'step' is 2"),
        (damage_file("model.safetensors"), "'model.safetensors' is truncated or corrupt (100"),
        (damage_file("optimizer.bin"), "'optimizer.bin' is truncated or corrupt (100 bytes"),
        (garble_file("optimizer.bin"), "it does not load (a file of it is not a pickle of"),
        (lambda s: (s / "carry.safetensors").unlink(), "'carry.safetensors' is missing"),
        (lambda s: (s / "random_states_0.pkl").unlink(), "'random_states_0.pkl' is missing"),
    ],
)
def test_a_damaged_checkpoint_is_refused_naming_the_fallback(
    rnn_run: Path, tmp_path: Path, damage: Callable[[Path], Any], fragment: str
) -> None:
    run = copy_run(rnn_run, tmp_path / "r")
    meta = (run / "gentool.json").read_bytes()
    damage(run / "checkpoints" / "step-4")
    assert_error(
        invoke(*RESUME, ok=False),
        "checkpoint r/checkpoints/step-4 is damaged: ",
        fragment,
        "; delete r/checkpoints/step-4 to resume from r/checkpoints/step-2",
    )
    assert (run / "gentool.json").read_bytes() == meta  # the finished run is as it was
    assert not (run / "training.json").exists()
    shutil.rmtree(run / "checkpoints" / "step-4")  # as the message says
    invoke(*RESUME)
    assert json.loads((run / "gentool.json").read_text())["metrics"]["steps"] == 6


def test_the_only_checkpoint_damaged_says_to_train_again(rnn_run: Path, tmp_path: Path) -> None:
    run = copy_run(rnn_run, tmp_path / "r")
    shutil.rmtree(run / "checkpoints" / "step-2")
    (run / "checkpoints" / "step-4" / "carry.safetensors").unlink()
    assert_error(
        invoke(*RESUME, ok=False),
        "'carry.safetensors' is missing; it is the only one: train the run again with --force",
    )


def test_a_damaged_run_record_is_refused_on_resume(rnn_run: Path, tmp_path: Path) -> None:
    run = copy_run(rnn_run, tmp_path / "r")
    for text, fragment in [("{", "is not valid JSON"), ("[]", "holds no recipe with a family")]:
        (run / "gentool.json").write_text(text)
        assert_error(
            invoke(*RESUME, ok=False),
            f"'r/gentool.json' {fragment}",
            "the run's recorded recipe is lost",
        )


# -- fuzzing ----------------------------------------------------------------------------------


def test_fuzzed_ngram_runs_fail_cleanly(ngram_run: Path, corpus_file: Path, tmp_path: Path) -> None:
    """300 damaged copies (seeded): info, generate and evaluate exit 0, or 1 with one Error:
    line; no traceback, nothing written."""
    outcomes = fuzz_run(
        ngram_run,
        [
            ["info", "RUN", "--json"],
            ["generate", "RUN", "-n", "2", "--max-tokens", "8", "--seed", "1"],
            ["evaluate", "RUN", "--data", corpus_file],
        ],
        tmp_path / "fuzz",
        count=300,
    )
    assert outcomes["1"] > outcomes["0"] > 0  # most damage is caught; some is harmless


NEURAL_FUZZ = {
    "rnn": [["generate", "RUN", "-n", "1", "--max-tokens", "4", "--seed", "1"]],
    "lm": [["evaluate", "RUN", "--data", "CORPUS"]],
    "mt": [["translate", "RUN", "a dog runs"]],
    "gan": [["generate", "RUN", "-n", "2", "--seed", "1", "--grid", "grid.png"]],
    "up": [["info", "RUN"]],
}


@pytest.mark.parametrize("kind", NEURAL_FUZZ)
def test_fuzzed_neural_runs_fail_cleanly(
    neural_runs: dict[str, Path], corpus_file: Path, tmp_path: Path, kind: str
) -> None:
    """A few dozen damaged copies of each kind of neural run (more with a changed seed
    while working on a loader: ``fuzz_run(..., count=1000, seed=N)``)."""
    commands = [[corpus_file if a == "CORPUS" else a for a in c] for c in NEURAL_FUZZ[kind]]
    work = tmp_path / "fuzz"
    outcomes = fuzz_run(neural_runs[kind], commands, work, count=40, seed=1, outputs=["grid.png"])
    assert outcomes["1"] > 0
