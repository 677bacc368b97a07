"""The transformer family's decoder-only language model, end to end: train, save, reload with
the Auto classes (no gentool code), generate (seeds, beams, repetition penalty, the KV cache,
samples longer than the context), evaluate, resume, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    assert_error,
    assert_same_weights,
    interrupt_at,
    invoke,
    invoke_json,
)

torch = pytest.importorskip("torch")

from safetensors.torch import load_file  # noqa: E402

from gentool import api, runs  # noqa: E402
from gentool.tasks import GenerationRequest, TextGeneration  # noqa: E402
from gentool_transformer.gpt2 import WindowTask, sliding_loss  # noqa: E402
from gentool_transformer.lm import LanguageModel  # noqa: E402

CONTEXT = 32
# A model and a run small enough for a few seconds on CPU.
TINY = [
    "model.d_model=32",
    "model.num_layers=2",
    "model.num_heads=4",
    "model.d_ff=64",
    f"model.context_length={CONTEXT}",
    "model.dropout=0.0",
    "train.batch_size=4",
    "train.seq_len=16",
    "train.lr=3e-3",
    "train.warmup_steps=2",
    "train.log_every=2",
    "train.eval_every=4",
    "train.eval_batches=2",
]


def tiny(steps: int = 8, checkpoint_every: int = 4) -> list[str]:
    """TINY as CLI arguments."""
    settings = [*TINY, f"train.max_steps={steps}", f"train.checkpoint_every={checkpoint_every}"]
    return [arg for setting in settings for arg in ("--set", setting)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny character transformer on the embedded corpus, shared by read-only tests."""
    out = tmp_path_factory.mktemp("transformer") / "run"
    api.train("transformer", overrides=[a for a in tiny(8) if a != "--set"], out=out)
    return out


def test_train_writes_a_hugging_face_run(trained: Path) -> None:
    names = {p.name for p in trained.iterdir()}
    assert {"gentool.json", "model.safetensors", "config.json", "tokenizer.json"} <= names
    assert {"tokenizer_config.json", "generation_config.json", "metrics.jsonl"} <= names
    runs.RunDirectory(trained).verify()
    meta = json.loads((trained / "gentool.json").read_text())
    assert meta["tasks"] == ["generate-text", "score-text"]  # the lm's, not the translator's
    assert meta["kind"] == "lm"
    summary = meta["metrics"]
    assert summary["steps"] == 8 and summary["tokens_per_s"] > 0
    assert summary["val_bits_per_token"] == pytest.approx(summary["val_loss"] / math.log(2))
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [2, 4, 6, 8]
    assert [r["step"] for r in records if "val_loss" in r and "step" in r] == [4, 8]
    # Eight steps at lr 3e-3 already beat the uniform guess over the vocabulary.
    vocab = json.loads((trained / "config.json").read_text())["vocab_size"]
    assert summary["val_loss"] < math.log(vocab)
    info = api.load(trained).describe()
    assert {k: info[k] for k in ("arch", "tokens", "d_model", "num_heads", "context_length")} == {
        "arch": "decoder",
        "tokens": "char",
        "d_model": 32,
        "num_heads": 4,
        "context_length": CONTEXT,
    }
    assert info["parameters"] == summary["parameters"]


def test_run_loads_with_the_auto_classes_and_uses_sdpa(
    trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(trained).eval()  # no gentool import needed
    tokenizer = AutoTokenizer.from_pretrained(trained)
    assert type(model).__name__ == "GPT2LMHeadModel"
    assert model.config._attn_implementation == "sdpa"
    ids = tokenizer("ROMEO:", return_tensors="pt").input_ids
    assert tokenizer.decode(ids[0]) == "ROMEO:"
    calls = {"n": 0}
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting)
    ours = api.load(trained)
    assert isinstance(ours, LanguageModel)
    with torch.no_grad():
        assert torch.equal(ours.model(input_ids=ids).logits, model(input_ids=ids).logits)
    assert calls["n"] == 2 * 2  # two layers, two models: PyTorch's fused attention
    out = model.generate(ids, max_new_tokens=5, do_sample=True)
    assert out.shape == (1, ids.shape[1] + 5)


def test_generate_is_repeatable_with_a_seed(trained: Path) -> None:
    args = ["generate", str(trained), "--seed", "3", "-n", "2", "--max-tokens", "20"]
    first = invoke_json(*args)["samples"]
    assert first == invoke_json(*args)["samples"]
    assert len(first) == 2 and all(len(s) == 20 for s in first)  # char tokens, none banned
    other = invoke_json("generate", trained, "--seed", "4", "-n", "2", "--max-tokens", "20")
    assert other["samples"] != first
    prompted = invoke_json("generate", trained, "--prompt", "KING", "--max-tokens", "5")
    assert prompted["samples"][0].startswith("KING") and len(prompted["samples"][0]) == 9


def test_samples_run_past_the_context(trained: Path) -> None:
    """A sample longer than the model's positions continues from the last half window; a
    prompt longer than the window is read from its end and returned whole."""
    long = invoke_json("generate", trained, "--seed", "1", "--max-tokens", str(3 * CONTEXT))
    assert len(long["samples"][0]) == 3 * CONTEXT
    prompt = "ROMEO: " * 10  # 70 characters, over 32 positions
    out = invoke_json("generate", trained, "--prompt", prompt, "--max-tokens", "40", "--seed", "1")
    assert out["samples"][0].startswith(prompt) and len(out["samples"][0]) == 70 + 40


def greedy_without_generate(model: LanguageModel, prompt: list[int], steps: int) -> list[int]:
    """The reference: argmax over the whole prefix for every token, no cache, no generate()."""
    banned = [model.bos, model.tokenizer.convert_tokens_to_ids(model.tokenizer.unk_token)]
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(steps):
            logits = model.model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
            logits[banned] = -math.inf
            ids.append(int(logits.argmax()))
    return ids[len(prompt) :]


def test_kv_cache_generation_equals_recomputing_the_prefix(trained: Path) -> None:
    model = api.load(trained)
    assert isinstance(model, LanguageModel)
    prompt = [model.bos, *model.tokenizer.encode("To be", add_special_tokens=False)]
    request = GenerationRequest(temperature=0, max_tokens=CONTEXT - len(prompt))
    cached = model.continue_ids(prompt, request)
    uncached = model.continue_ids(prompt, request, use_cache=False)
    assert cached.tolist() == uncached.tolist()
    assert cached[0].tolist() == greedy_without_generate(model, prompt, request.max_tokens)
    # Past the context too: every window's cache is rebuilt the same way.
    longer = GenerationRequest(temperature=0, max_tokens=2 * CONTEXT)
    assert torch.equal(
        model.continue_ids(prompt, longer), model.continue_ids(prompt, longer, use_cache=False)
    )


def test_greedy_beams_and_repetition_penalty(trained: Path) -> None:
    greedy = ["generate", str(trained), "--temperature", "0", "--max-tokens", "24"]
    plain = invoke_json(*greedy)["samples"]
    assert plain == invoke_json(*greedy)["samples"]
    penalised = invoke_json(*greedy, "--repetition-penalty", "3")["samples"]
    assert penalised != plain
    # An undertrained model repeats itself; the penalty makes it use more distinct characters.
    assert len(set(penalised[0])) > len(set(plain[0]))
    beams = invoke_json("generate", trained, "--beams", "4", "-n", "2", "--max-tokens", "12")
    assert len(beams["samples"]) == 2 and beams["samples"][0] != beams["samples"][1]
    assert_error(
        invoke("generate", trained, "--beams", "2", "-n", "3", ok=False),
        "--beams 2 cannot return 3 samples",
    )


def test_evaluate_counts_tokens_as_ngram_does(trained: Path, tmp_path: Path) -> None:
    """Same file, char tokens: both families predict one token per character, so their
    perplexities compare directly. The text is longer than the context: sliding windows."""
    text = tmp_path / "held-out.txt"
    text.write_text("To be, or not to be: that is the question.\nWhether 'tis nobler\n" * 3)
    invoke("train", "ngram", "--set", "model.tokens=char", "--out", tmp_path / "ng")
    ngram = invoke_json("evaluate", tmp_path / "ng", "--data", text)["metrics"]
    ours = invoke_json("evaluate", trained, "--data", text)["metrics"]
    assert ours["tokens"] == ngram["tokens"] == len(text.read_text())
    assert ours["bits_per_token"] == pytest.approx(ours["cross_entropy"] / math.log(2), rel=1e-6)
    assert ours["perplexity"] == pytest.approx(2 ** ours["bits_per_token"], rel=1e-6)
    assert ours["oov"] == 0


class UniformModel:
    """Zero logits over V tokens: every scored target costs log(V); records its windows."""

    device = torch.device("cpu")

    def __init__(self, vocab: int) -> None:
        self.vocab = vocab
        self.windows: list[Any] = []

    def __call__(self, input_ids: Any, use_cache: bool = False) -> Any:
        self.windows.append(input_ids)
        logits = torch.zeros(*input_ids.shape, self.vocab)
        return type("Out", (), {"logits": logits})()


@pytest.mark.parametrize("length", [2, 20, 33, 34, 100, 101, 257])
def test_sliding_windows_score_every_token_once(length: int) -> None:
    model = UniformModel(5)
    ids = torch.arange(length) % 5
    total = sliding_loss(model, ids, 32)
    assert total == pytest.approx((length - 1) * math.log(5), rel=1e-6)
    windows = torch.cat([w for w in model.windows])
    assert windows.shape[1] == min(32, length - 1)  # full windows only, batched


def test_evaluate_within_one_window_is_one_forward_pass(trained: Path, tmp_path: Path) -> None:
    model = api.load(trained)
    assert isinstance(model, LanguageModel)
    text = "First Citizen:\nSpeak.\n"  # 22 characters: one window of 32
    path = tmp_path / "short.txt"
    path.write_text(text)
    ids = torch.tensor([[model.bos, *model.tokenizer.encode(text, add_special_tokens=False)]])
    with torch.no_grad():
        logits = model.model(input_ids=ids[:, :-1]).logits[0]
    expected = float(torch.nn.functional.cross_entropy(logits, ids[0, 1:]))
    assert model.evaluate_text([path])["cross_entropy"] == pytest.approx(expected, rel=1e-5)


def test_batches_are_a_pure_function_of_their_index() -> None:
    stream = torch.arange(1000)
    task = WindowTask(torch.nn.Linear(1, 1), stream, None, rows=4, seq_len=8, seed=7)
    later = task.train_batch(5, slice(0, 4))
    task.train_batch(0, slice(0, 4))
    again = task.train_batch(5, slice(0, 4))
    assert torch.equal(later["input_ids"], again["input_ids"])
    assert torch.equal(later["labels"], later["input_ids"] + 1)  # the next token of the stream
    halves = [task.train_batch(5, slice(0, 2)), task.train_batch(5, slice(2, 4))]
    assert torch.equal(torch.cat([h["input_ids"] for h in halves]), later["input_ids"])
    other = WindowTask(torch.nn.Linear(1, 1), stream, None, rows=4, seq_len=8, seed=8)
    assert not torch.equal(other.train_batch(5, slice(0, 4))["input_ids"], later["input_ids"])


def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = [*tiny(6, 0), "--set", "model.dropout=0.2", "--set", "train.grad_accum=2"]
    invoke("train", "transformer", *settings, "--out", tmp_path / "whole")

    interrupt_at(monkeypatch, WindowTask, 2 * 2 + 1)  # during step 3 (two micro-batches a step)
    result = invoke("train", "transformer", *settings, "--out", tmp_path / "cut", ok=False)
    assert result.exit_code == 130 and "interrupted at step 3" in result.stderr
    monkeypatch.undo()
    invoke("train", "--resume", "--out", tmp_path / "cut")
    assert_same_weights(tmp_path / "whole", tmp_path / "cut", atol=1e-6)


def test_bad_configs_give_one_error_line(tmp_path: Path) -> None:
    result = invoke("train", "transformer", *tiny(2), "--set", "model.num_heads=3", ok=False)
    assert_error(result, "model.d_model=32", "model.num_heads=3")
    result = invoke("train", "transformer", *tiny(2), "--set", "train.seq_len=64", ok=False)
    assert_error(result, "train.seq_len=64", "model.context_length=32")
    short = tmp_path / "short.txt"
    short.write_text("too short\n")
    result = invoke("train", "transformer", *tiny(2), "--data", short, ok=False)
    assert_error(result, "fewer than one window of train.seq_len=16")
    assert not (tmp_path / "runs").exists()


def test_bpe_tokens_and_bf16(tmp_path: Path) -> None:
    out = tmp_path / "bpe"
    invoke(
        "train", "transformer", *tiny(2, 0), "--set", "model.tokens=bpe",
        "--set", "model.vocab_size=300", "--mixed-precision", "bf16", "--out", out,
    )  # fmt: skip
    model = api.load(out)
    assert model.describe()["tokens"] == "bpe" and model.describe()["vocab_size"] == 300
    assert load_file(str(out / "model.safetensors"))["transformer.wte.weight"].dtype == (
        torch.float32
    )
    sample = next(model.generate(GenerationRequest(prompt="The", max_tokens=5, seed=0)))
    assert sample.startswith("The") and len(sample) > 3


@pytest.mark.parametrize("length", [2, 5, 17, 40])
def test_validation_windows_predict_every_token_but_the_first(length: int) -> None:
    """The engine's validation loss covers the whole split, even one shorter than a window."""
    model = torch.nn.Linear(1, 1)  # any module: its forward gives uniform logits

    def forward(input_ids: Any, use_cache: bool = False) -> Any:
        return type("Out", (), {"logits": torch.zeros(*input_ids.shape, 100)})()

    model.forward = forward
    task = WindowTask(model, torch.arange(100), torch.arange(length), rows=2, seq_len=16, seed=0)
    total, count = task.evaluate(model, slice(0, 2), 0)
    assert count == length - 1 and total == pytest.approx(count * math.log(100), rel=1e-6)


def test_a_batch_of_prompts_gives_what_each_gives_alone(trained: Path) -> None:
    """generate_batch (the server's dynamic batching) pads prompts of different lengths on
    the left: greedy rows are what each prompt gives alone; sampled ones are samples."""
    model = api.load(trained)
    assert isinstance(model, TextGeneration)
    greedy = [GenerationRequest(prompt=p, max_tokens=6, temperature=0.0)
              for p in ("ROMEO:", "A", "What is it, my")]  # fmt: skip
    assert model.generate_batch(greedy) == [list(model.generate(r)) for r in greedy]
    sampled = [GenerationRequest(prompt="To", max_tokens=5, num_samples=2),
               GenerationRequest(prompt="Be it", max_tokens=5)]  # fmt: skip
    out = model.generate_batch(sampled)
    assert [len(o) for o in out] == [2, 1]
    assert all(s.startswith("To") for s in out[0]) and out[1][0].startswith("Be it")
    assert all(len(s) == len(r.prompt) + 5 for o, r in zip(out, sampled, strict=True) for s in o)
