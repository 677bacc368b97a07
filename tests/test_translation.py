"""The transformer family's translator, end to end on the first Multi30k pairs: train, save,
reload with the Auto classes, translate (arguments and a real pipe), evaluate with sacrebleu,
attention maps, bucketed batches and resume, and bad input."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    SHARED_DATA,
    assert_error,
    assert_same_weights,
    interrupt_at,
    invoke,
    invoke_json,
    strict_json,
)

torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from gentool import api, runs  # noqa: E402
from gentool.tasks import TRANSLATE, TranslationRequest  # noqa: E402
from gentool_transformer.marian import PairTask  # noqa: E402

MULTI30K = SHARED_DATA / "multi30k"
pytestmark = pytest.mark.skipif(not MULTI30K.is_dir(), reason="no shared Multi30k data")

LONG = " ".join(["very"] * 200) + " long sentence."  # more than 128 tokens

TINY = [
    "--set", "model.d_model=32",
    "--set", "model.num_layers=1",
    "--set", "model.num_heads=4",
    "--set", "model.d_ff=64",
    "--set", "model.vocab_size=400",
    "--set", "model.context_length=128",
    "--set", "model.dropout=0.0",
    "--set", "train.batch_size=8",
    "--set", "train.lr=3e-3",
    "--set", "train.warmup_steps=2",
    "--set", "train.log_every=2",
    "--set", "train.eval_every=4",
]  # fmt: skip


def tiny(steps: int = 8, checkpoint_every: int = 0) -> list[str]:
    return [*TINY, "--set", f"train.max_steps={steps}",
            "--set", f"train.checkpoint_every={checkpoint_every}"]  # fmt: skip


def head(split: str, lang: str, n: int) -> list[str]:
    with gzip.open(MULTI30K / f"{split}.{lang}.gz", "rt", encoding="utf-8") as f:
        return [next(f).rstrip("\n") for _ in range(n)]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """120 training pairs (plus one empty and one over-long pair), 16 held-out pairs."""
    root = tmp_path_factory.mktemp("multi30k")
    en, de = head("train", "en", 120), head("train", "de", 120)
    en[5], de[9] = LONG, ""  # pair 9 has an empty side; pair 5 is over-long
    files = {
        "en": (root / "train.en", en),
        "de": (root / "train.de", de),
        "val_en": (root / "val.en", head("val", "en", 16)),
        "val_de": (root / "val.de", head("val", "de", 16)),
    }
    for path, lines in files.values():
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return {key: path for key, (path, _) in files.items()}


def parallel(data: dict[str, Path]) -> list[str | Path]:
    return ["--source", data["en"], "--target", data["de"],
            "--val-source", data["val_en"], "--val-target", data["val_de"]]  # fmt: skip


@pytest.fixture(scope="module")
def trained(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mt") / "run"
    result = invoke("train", "transformer", *parallel(data), *tiny(16), "--out", out)
    assert (
        "dropped 2 training pairs: 1 with an empty side, 1 longer than "
        "model.context_length=128 tokens\n"
    ) in result.stderr
    return out


def test_train_writes_a_translator_run(trained: Path) -> None:
    names = {p.name for p in trained.iterdir()}
    assert {"gentool.json", "model.safetensors", "config.json", "tokenizer.json"} <= names
    meta = json.loads((trained / "gentool.json").read_text())
    assert meta["tasks"] == ["translate"] and meta["kind"] == "translator"
    metrics = meta["metrics"]
    assert metrics["dropped_pairs"] == {"empty": 1, "too_long": 1}
    assert metrics["train_pairs"] == 118 and metrics["val_pairs"] == 16
    assert metrics["steps"] == 16 and 0 <= metrics["val_bleu"] <= 100
    # Sixteen steps beat the uniform guess over the vocabulary, and the loss falls.
    assert metrics["val_loss"] < 0.95 * torch.log(torch.tensor(400.0)).item()
    lines = [json.loads(x) for x in (trained / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in lines if "loss" in r]
    assert len(losses) == 8 and losses[-1] < losses[0] - 0.5
    info = api.load(trained).describe()
    assert info["num_heads"] == 4 and info["encoder_layers"] == info["decoder_layers"] == 1
    assert "joint byte-level BPE" in info["tokens"] and info["positions"] == "sinusoidal"


def test_run_loads_and_translates_with_the_auto_classes(trained: Path) -> None:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model = AutoModelForSeq2SeqLM.from_pretrained(trained).eval()
    tokenizer = AutoTokenizer.from_pretrained(trained)
    assert model.config.is_encoder_decoder and model.config.encoder_attention_heads == 4
    batch = tokenizer(["Zwei junge Männer.", "A dog."], return_tensors="pt", padding=True)
    assert tokenizer.decode(batch.input_ids[0], skip_special_tokens=True) == "Zwei junge Männer."
    assert batch.input_ids[1, -1] == tokenizer.pad_token_id  # padded on the right, after eos
    out = model.generate(**batch, num_beams=2, max_new_tokens=8)
    assert out.shape[0] == 2 and 2 <= out.shape[1] <= 9
    ours = api.load(trained).translate(["Zwei junge Männer."], TranslationRequest(num_beams=2))
    source = tokenizer(["Zwei junge Männer."], return_tensors="pt")
    limit = model.config.max_position_embeddings - 1  # translate's default
    theirs = model.generate(**source, num_beams=2, max_new_tokens=limit)
    assert ours == [tokenizer.decode(theirs[0], skip_special_tokens=True).strip()]


def test_translate_is_deterministic_in_order_and_keeps_empty_lines(trained: Path) -> None:
    model = api.load(trained)
    texts = ["A man in a blue shirt.", "", "Two dogs play in the snow.", "   "]
    first = model.translate(texts, TranslationRequest(num_beams=3))
    assert first == model.translate(texts, TranslationRequest(num_beams=3))
    assert len(first) == 4 and first[1] == first[3] == ""
    assert first[0] and first[2]
    alone = model.translate([texts[2]], TranslationRequest(num_beams=3))
    assert alone == [first[2]]  # batching does not change a translation
    short = model.translate([texts[0]], TranslationRequest(num_beams=1, max_tokens=2))[0]
    ids = model.tokenizer(short, add_special_tokens=False).input_ids
    assert len(ids) <= 2


def test_translate_command_works_in_a_pipe(trained: Path) -> None:
    """A real process: one output line per input line, answered as lines arrive."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gentool", "translate", str(trained), "--beam", "2"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    answers = []
    for line in ["A man is riding a bike.", "", "Two women talk."]:
        process.stdin.write(line + "\n")
        process.stdin.flush()
        answers.append(process.stdout.readline())  # would block if the line were held back
    process.stdin.close()
    assert process.stdout.read() == ""
    assert process.wait(timeout=60) == 0, process.stderr.read() if process.stderr else ""
    assert [a.endswith("\n") for a in answers] == [True] * 3
    assert answers[1] == "\n" and answers[0].strip() and answers[2].strip()
    direct = invoke("translate", trained, "--beam", "2", "A man is riding a bike.").stdout
    assert direct == answers[0]
    piped = subprocess.run(
        [sys.executable, "-m", "gentool", "translate", str(trained), "--json", "--beam", "2",
         "--batch-size", "1"],
        input="A man is riding a bike.\n\nTwo women talk.\n", capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    records = [strict_json(line) for line in piped.stdout.splitlines()]
    assert [r["source"] for r in records] == ["A man is riding a bike.", "", "Two women talk."]
    assert [r["translation"] + "\n" for r in records] == answers


def test_translate_stops_when_its_reader_leaves(trained: Path) -> None:
    """`... | gentool translate RUN | head -1`: the first line out, then a quiet end."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gentool", "translate", str(trained), "--beam", "1",
         "--batch-size", "1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdin and process.stdout and process.stderr
    process.stdin.write("A dog runs.\n" * 200)  # within a pipe's buffer: no deadlock
    process.stdin.close()
    assert process.stdout.readline().strip()
    process.stdout.close()
    try:
        code = process.wait(timeout=120)
    finally:
        process.kill()
    stderr = process.stderr.read()
    assert code in (0, 141, -signal.SIGPIPE), stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


def test_evaluate_gives_bleu_and_chrf_with_signatures(trained: Path, data: dict[str, Path]) -> None:
    import sacrebleu

    result = invoke_json("evaluate", trained, "--source", data["val_en"],
                         "--target", data["val_de"])["metrics"]  # fmt: skip
    assert result["sentences"] == 16 and result["loss"] > 0 and result["loss_tokens"] > 16
    assert "tok:13a" in result["bleu_signature"] and "case:mixed" in result["bleu_signature"]
    assert result["chrf_signature"].startswith("nrefs:1") and 0 <= result["chrf"] <= 100
    sources = data["val_en"].read_text().splitlines()
    hypotheses = api.load(trained).translate(sources, TranslationRequest())
    expected = sacrebleu.corpus_bleu(hypotheses, [data["val_de"].read_text().splitlines()])
    assert result["bleu"] == pytest.approx(expected.score)


def test_tsv_pairs_train_a_translator(tmp_path: Path) -> None:
    tsv = tmp_path / "pairs.tsv"
    en, de = head("train", "en", 60), head("train", "de", 60)
    lines = [f"{e}\t{d}" for e, d in zip(en, de, strict=True)]
    tsv.write_text("\n".join(["", *lines]) + "\n", encoding="utf-8")
    result = invoke("train", "transformer", "--data", tsv, *tiny(2), "--out", tmp_path / "run")
    assert api.load(tmp_path / "run").tasks() == (TRANSLATE,)  # a .tsv is parallel data
    assert "54 training pairs, 6 validation pairs" in result.stderr  # val_fraction 0.1
    metrics = json.loads((tmp_path / "run" / "gentool.json").read_text())["metrics"]
    assert metrics["dropped_pairs"] == {"empty": 1}
    bad = tmp_path / "bad.tsv"
    bad.write_text("one\ttwo\nno tab here\n")
    result = invoke("train", "transformer", "--data", bad, "--set", "model.arch=encoder-decoder",
                    *tiny(2), "--out", tmp_path / "bad", ok=False)  # fmt: skip
    assert_error(result, "bad.tsv' line 2 has 0 tabs")


def test_attention_map_png(trained: Path, tmp_path: Path) -> None:
    from gentool_transformer import attention

    out = tmp_path / "att.png"
    record = invoke_json("attention", trained, "Two dogs play in the snow.", "-o", out)
    assert record["file"] == str(out) and record["layers"] == 1 and record["heads"] == 4
    assert record["maps"] == ["encoder self-attention", "decoder cross-attention"]
    source = record["tokens"]["encoder self-attention"]["keys"]
    assert source[-1] == "<|endoftext|>" and "snow" in "".join(source)
    cross = record["tokens"]["decoder cross-attention"]
    assert cross["keys"] == source and cross["queries"][-1] == "<|endoftext|>"
    image = Image.open(out)
    assert image.size == (record["width"], record["height"])
    maps = attention.attention_maps(api.load(trained), "Two dogs play in the snow.")
    assert image.size == attention.image_size(maps)
    assert [m.weights[0].shape for m in maps] == [
        (4, len(source), len(source)),
        (4, len(cross["queries"]), len(source)),
    ]
    assert torch.allclose(maps[0].weights[0].sum(-1), torch.ones(4, len(source)), atol=1e-4)
    assert len(image.convert("RGB").getcolors(1 << 16) or []) > 10  # not one colour
    # Crop the first two heads' heat maps: they differ.
    w, h = attention.panel_size(maps[0])
    first = image.crop((attention.GAP, 0, attention.GAP + w, h + 40)).tobytes()
    second = image.crop((2 * attention.GAP + w, 0, 2 * (attention.GAP + w), h + 40)).tobytes()
    assert first != second
    assert invoke("attention", trained, "A dog.", "-o", tmp_path / "b.png").stdout.strip()


def test_attention_map_of_a_language_model(tmp_path: Path) -> None:
    from gentool_transformer import attention

    invoke("train", "transformer", "--set", "model.d_model=32", "--set", "model.num_layers=2",
           "--set", "model.num_heads=4", "--set", "model.d_ff=64",
           "--set", "model.context_length=64", "--set", "train.seq_len=32",
           "--set", "train.batch_size=4", "--set", "train.max_steps=2",
           "--set", "train.checkpoint_every=0", "--out", tmp_path / "lm")  # fmt: skip
    record = invoke_json("attention", tmp_path / "lm", "To be or", "-o", tmp_path / "lm.png")
    assert record["maps"] == ["causal self-attention"]
    assert record["layers"] == 2 and record["heads"] == 4
    tokens = record["tokens"]["causal self-attention"]["keys"]
    assert "'  '" not in tokens and "' '" in tokens  # a space shows as a quoted space
    assert Image.open(tmp_path / "lm.png").size == (record["width"], record["height"])
    (causal,) = attention.attention_maps(api.load(tmp_path / "lm"), "To be or")
    weights = causal.weights[1]  # (heads, queries, keys)
    assert torch.all(weights.triu(diagonal=1) == 0)  # no token looks ahead
    assert torch.allclose(weights.sum(-1), torch.ones(4, len(tokens)), atol=1e-4)


def test_attention_refuses_other_runs(tmp_path: Path) -> None:
    invoke("train", "ngram", "--out", tmp_path / "ng")
    assert_error(invoke("attention", tmp_path / "ng", "hello", ok=False), "ngram", "transformer")
    assert not (tmp_path / "attention.png").exists()


def test_batches_are_length_buckets_and_a_pure_function_of_the_index() -> None:
    pairs = [([1] * (1 + i % 17), [2] * (1 + (i * 7) % 23)) for i in range(200)]
    task = PairTask(torch.nn.Linear(1, 1), pairs, [], rows=10, seed=3, pad=0, smoothing=0.1)
    assert task.batches_per_epoch == 20
    epoch = task.epoch(0)
    seen = sorted(i for batch in epoch for i in batch)
    assert seen == list(range(200))  # every pair once an epoch
    # Sorted pools: a batch's target lengths lie close together.
    spread = [max(len(pairs[i][1]) for i in b) - min(len(pairs[i][1]) for i in b) for b in epoch]
    assert sum(spread) / len(spread) < 6  # a random batch of 10 spans ~18 of 23 lengths
    again = PairTask(torch.nn.Linear(1, 1), pairs, [], rows=10, seed=3, pad=0, smoothing=0.1)
    for index in (0, 7, 20, 45):
        a, b = task.train_batch(index, slice(0, 10)), again.train_batch(index, slice(0, 10))
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert task.epoch(1) != epoch  # each epoch its own order
    batch = task.train_batch(0, slice(0, 10))
    labels, decoder = batch["labels"], batch["decoder_input_ids"]
    assert torch.equal(decoder[:, 1:][labels[:, 1:] != -100], labels[:, :-1][labels[:, 1:] != -100])


def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(
    data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = [*parallel(data), *tiny(6), "--set", "model.dropout=0.2"]
    invoke("train", "transformer", *settings, "--out", tmp_path / "whole")

    interrupt_at(monkeypatch, PairTask, 3)
    result = invoke("train", "transformer", *settings, "--out", tmp_path / "cut", ok=False)
    assert result.exit_code == 130 and "interrupted at step 4" in result.stderr
    assert runs.checkpoints(tmp_path / "cut")[-1][0] == 4
    monkeypatch.undo()
    invoke("train", "--resume", "--out", tmp_path / "cut")
    assert_same_weights(tmp_path / "whole", tmp_path / "cut", atol=1e-6)


def test_bad_input(data: dict[str, Path], tmp_path: Path) -> None:
    short = tmp_path / "short.de"
    short.write_text("Ein Hund.\n")
    result = invoke("train", "transformer", "--source", data["en"], "--target", short,
                    *tiny(2), "--out", tmp_path / "run", ok=False)  # fmt: skip
    assert_error(result, "not aligned", "has 120 lines", "has 1")
    assert not (tmp_path / "run").exists()
    result = invoke("train", "transformer", *parallel(data), *tiny(2),
                    "--set", "model.num_heads=3", "--out", tmp_path / "run", ok=False)  # fmt: skip
    assert_error(result, "model.d_model=32", "model.num_heads=3")
    result = invoke("train", "transformer", *parallel(data), *tiny(2),
                    "--set", "model.tokens=char", "--out", tmp_path / "run", ok=False)  # fmt: skip
    assert_error(result, "model.tokens=char", "joint BPE")
    assert not (tmp_path / "run").exists()
