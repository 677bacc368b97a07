"""gentool export --format ct2 / merged, and --engine ct2: a tiny trained translator and
language model convert to CTranslate2 and give the run's own greedy (and beam) outputs; a
LoRA run merges into a plain Hugging Face folder that gives the adapter run's outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import assert_error, invoke, invoke_json

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from test_hf import FINE_TUNE, STEPS, TEXT, save_causal, save_seq2seq  # noqa: E402

SENTENCES = ["the cat sat on the mat.", "a dog runs in the park.", "the bird", "a song sings"]
TINY = ["--set", "model.d_model=32", "--set", "model.num_layers=1", "--set", "model.num_heads=4",
        "--set", "model.d_ff=64", "--set", "model.context_length=64", "--set", "train.lr=3e-3",
        "--set", "train.batch_size=8", "--set", "train.max_steps=150", "--set",
        "train.warmup_steps=2", "--set", "train.eval_every=0", "--set",
        "train.checkpoint_every=0"]  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny translator (the text into its reverse) and a tiny character LM, trained."""
    root = tmp_path_factory.mktemp("ct2")
    (root / "s.txt").write_text("\n".join(TEXT) + "\n")
    (root / "t.txt").write_text("\n".join(reversed(TEXT)) + "\n")
    invoke("train", "transformer", "--source", root / "s.txt", "--target", root / "t.txt",
           *TINY, "--set", "model.vocab_size=300", "--set", "train.bleu_pairs=0",
           "--out", root / "mt")  # fmt: skip
    invoke("train", "transformer", "--data", root / "s.txt", *TINY, "--set", "train.seq_len=32",
           "--out", root / "lm")  # fmt: skip
    return {"mt": root / "mt", "lm": root / "lm", "root": root}


def translations(run: Path, *options: str) -> list[str]:
    out = invoke("translate", run, *SENTENCES, "--json", *options).stdout
    return [json.loads(line)["translation"] for line in out.splitlines()]


def samples(run: Path, *options: str) -> list[str]:
    return list(invoke_json("generate", run, "--prompt", "the c", "--max-tokens", "30",
                            *options)["samples"])  # fmt: skip


def test_translator_converts_and_translates_as_the_run(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    pytest.importorskip("ctranslate2")
    invoke("export", runs["mt"], "--format", "ct2", "-o", "mt-ct2")
    record = json.loads(Path("mt-ct2/gentool-export.json").read_text())
    assert record["kind"] == "translator" and record["quantization"] == "float32"
    vocabulary = json.loads(Path("mt-ct2/shared_vocabulary.json").read_text())
    tokenizer = json.loads((runs["mt"] / "tokenizer.json").read_text())
    assert len(vocabulary) == len(tokenizer["model"]["vocab"])  # whole: no <pad> dropped

    greedy = translations(runs["mt"], "--beam", "1")
    assert "the cat sat on the mat." in greedy  # it learnt something
    assert translations(Path("mt-ct2"), "--engine", "ct2", "--beam", "1") == greedy
    # (beam search: CTranslate2 normalises the length its own way; ties may go apart)
    assert len(translations(Path("mt-ct2"), "--engine", "ct2", "--beam", "3")) == len(SENTENCES)
    piped = invoke("translate", "mt-ct2", "--engine", "ct2", "--beam", "1",
                   input="\n".join(SENTENCES) + "\n").stdout  # fmt: skip
    assert piped.splitlines() == greedy

    invoke("export", runs["mt"], "--format", "ct2", "--quantization", "int8", "-o", "mt-int8")
    assert len(translations(Path("mt-int8"), "--engine", "ct2")) == len(SENTENCES)
    assert (tmp_path / "mt-int8" / "model.bin").stat().st_size < (
        tmp_path / "mt-ct2" / "model.bin"
    ).stat().st_size


def test_language_model_converts_and_generates_as_the_run(runs: dict[str, Path]) -> None:
    pytest.importorskip("ctranslate2")
    invoke("export", runs["lm"], "--format", "ct2", "-o", "lm-ct2")
    ct2 = ["--engine", "ct2"]
    greedy = samples(runs["lm"], "--temperature", "0")
    assert greedy[0].startswith("the c") and len(greedy[0]) > len("the c")
    assert samples(Path("lm-ct2"), *ct2, "--temperature", "0") == greedy
    beams = ["--beams", "3", "-n", "2"]
    assert samples(Path("lm-ct2"), *ct2, *beams) == samples(runs["lm"], *beams)
    streamed = invoke("generate", "lm-ct2", *ct2, "--prompt", "the c", "--max-tokens", "30",
                      "--temperature", "0", "--stream").stdout  # fmt: skip
    assert streamed.rstrip("\n") == greedy[0]
    seeded = samples(Path("lm-ct2"), *ct2, "--seed", "3", "-n", "2")
    assert seeded == samples(Path("lm-ct2"), *ct2, "--seed", "3", "-n", "2")
    assert all(len(s) == len("the c") + 30 for s in seeded)  # characters: 30 tokens each

    for command in ("generate", "info"):  # without --engine ct2: said how to run it
        result = invoke(command, "lm-ct2", ok=False)
        assert_error(result, "'lm-ct2' is a CTranslate2 export", "--engine ct2")
    result = invoke("generate", "lm-ct2", *ct2, "--max-tokens", "100", ok=False)
    assert_error(result, "64 positions", "--max-tokens 100", "lower --max-tokens")


def test_export_and_engine_refuse_what_they_cannot_do(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ctranslate2")
    run = runs["lm"]
    assert_error(invoke("generate", run, "--engine", "ct2", ok=False),
                 "is a run, not a ct2 export", "gentool export RUN --format ct2")  # fmt: skip
    Path("mine").mkdir()
    (Path("mine") / "notes.txt").write_text("keep me")
    assert_error(invoke("export", run, "--format", "ct2", "-o", "mine", ok=False),
                 "'mine' exists", "--force")  # fmt: skip
    assert_error(invoke("export", run, "--format", "ct2", "-o", "mine", "--force", ok=False),
                 "gentool export did not write", "choose another")  # fmt: skip
    assert (Path("mine") / "notes.txt").read_text() == "keep me"
    assert_error(invoke("generate", "mine", "--engine", "ct2", ok=False),
                 "'mine' is not a ct2 export", "gentool-export.json")  # fmt: skip
    assert_error(invoke("export", run, "--format", "ct2", "-o", run / "ct2", ok=False),
                 "inside the run directory")  # fmt: skip
    assert_error(invoke("export", run, "--format", "merged", "-o", "m", ok=False),
                 "--format merged is for a LoRA run")  # fmt: skip
    assert_error(invoke("export", run, "--format", "arpa", "-o", "x.arpa", ok=False),
                 "cannot export 'arpa'", "ct2, merged")  # fmt: skip
    assert not Path("m").exists() and not Path("x.arpa").exists()

    invoke("export", run, "--format", "ct2", "-o", "again")
    invoke("export", run, "--format", "ct2", "--quantization", "int8", "-o", "again", "--force")
    assert json.loads(Path("again/gentool-export.json").read_text())["quantization"] == "int8"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers

    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # as if not installed
    assert_error(invoke("export", run, "--format", "ct2", "-o", "none", ok=False),
                 "CTranslate2 is not installed", "pip install 'gentool[ct2]'")  # fmt: skip
    assert_error(invoke("generate", "again", "--engine", "ct2", ok=False),
                 "pip install 'gentool[ct2]'")  # fmt: skip
    assert not Path("none").exists()


def test_ngram_quantization_is_refused(corpus: Path) -> None:
    invoke("train", "ngram", "--data", corpus, "--out", "ng")
    result = invoke("export", "ng", "--format", "arpa", "--quantization", "int8", "-o", "x.arpa",
                    ok=False)  # fmt: skip
    assert_error(result, "--quantization is for no format", "drop it for 'arpa'")


# -- --format merged (LoRA) --------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["gpt2", "marian"])
def test_merged_lora_run_loads_everywhere_and_gives_the_adapter_runs_outputs(
    arch: str, tmp_path: Path
) -> None:
    pytest.importorskip("peft")
    lora = ["--set", "train.lora_rank=4", "--set", "train.lr=0.05"]
    (tmp_path / "s.txt").write_text("\n".join(TEXT) + "\n")
    (tmp_path / "t.txt").write_text("\n".join(reversed(TEXT)) + "\n")
    if arch == "gpt2":
        base = save_causal(tmp_path / "base")
        invoke("train", "transformer", "--init", base, "--data", "s.txt", *FINE_TUNE, *lora,
               "--out", "lora")  # fmt: skip
        auto = transformers.AutoModelForCausalLM

        def outputs(run: str, *engine: str) -> list[str]:
            return samples(Path(run), *engine, "--temperature", "0", "--max-tokens", "8")
    else:
        base = save_seq2seq(tmp_path / "base", "marian")
        invoke("train", "transformer", "--init", base, "--source", "s.txt", "--target", "t.txt",
               *STEPS, *lora, "--set", "train.bleu_pairs=0", "--out", "lora")  # fmt: skip
        auto = transformers.AutoModelForSeq2SeqLM

        def outputs(run: str, *engine: str) -> list[str]:
            return translations(Path(run), *engine, "--beam", "1", "--max-tokens", "8")

    invoke("export", "lora", "--format", "merged", "-o", "merged")
    assert not Path("merged/adapter_config.json").exists()
    model = auto.from_pretrained("merged")  # a plain Hugging Face model
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert outputs("merged") == outputs("lora")
    assert invoke_json("info", "merged")["kind"] == ("lm" if arch == "gpt2" else "translator")

    # the merged base converts for CTranslate2 too (transformers' own architectures)
    pytest.importorskip("ctranslate2")
    invoke("export", "lora", "--format", "ct2", "-o", "lora-ct2")
    assert outputs("lora-ct2", "--engine", "ct2") == outputs("lora")
