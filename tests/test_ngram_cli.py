"""The ngram family end to end from the command line, on real text."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
from conftest import SHARED_DATA, assert_error, invoke, invoke_json, strict_json

from gentool.data import default_text_path, get_tokenizer


def test_main_job_trains_on_embedded_data_and_generates(tmp_path: Path) -> None:
    invoke("train", "ngram")
    run = tmp_path / "runs" / "ngram"
    assert {p.name for p in run.iterdir()} == {
        "gentool.json",
        "config.json",
        "model.safetensors",
        "vocab.json",
        "metrics.jsonl",
        "README.md",
    }
    meta = json.loads((run / "gentool.json").read_text())
    embedded = default_text_path()
    assert meta["family"] == "ngram"
    assert meta["seed"] == 0
    assert meta["recipe"]["model"]["order"] == 3
    assert meta["data"]["train"][0]["sha256"] == hashlib.sha256(embedded.read_bytes()).hexdigest()
    assert meta["metrics"]["tokens"] > 20_000
    assert "## Samples (seed 0)" in (run / "README.md").read_text()

    first = invoke("generate", run, "--seed", "1", "-n", "3").stdout
    assert first == invoke("generate", run, "--seed", "1", "-n", "3").stdout
    assert first != invoke("generate", run, "--seed", "2", "-n", "3").stdout
    assert len(first.splitlines()) == 3
    # A quarter of the sample's lines are blank, but a sample is never empty.
    samples = invoke_json("generate", run, "-n", "50", "--seed", "3")["samples"]
    assert all(sample.strip() for sample in samples)


def test_generation_flags(tmp_path: Path, corpus: Path) -> None:
    invoke("train", "ngram", "--data", corpus, "--out", "r")
    greedy = invoke_json(
        "generate", "r", "--prompt", "the dog", "--temperature", "0", "--seed", "1"
    )["samples"]
    assert (
        greedy
        == invoke_json("generate", "r", "--prompt", "the dog", "--temperature", "0", "--seed", "9")[
            "samples"
        ]
    )
    assert (
        greedy
        == invoke_json("generate", "r", "--prompt", "the dog", "--top-k", "1", "--seed", "3")[
            "samples"
        ]
    )
    assert greedy[0].startswith("the dog ")
    samples = invoke_json(
        "generate", "r", "--prompt", "the", "--max-tokens", "3", "-n", "20", "--seed", "4"
    )["samples"]
    assert all(len(s.split()) <= 4 for s in samples)  # the prompt + at most 3 new tokens
    assert all(s.startswith("the") for s in samples)
    # Every sampled word was seen in training; <s> and <unk> are never emitted.
    seen = set(corpus.read_text().split())
    long = invoke_json("generate", "r", "-n", "20", "--seed", "5", "--top-p", "0.9")["samples"]
    assert {w for s in long for w in get_tokenizer("word").split(s)} <= seen


def test_evaluate_reports_perplexity_and_oov(tmp_path: Path, corpus: Path) -> None:
    invoke("train", "ngram", "--data", corpus, "--out", "r")
    test = tmp_path / "test.txt"
    test.write_text("the zebra sat on the mat .\nthe dog sat .\n")
    metrics = invoke_json("evaluate", "r", "--data", test)["metrics"]
    assert metrics["tokens"] == 13  # 7 + 4 words, and one </s> per sentence
    assert metrics["oov"] == 1
    assert metrics["perplexity"] == pytest.approx(2 ** metrics["bits_per_token"], rel=1e-9)
    assert metrics["perplexity_excluding_oov"] < metrics["perplexity"]


def test_arpa_export_import_round_trip(tmp_path: Path, corpus: Path) -> None:
    invoke("train", "ngram", "--data", corpus, "--out", "r", "--set", "model.tokens=whitespace")
    invoke("export", "r", "--format", "arpa", "-o", "m.arpa")
    assert (tmp_path / "m.arpa").read_text().startswith("\\data\\\n")
    invoke("import", "ngram", "m.arpa", "--out", "back")
    original = invoke_json("evaluate", "r", "--data", corpus)["metrics"]
    imported = invoke_json("evaluate", "back", "--data", corpus)["metrics"]
    assert imported["perplexity"] == pytest.approx(original["perplexity"], rel=1e-5)
    assert invoke_json("info", "back")["imported_from"]["format"] == "arpa"
    assert invoke("generate", "back", "--seed", "1").stdout.strip()
    assert_error(invoke("import", "ngram", "m.arpa", "--out", "back", ok=False), "already exists")


def test_kenlm_scores_our_arpa_identically(tmp_path: Path, corpus: Path) -> None:
    kenlm = pytest.importorskip("kenlm")
    invoke("train", "ngram", "--data", corpus, "--out", "r", "--set", "model.tokens=whitespace")
    invoke("export", "r", "--format", "arpa", "-o", "m.arpa")
    model = kenlm.Model(str(tmp_path / "m.arpa"))
    test = tmp_path / "test.txt"
    test.write_text("the cat sat on the log .\na zebra saw the mat\n")
    ours = invoke_json("evaluate", "r", "--data", test)["metrics"]
    log10 = sum(model.score(line, bos=True, eos=True) for line in test.read_text().splitlines())
    assert ours["perplexity"] == pytest.approx(10 ** (-log10 / ours["tokens"]), rel=1e-5)


def test_info_shows_the_combinatorial_explosion(corpus: Path) -> None:
    invoke("train", "ngram", "--data", corpus, "--out", "r", "--set", "model.order=4")
    facts = invoke_json("info", "r")
    model = facts["model"]
    vocab = model["vocab_size"]
    assert [n["possible"] for n in model["ngrams"]] == [vocab**n for n in range(1, 5)]
    assert all(0 < n["distinct"] <= n["possible"] for n in model["ngrams"])
    assert model["model_bytes"] > 0
    assert facts["recipe"]["model"]["order"] == 4
    assert "vocab_size" in invoke("info", "r").stdout


@pytest.mark.parametrize("smoothing", ["kneser-ney", "add-k", "stupid-backoff"])
def test_char_models_on_real_names(tmp_path: Path, smoothing: str) -> None:
    names = SHARED_DATA / "makemore_names" / "names.txt"
    if not names.exists():
        pytest.skip("../shared/data is not present")
    lines = names.read_text().splitlines()[:5000]
    (tmp_path / "train.txt").write_text("\n".join(lines[i] for i in range(5000) if i % 10) + "\n")
    (tmp_path / "test.txt").write_text("\n".join(lines[::10]) + "\n")
    invoke(
        "train",
        "ngram",
        "--data",
        "train.txt",
        "--val",
        "test.txt",
        "--out",
        "r",
        "--set",
        "model.tokens=char",
        "--set",
        "model.order=4",
        "--set",
        f"model.smoothing={smoothing}",
    )
    metrics = invoke_json("evaluate", "r", "--data", "test.txt")["metrics"]
    # 27 symbols (uniform: perplexity 27; a unigram model: 15.4 here). Order 4 measured:
    # 6.7 (kneser-ney), 7.0 (add-k), 6.5 (stupid-backoff, unnormalised).
    assert metrics["perplexity"] < 7.5
    meta = json.loads((tmp_path / "r" / "gentool.json").read_text())
    assert meta["metrics"]["val_perplexity"] == pytest.approx(metrics["perplexity"])
    names_out = invoke_json("generate", "r", "-n", "10", "--seed", "0")["samples"]
    assert all(name.isalpha() and name.islower() for name in names_out if name)
    assert math.isfinite(metrics["bits_per_token"])


def test_json_stays_strict_when_a_perplexity_is_infinite(tmp_path: Path, corpus: Path) -> None:
    invoke(
        "train", "ngram", "--data", corpus, "--out", "sb", "--set", "model.smoothing=stupid-backoff"
    )
    (tmp_path / "t.txt").write_text("the zebra sat\n")
    metrics = invoke_json("evaluate", "sb", "--data", "t.txt")["metrics"]  # strict json.loads
    assert metrics["oov"] == 1 and metrics["normalized"] is False
    assert metrics["perplexity"] is None  # unknown words score 0 under stupid backoff
    assert metrics["perplexity_excluding_oov"] > 1


def test_char_model_export_explains_why_not(corpus: Path) -> None:
    invoke("train", "ngram", "--data", corpus, "--out", "c", "--set", "model.tokens=char")
    result = invoke("export", "c", "--format", "arpa", "-o", "c.arpa", ok=False)
    assert_error(result, "token ' ' cannot be written to an ARPA file", "word or whitespace")
    assert not Path("c.arpa").exists()


def test_tiny_corpus_uses_the_documented_fallback_discounts(tmp_path: Path) -> None:
    (tmp_path / "tiny.txt").write_text("a b\nb a b\n")
    result = invoke("train", "ngram", "--data", "tiny.txt", "--out", "r")
    # lmplz stops here with BadDiscountException unless given --discount_fallback, and then
    # substitutes for its (0-based) orders 1 and 2.
    assert "Kneser-Ney discounts of order 2, 3 are undefined" in result.stderr
    assert "using the fallback [0.5, 1.0, 1.5]" in result.stderr
    discounts = invoke_json("info", "r")["model"]["discounts"]
    assert discounts["2"] == discounts["3"] == [0.5, 1.0, 1.5]
    assert discounts["1"] != [0.5, 1.0, 1.5]


def test_train_from_a_shipped_recipe_by_name(tmp_path: Path, corpus: Path) -> None:
    result = invoke("train", "--recipe", "ngram-names-char5", "--data", corpus, "--json")
    record = strict_json(result.stdout)
    assert (record["run"], record["family"], record["kind"]) == ("runs/ngram", "ngram", "ngram")
    recipe = invoke_json("info", "runs/ngram")["recipe"]
    assert (recipe["model"]["order"], recipe["model"]["tokens"]) == (5, "char")
