"""The rnn family and the training engine, end to end: train, save, reload with the Auto
classes, generate, evaluate; checkpoints, resume, signals, non-finite losses, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import (
    SHARED_DATA,
    assert_error,
    assert_same_weights,
    interrupt_at,
    interruptible,
    invoke,
    invoke_json,
    run_gentool,
)

torch = pytest.importorskip("torch")

from safetensors.torch import load_file  # noqa: E402

from gentool import api, runs  # noqa: E402
from gentool.tasks import GenerationRequest  # noqa: E402
from gentool_rnn.task import StreamTask  # noqa: E402

# A model and a run small enough for a few seconds on CPU.
TINY = [
    "--set", "model.hidden_size=32",
    "--set", "model.embedding_size=16",
    "--set", "model.num_layers=1",
    "--set", "model.dropout=0.0",
    "--set", "train.batch_size=4",
    "--set", "train.seq_len=16",
    "--set", "train.warmup_steps=2",
    "--set", "train.log_every=2",
    "--set", "train.eval_every=4",
    "--set", "train.eval_batches=2",
]  # fmt: skip


def tiny(steps: int = 8, checkpoint_every: int = 4) -> list[str]:
    return [
        *TINY,
        "--set",
        f"train.max_steps={steps}",
        "--set",
        f"train.checkpoint_every={checkpoint_every}",
    ]


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny character LSTM on the embedded corpus, shared by the read-only tests."""
    out = tmp_path_factory.mktemp("rnn") / "run"
    api.train("rnn", overrides=[a for a in tiny(8) if a != "--set"], out=out)
    return out


def test_train_writes_a_hugging_face_run(trained: Path) -> None:
    names = {p.name for p in trained.iterdir()}
    assert {"gentool.json", "model.safetensors", "config.json", "tokenizer.json"} <= names
    assert {"tokenizer_config.json", "generation_config.json", "metrics.jsonl"} <= names
    assert "training.json" not in names  # only while training
    assert {p.name for p in (trained / "checkpoints").iterdir()} == {"step-4", "step-8"}
    runs.RunDirectory(trained).verify()
    *lines, summary = [
        json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in lines if "loss" in r] == [2, 4, 6, 8]
    assert all(r["tokens_per_s"] > 0 for r in lines if "loss" in r)
    assert [r["step"] for r in lines if "val_loss" in r] == [4, 8]
    assert summary["steps"] == 8 and summary["val_loss"] > 0
    # Eight steps of Adam at lr 3e-3 already beat the uniform guess over the vocabulary.
    vocab = json.loads((trained / "config.json").read_text())["vocab_size"]
    assert summary["val_loss"] < torch.log(torch.tensor(float(vocab))).item()


def test_run_loads_with_the_auto_classes(trained: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import gentool_rnn.modeling  # noqa: F401

    model = AutoModelForCausalLM.from_pretrained(trained)
    tokenizer = AutoTokenizer.from_pretrained(trained)
    ids = tokenizer("ROMEO:", return_tensors="pt").input_ids
    assert tokenizer.decode(ids[0]) == "ROMEO:"
    torch.manual_seed(0)
    out = model.generate(ids, max_new_tokens=5, do_sample=True)
    assert out.shape == (1, ids.shape[1] + 5)
    ours = api.load(trained)
    assert torch.equal(ours.model(input_ids=ids).logits, model(input_ids=ids).logits)


def test_generate_is_repeatable_with_a_seed(trained: Path) -> None:
    args = ["generate", trained, "--seed", "3", "-n", "2", "--max-tokens", "20"]
    first = invoke_json(*args)["samples"]
    assert first == invoke_json(*args)["samples"]
    assert len(first) == 2 and all(len(s) == 20 for s in first)  # char tokens, none banned
    other = invoke_json("generate", trained, "--seed", "4", "-n", "2", "--max-tokens", "20")
    assert other["samples"] != first
    prompted = invoke_json("generate", trained, "--prompt", "KING", "--max-tokens", "5")
    assert prompted["samples"][0].startswith("KING") and len(prompted["samples"][0]) == 9


def test_greedy_and_beam_search(trained: Path) -> None:
    greedy = invoke_json("generate", trained, "--temperature", "0", "--max-tokens", "12")
    assert greedy == invoke_json("generate", trained, "--temperature", "0", "--max-tokens", "12")
    beams = invoke_json("generate", trained, "--beams", "4", "-n", "2", "--max-tokens", "12")
    assert len(beams["samples"]) == 2 and beams["samples"][0] != beams["samples"][1]
    result = invoke("generate", trained, "--beams", "2", "-n", "3", ok=False)
    assert_error(result, "--beams 2 cannot return 3 samples")


def test_evaluate_counts_tokens_as_ngram_does(trained: Path, tmp_path: Path) -> None:
    """Same file, char tokens: both families predict one token per character (ngram's </s>
    stands for the newline), so their perplexities compare directly."""
    text = tmp_path / "held-out.txt"
    text.write_text("To be, or not to be: that is the question.\nWhether 'tis nobler\n")
    invoke("train", "ngram", "--set", "model.tokens=char", "--out", tmp_path / "ng")
    ngram = invoke_json("evaluate", tmp_path / "ng", "--data", text)["metrics"]
    rnn = invoke_json("evaluate", trained, "--data", text)["metrics"]
    assert rnn["tokens"] == ngram["tokens"] == len(text.read_text())
    assert rnn["bits_per_token"] == pytest.approx(rnn["cross_entropy"] / 0.693147, rel=1e-5)
    assert rnn["perplexity"] == pytest.approx(2 ** rnn["bits_per_token"], rel=1e-5)


def test_word_and_bpe_tokens_and_gru(tmp_path: Path) -> None:
    for tokens, cell in (("word", "gru"), ("bpe", "rnn")):
        out = tmp_path / tokens
        invoke(
            "train", "rnn", *tiny(2, 0), "--set", f"model.tokens={tokens}",
            "--set", f"model.cell={cell}", "--set", "model.vocab_size=300", "--out", out,
        )  # fmt: skip
        assert api.load(out).describe()["cell"] == cell
        sample = next(api.load(out).generate(GenerationRequest(max_tokens=5, seed=0)))
        assert sample.strip()


def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = [*tiny(10, 0), "--set", "model.dropout=0.2", "--set", "train.grad_accum=2"]
    invoke("train", "rnn", *settings, "--out", tmp_path / "whole")

    interrupt_at(monkeypatch, StreamTask, 2 * 3 + 1)  # during step 4 (two micro-batches a step)
    result = invoke("train", "rnn", *settings, "--out", tmp_path / "cut", ok=False)
    assert result.exit_code == 130
    assert "interrupted at step 4" in result.stderr
    assert "resume with: gentool train --resume --out cut\n" in result.stderr
    assert not (tmp_path / "cut" / "gentool.json").exists()
    assert runs.checkpoints(tmp_path / "cut")[-1][0] == 4
    assert_error(invoke("generate", tmp_path / "cut", ok=False), "unfinished training run")
    assert_error(
        invoke("train", "rnn", "--out", tmp_path / "cut", ok=False),
        "unfinished training run (latest checkpoint: step 4)",
        "--resume",
    )
    monkeypatch.undo()

    invoke("train", "--resume", "--out", tmp_path / "cut")
    assert_same_weights(tmp_path / "whole", tmp_path / "cut", atol=1e-6)
    steps = [
        json.loads(line)["step"]
        for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
        if "loss" in json.loads(line)
    ]
    assert steps == [2, 4, 6, 8, 10]  # nothing logged twice


def test_resume_refuses_a_changed_recipe_unless_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    interrupt_at(monkeypatch, StreamTask, 1)
    invoke("train", "rnn", *tiny(8, 4), "--out", tmp_path / "run", ok=False)
    monkeypatch.undo()
    changed = ["--set", "train.lr=0.01", "--set", "model.hidden_size=48"]
    result = invoke("train", "--resume", "--out", tmp_path / "run", *changed, ok=False)
    assert_error(result, "train.lr (0.003 -> 0.01)", "model.hidden_size (32 -> 48)", "--override")
    # A checkpoint of another model shape cannot be loaded, even with --override.
    result = invoke(
        "train", "--resume", "--override", "--out", tmp_path / "run", *changed, ok=False
    )
    assert_error(result, "checkpoint")
    invoke("train", "--resume", "--override", "--out", tmp_path / "run", "--set", "train.lr=0.01")
    assert json.loads((tmp_path / "run" / "gentool.json").read_text())["recipe"]["train"][
        "lr"
    ] == pytest.approx(0.01)
    # Resuming past the end: a finished run trains longer only when asked to.
    result = invoke("train", "--resume", "--out", tmp_path / "run", ok=False)
    assert_error(result, "already train.max_steps=8")
    # ... and trains longer with --override; metrics.jsonl keeps one summary, at the end.
    invoke("train", "--resume", "--override", "--out", tmp_path / "run",
           "--set", "train.max_steps=10", "--set", "train.lr=0.01")  # fmt: skip
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("step") for r in records if "loss" in r] == [2, 4, 6, 8, 10]
    assert [r["steps"] for r in records if "steps" in r] == [10]
    assert "steps" in records[-1]


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = StreamTask.loss
    calls = {"n": 0}

    def loss(self: StreamTask, *args: object) -> object:
        value = original(self, *args)
        calls["n"] += 1
        return value * float("nan") if calls["n"] > 5 else value

    monkeypatch.setattr(StreamTask, "loss", loss)
    result = invoke("train", "rnn", *tiny(8, 2), "--out", tmp_path / "run", ok=False)
    assert_error(result, "loss became nan by step 6", "checkpoints/step-4")
    assert [step for step, _ in runs.checkpoints(tmp_path / "run")] == [2, 4]


def test_bad_input(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert_error(invoke("train", "rnn", "--data", empty, ok=False), "empty.txt", "empty")
    short = tmp_path / "short.txt"
    short.write_text("too short\n")
    result = invoke("train", "rnn", "--data", short, *tiny(2), ok=False)
    assert_error(result, "fewer than one window of train.seq_len=16")
    result = invoke("train", "rnn", *tiny(2), "--set", "train.batch_size=3",
                    "--set", "train.grad_accum=2", ok=False)  # fmt: skip
    assert_error(result, "train.batch_size=3", "multiple of 2")
    assert_error(invoke("train", "rnn", "--mixed-precision", "fp16", ok=False), "bf16")
    assert not (tmp_path / "runs").exists()
    assert_error(invoke("train", "--resume", "--out", tmp_path / "nope", ok=False), "--resume")


def test_bf16_mixed_precision_trains_on_cpu(tmp_path: Path) -> None:
    invoke("train", "rnn", *tiny(2, 0), "--mixed-precision", "bf16", "--out", tmp_path / "r")
    meta = json.loads((tmp_path / "r" / "gentool.json").read_text())
    assert meta["recipe"]["train"]["mixed_precision"] == "bf16"
    assert meta["metrics"]["mixed_precision"] == "bf16"  # what it trained in (any CPU)
    assert weights(tmp_path / "r")["lm_head.weight"].dtype == torch.float32


def test_sigint_in_a_real_process_writes_a_resumable_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [sys.executable, "-m", "gentool", "train", "rnn", *tiny(100_000, 0), "--out", out]
    args[args.index("train.log_every=2")] = "train.log_every=1"
    process = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    deadline = time.monotonic() + 60
    metrics = out / "metrics.jsonl"
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "resume with: gentool train --resume --out" in stderr
    step = runs.checkpoints(out)[-1][0]
    done = run_gentool("train", "--resume", "--out", out, "--override",
                       "--set", f"train.max_steps={step + 2}")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "gentool.json").read_text())["metrics"]["steps"] == step + 2


@pytest.mark.skipif(not (SHARED_DATA / "tinyshakespeare").is_dir(), reason="no shared data")
def test_two_processes_match_one_with_the_same_global_batch(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text((SHARED_DATA / "tinyshakespeare" / "input.txt").read_text()[:60_000])
    common = ["train", "rnn", "--data", data, *tiny(4, 2)]
    one = run_gentool(*common, "--out", tmp_path / "one")
    assert one.returncode == 0, one.stderr
    torchrun = Path(sys.executable).with_name("torchrun")
    two = subprocess.run(
        [torchrun, "--nproc-per-node", "2", "-m", "gentool", *map(str, common),
         "--out", tmp_path / "two"],
        capture_output=True, text=True, timeout=180,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert two.returncode == 0, two.stderr
    assert_same_weights(tmp_path / "one", tmp_path / "two", atol=1e-5)
    carry = load_file(str(runs.checkpoints(tmp_path / "two")[-1][1] / "carry.safetensors"))
    assert next(iter(carry.values())).shape[0] == 4  # both processes' rows, gathered
    assert (tmp_path / "two" / "checkpoints" / "step-4" / "random_states_1.pkl").is_file()


def test_metrics_go_to_an_accelerate_tracker_when_asked(tmp_path: Path) -> None:
    pytest.importorskip("tensorboardX")  # accelerate's tensorboard tracker, in its light form
    invoke("train", "rnn", *tiny(2, 0), "--log-with", "tensorboard", "--out", tmp_path / "r")
    events = list((tmp_path / "r" / "logs").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    result = invoke("train", "rnn", *tiny(2, 0), "--log-with", "aim", "--out", tmp_path / "x",
                    ok=False)  # fmt: skip
    assert_error(result, "--log-with aim", "pip install aim")
    assert not (tmp_path / "x").exists()


def test_progress_line_shows_step_loss_rate_and_eta(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gentool.model import Runtime

    overrides = [a for a in tiny(4, 0) if a != "--set"]
    api.train("rnn", overrides=overrides, out=tmp_path / "r", runtime=Runtime(progress=True))
    err = capsys.readouterr().err
    assert "\rstep 4/4  loss " in err and " tokens/s  ETA 0:00" in err
