"""Data sources through the CLI: tables (.jsonl, .parquet, .csv, .tsv), save_to_disk folders
and hf: datasets (from a local cache, offline), read with `datasets`; bad rows; the run's
record of each source."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_error, invoke, run_gentool

from gentool.runs import checkpoints

datasets = pytest.importorskip("datasets")

ROWS = [
    {"text": "the cat sat on the mat .", "n": 1},
    {"text": "the dog sat on the log .", "n": 2},
    {"text": "a cat and a dog sat together .", "n": 3},
    {"text": "the cat saw the dog .", "n": 4},
]
SMALL_RNN = ["--set", "model.hidden_size=8", "--set", "train.max_steps=2"]
SMALL_RNN += ["--set", "train.seq_len=8", "--set", "train.batch_size=2"]


@pytest.fixture(autouse=True)
def _hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """datasets' cache in the test's folder, and no network."""
    cache = tmp_path / "hf-cache"
    for name, value in {
        "HF_DATASETS_CACHE": str(cache),
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    return cache


def write_table(path: Path, rows: list[dict[str, Any]]) -> Path:
    """``rows`` as a .jsonl, .csv, .tsv or .parquet file, or a save_to_disk folder."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif path.suffix in (".csv", ".tsv"):
        frame.to_csv(path, sep="\t" if path.suffix == ".tsv" else ",", index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


def cache_dataset(cache: Path, name: str, rows: list[dict[str, Any]], revision: str) -> None:
    """Put ``rows`` into datasets' cache as the Hub dataset ``name`` at ``revision`` would be,
    so that load_dataset(name) finds it offline."""
    from datasets.packaged_modules.json.json import Json

    source = cache.parent / f"{name}-{revision}.jsonl"
    write_table(source, rows)
    builder = Json(
        cache_dir=str(cache),
        dataset_name=name,
        config_name="default",
        data_files={"train": str(source)},
        hash=revision,
    )
    builder.download_and_prepare()
    # The builder names its folder after its data files; the Hub's is the config's name.
    built = Path(builder.cache_dir).parents[1]
    (cache / name / "default").mkdir(parents=True, exist_ok=True)
    shutil.copytree(built / "0.0.0", cache / name / "default" / "0.0.0", dirs_exist_ok=True)
    shutil.rmtree(built)


def metrics(run: Path) -> dict[str, Any]:
    return json.loads((run / "gentool.json").read_text(encoding="utf-8"))["metrics"]


@pytest.mark.parametrize("name", ["rows.jsonl", "rows.csv", "rows.parquet", "saved"])
def test_every_table_format_trains_what_its_text_would(tmp_path: Path, name: str) -> None:
    text = tmp_path / "rows.txt"
    text.write_text("".join(r["text"] + "\n" for r in ROWS), encoding="utf-8")
    invoke("train", "ngram", "--data", text, "--out", "plain")
    table = write_table(tmp_path / name, ROWS)
    invoke("train", "ngram", "--data", table, "--out", "table")
    for key in ("sentences", "tokens", "ngrams"):
        assert metrics(Path("table"))[key] == metrics(Path("plain"))[key]
    record = json.loads(Path("table/gentool.json").read_text(encoding="utf-8"))
    assert record["data"]["train"][0]["path"] == str(table)
    assert len(record["data"]["train"][0]["sha256"]) == 64


def test_a_tsv_with_a_text_field_is_a_table_and_without_one_stays_parallel(tmp_path: Path) -> None:
    table = write_table(tmp_path / "rows.tsv", [{"body": r["text"]} for r in ROWS])
    invoke("train", "ngram", "--data", table, "--set", "data.text_field=body", "--out", "ng")
    assert metrics(Path("ng"))["sentences"] == len(ROWS)
    # Without a field, a .tsv is headerless source<TAB>target pairs: the translator's data.
    result = invoke("train", "ngram", "--data", table, "--out", "no", ok=False)
    assert_error(result, "ngram trains on text or music", "not on parallel data")


def test_sentence_pairs_from_a_table_train_a_translator(tmp_path: Path) -> None:
    pairs = [{"pair": {"en": r["text"], "de": r["text"][::-1]}} for r in ROWS * 4]
    table = write_table(tmp_path / "pairs.jsonl", pairs)
    args = ["--set", "data.source_field=pair.en", "--set", "data.target_field=pair.de"]
    args += ["--set", "train.max_steps=1", "--set", "train.batch_size=4"]
    invoke("train", "transformer", "--data", table, *args, "--out", "tr")
    record = json.loads(Path("tr/gentool.json").read_text(encoding="utf-8"))
    assert record["kind"] == "translator"
    assert record["recipe"]["data"]["source_field"] == "pair.en"


def test_a_stream_model_reads_a_table_field(tmp_path: Path) -> None:
    table = write_table(tmp_path / "rows.parquet", [{"body": r["text"]} for r in ROWS * 5])
    args = ["--data", table, "--set", "data.text_field=body", *SMALL_RNN]
    invoke("train", "rnn", *args, "--out", "rnn")
    assert metrics(Path("rnn"))["train_tokens"] > 0


@pytest.mark.parametrize(
    ("rows", "fragments"),
    [
        ([{"text": "a b"}, {"text": "c d"}, {"body": "e"}], ["row 3", "field 'text'"]),
        ([{"text": "a b"}, {"text": "   "}], ["row 2", "field 'text'", "empty"]),
        ([{"text": 1}, {"text": 2}], ["row 1", "field 'text'", "not text"]),
        ([{"body": "a"}], ["row 1", "no field 'text'", "body", "data.text_field"]),
    ],
    ids=["missing", "empty", "wrong-type", "no-such-column"],
)
def test_a_bad_row_is_one_error_naming_file_row_and_field(
    tmp_path: Path, rows: list[dict[str, Any]], fragments: list[str]
) -> None:
    table = write_table(tmp_path / "bad.jsonl", rows)
    result = invoke("train", "ngram", "--data", table, "--out", "bad", ok=False)
    assert_error(result, "bad.jsonl", *fragments)
    assert not Path("bad").exists()


def test_a_malformed_file_is_one_error(tmp_path: Path) -> None:
    table = tmp_path / "broken.jsonl"
    table.write_text('{"text": "a"}\n{"text": \n', encoding="utf-8")
    result = invoke("train", "ngram", "--data", table, "--out", "bad", ok=False)
    assert_error(result, "broken.jsonl", "cannot be read as JSONL")


def test_an_hf_dataset_from_the_cache_offline_is_recorded_with_its_revision(
    tmp_path: Path, _hf_cache: Path
) -> None:
    cache_dataset(_hf_cache, "tiny_corpus", ROWS, revision="0123abcd")
    result = run_gentool("train", "ngram", "--data", "hf:tiny_corpus", "--out", "hf")
    assert result.returncode == 0, result.stderr
    record = json.loads(Path("hf/gentool.json").read_text(encoding="utf-8"))
    source = record["data"]["train"][0]
    assert source["path"] == "hf:tiny_corpus"
    assert (source["dataset"], source["split"], source["revision"]) == (
        "tiny_corpus",
        "train",
        "0123abcd",
    )
    assert source["rows"] == len(ROWS) and source["fingerprint"]
    assert metrics(Path("hf"))["sentences"] == len(ROWS)
    # The same dataset named in full is the same source.
    result = run_gentool("train", "ngram", "--data", "hf:tiny_corpus:default:train", "--out", "hf2")
    assert result.returncode == 0, result.stderr
    again = json.loads(Path("hf2/gentool.json").read_text(encoding="utf-8"))
    assert again["data"]["train"][0]["sha256"] == source["sha256"]


def test_an_hf_dataset_not_cached_offline_is_one_error_saying_how_to_get_it() -> None:
    result = run_gentool("train", "ngram", "--data", "hf:no_such_corpus", "--out", "hf")
    assert_error(result, "hf:no_such_corpus", "offline", "load_dataset('no_such_corpus')")
    assert not Path("hf").exists()


def test_an_unknown_split_is_one_error(_hf_cache: Path) -> None:
    cache_dataset(_hf_cache, "tiny_corpus", ROWS, revision="0123abcd")
    result = run_gentool("train", "ngram", "--data", "hf:tiny_corpus::test", "--out", "hf")
    assert_error(result, "hf:tiny_corpus::test", "test", "hf:NAME:CONFIG:SPLIT")


def test_resume_refuses_an_hf_dataset_that_changed(_hf_cache: Path) -> None:
    cache_dataset(_hf_cache, "tiny_corpus", ROWS * 5, revision="0123abcd")
    args = ["train", "rnn", "--data", "hf:tiny_corpus", *SMALL_RNN, "--out", "rnn"]
    result = run_gentool(*args, "--set", "train.checkpoint_every=1")
    assert result.returncode == 0, result.stderr
    shutil.rmtree(checkpoints(Path("rnn"))[-1][1])  # as if stopped after step 1
    # A newer revision of the dataset lands in the cache: the run's data changed.
    cache_dataset(_hf_cache, "tiny_corpus", list(reversed(ROWS * 5)), revision="4567cdef")
    result = run_gentool("train", "rnn", "--resume", "--out", "rnn")
    assert_error(result, "changed", "--override")


@pytest.mark.parametrize("family", ["ngram", "rnn"])
def test_evaluate_reads_the_runs_text_field_from_a_table(tmp_path: Path, family: str) -> None:
    rows = [{"body": r["text"], "n": r["n"]} for r in ROWS * 5]
    table = write_table(tmp_path / "rows.parquet", rows)
    small = SMALL_RNN if family == "rnn" else []
    invoke("train", family, "--data", table, "--set", "data.text_field=body", *small, "--out", "m")
    text = tmp_path / "rows.txt"
    text.write_text("".join(r["body"] + "\n" for r in rows), encoding="utf-8")
    from_table = json.loads(invoke("evaluate", "m", "--data", table, "--json").stdout)
    from_text = json.loads(invoke("evaluate", "m", "--data", text, "--json").stdout)
    assert from_table["metrics"]["tokens"] == from_text["metrics"]["tokens"] > 0
    assert from_table["metrics"]["perplexity"] == pytest.approx(from_text["metrics"]["perplexity"])


def test_repeating_a_run_trained_on_an_hf_dataset(_hf_cache: Path) -> None:
    cache_dataset(_hf_cache, "tiny_corpus", ROWS * 5, revision="0123abcd")
    result = run_gentool("train", "ngram", "--data", "hf:tiny_corpus", "--out", "first")
    assert result.returncode == 0, result.stderr
    result = run_gentool("train", "ngram", "--recipe", "first", "--out", "again")
    assert result.returncode == 0, result.stderr
    first, again = (json.loads(Path(r, "gentool.json").read_text()) for r in ("first", "again"))
    assert again["data"]["train"] == first["data"]["train"]
    assert again["metrics"]["ngrams"] == first["metrics"]["ngrams"]
    scored = run_gentool("evaluate", "again", "--data", "hf:tiny_corpus", "--json")
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["metrics"]["tokens"] > 0
    # A stream model reads it through the token cache, keyed by the dataset's fingerprint.
    args = ["--data", "hf:tiny_corpus", *SMALL_RNN]
    assert run_gentool("train", "rnn", *args, "--out", "rnn").returncode == 0
    result = run_gentool("train", "rnn", "--recipe", "rnn", "--out", "rnn2")
    assert result.returncode == 0, result.stderr
    assert "read from the cache" in result.stderr
