"""Counting within a memory budget (plugins/gentool_ngram/streaming.py): the model it
writes is NGramLM.estimate's to the bit, however small the pieces it works in."""

from __future__ import annotations

import gzip
import hashlib
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_error, invoke, invoke_json
from test_ngram_lm import KENLM_MODELS, arpa_entries

from gentool.data import default_text_path, get_tokenizer, read_lines
from gentool.errors import DataError
from gentool.options import format_size, parse_size
from gentool_ngram import streaming
from gentool_ngram.arpa import read_arpa
from gentool_ngram.lm import NGramLM, ScoreSums

# Every piece as small as it goes: 17 bytes of text, runs of 7 positions, merge rounds and
# passes of 5 entries, random-access arrays in parts of 3 to 6 entries (for small texts);
# on the fixture corpus (3,800 positions) 8 runs, rounds of 64, parts of 32 to 64 entries.
TINIEST = streaming.Chunking(17, positions=7, merge_items=5, step=5, dense_bytes=24)
TINY = streaming.Chunking(100, positions=500, merge_items=64, step=64, dense_bytes=256)
METADATA = {"gentool.family": "ngram", "gentool.format": "1"}


def estimate_file(
    tmp_path: Path, text: str | bytes, tokens: str = "whitespace", **kwargs: object
) -> NGramLM:
    data = tmp_path / "train.txt"
    if isinstance(text, str):
        data.write_text(text, encoding="utf-8")
    else:
        data.write_bytes(text)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return streaming.estimate_files([data], tokens, work, METADATA, **kwargs).lm  # type: ignore[arg-type]


def assert_same_model(ours: NGramLM, reference: NGramLM) -> None:
    assert ours.vocab == reference.vocab
    for name in ("keys", "logprobs", "backoffs"):
        for n, (a, b) in enumerate(zip(getattr(ours, name), getattr(reference, name), strict=True)):
            assert np.asarray(a).dtype == b.dtype
            np.testing.assert_array_equal(np.asarray(a), b, err_msg=f"{name} of order {n + 1}")
    assert ours.discounts == reference.discounts
    assert ours.discount_fallback_orders == reference.discount_fallback_orders
    assert ours.meta() == reference.meta()


def sentences(text: str, tokens: str = "whitespace") -> list[list[str]]:
    """What NGramLM.estimate is given for a file holding ``text`` (read_lines' lines)."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    split = get_tokenizer(tokens).split
    return [split(line.removesuffix("\r")) for line in lines]


# The KenLM fixture corpus: the first 400 lines of the embedded sample (tests/data/kenlm).
FIXTURE = "".join(line + "\n" for line in read_lines(default_text_path())[:400])


@pytest.mark.parametrize(("order", "fallback_orders"), [(3, []), (5, [5])])
def test_tiny_chunks_give_the_in_memory_model_and_lmplz_s(
    tmp_path: Path, order: int, fallback_orders: list[int]
) -> None:
    ours = estimate_file(tmp_path, FIXTURE, order=order, chunking=TINY)
    assert_same_model(ours, NGramLM.estimate(sentences(FIXTURE), order=order))
    assert ours.discount_fallback_orders == fallback_orders
    arpa = tmp_path / "kenlm.arpa"
    arpa.write_bytes(gzip.decompress((KENLM_MODELS / f"kenlm-o{order}.arpa.gz").read_bytes()))
    theirs, mine = arpa_entries(read_arpa(arpa)), arpa_entries(ours)
    assert theirs.keys() == mine.keys()
    keys = list(theirs)
    np.testing.assert_allclose([mine[k] for k in keys], [theirs[k] for k in keys], atol=1e-6)


def awkward_text(seed: int) -> str:
    """Blank lines, CRLF, <s> </s> <unk> in the text, a last line without its newline."""
    rng = random.Random(seed)
    words = ["a", "b", "c", "d", "<s>", "</s>", "<unk>", "é", "a\tb"]
    lines = [
        " ".join(rng.choice(words) for _ in range(rng.choice([0, 0, 1, 2, 3, 5, 9])))
        + rng.choice(["", "\r", " "])
        for _ in range(80)
    ]
    return "\n".join(lines)


@pytest.mark.parametrize("smoothing", ["kneser-ney", "add-k", "stupid-backoff"])
@pytest.mark.parametrize("order", [1, 2, 4])
def test_every_smoothing_and_order_on_awkward_text(
    tmp_path: Path, smoothing: str, order: int
) -> None:
    text = awkward_text(order)
    for chunking in (TINIEST, streaming.Chunking.for_memory(2**30)):
        ours = estimate_file(tmp_path, text, order=order, smoothing=smoothing, chunking=chunking)
        reference = NGramLM.estimate(sentences(text), order=order, smoothing=smoothing)
        assert_same_model(ours, reference)


def test_tokenizing_on_worker_processes(tmp_path: Path) -> None:
    on_two = streaming.Chunking(
        100, positions=500, merge_items=64, step=64, dense_bytes=256, processes=2
    )
    ours = estimate_file(tmp_path, FIXTURE, order=3, chunking=on_two)
    assert_same_model(ours, NGramLM.estimate(sentences(FIXTURE), order=3))
    with pytest.raises(DataError, match="NUL byte at offset"):  # a bad piece stops the pool
        estimate_file(tmp_path, FIXTURE + "\x00", chunking=on_two)


@pytest.mark.parametrize("tokens", ["char", "word"])
def test_other_tokenizers(tmp_path: Path, tokens: str) -> None:
    text = FIXTURE[:2000]
    ours = estimate_file(tmp_path, text, tokens, order=4, chunking=TINY)
    assert_same_model(ours, NGramLM.estimate(sentences(text, tokens), order=4))


def test_several_files_and_gzip(tmp_path: Path) -> None:
    first, second = FIXTURE[:3000], awkward_text(7)  # the first ends mid-line
    (tmp_path / "a.txt").write_text(first)
    (tmp_path / "b.txt.gz").write_bytes(gzip.compress(second.encode()))
    work = tmp_path / "work"
    work.mkdir()
    files = [tmp_path / "a.txt", tmp_path / "b.txt.gz"]
    ours = streaming.estimate_files(files, "whitespace", work, METADATA, chunking=TINY).lm
    assert_same_model(ours, NGramLM.estimate(sentences(first) + sentences(second)))


def test_reading_errors_name_the_offset_in_the_file(tmp_path: Path) -> None:
    bad = b"good line\n" * 5 + b"caf\xe9\n"
    with pytest.raises(DataError, match=r"byte 0xe9 at offset 53\)"):
        estimate_file(tmp_path, bad, chunking=TINIEST)
    with pytest.raises(DataError, match="NUL byte at offset 12"):
        estimate_file(tmp_path, b"good line\nab\x00", chunking=TINIEST)
    with pytest.raises(DataError, match="is empty"):
        estimate_file(tmp_path, " \n\t\n\n", chunking=TINIEST)
    with pytest.raises(DataError, match="fewer than the model order 3"):
        estimate_file(tmp_path, "<s> a\nb\n", chunking=TINIEST)


def test_the_longest_line_is_warned_about_as_read_lines_does(tmp_path: Path) -> None:
    """In pieces smaller than the line: its number and length in characters, the first of
    the longest; the same words as warn_long_lines."""
    from gentool.data.text import LONG_LINE, warn_long_lines

    long = "é " * (LONG_LINE // 2 + 1)  # two bytes a character: long in bytes first
    path = tmp_path / "flat.txt"
    path.write_text(f"a b\nc d\n{long}\ne\n{long}\n{long[:-2]}", encoding="utf-8")
    warned: list[str] = []
    for _ in streaming.text_chunks(path, 4096, warned.append):
        pass
    expected: list[str] = []
    warn_long_lines(path, read_lines(path), expected.append)
    assert warned == expected and "line 3 of" in expected[0]
    warned.clear()
    for _ in streaming.text_chunks(path, 4096):  # no log: no warning, nothing else changes
        pass
    path.write_text("a b\n" * 10, encoding="utf-8")
    for _ in streaming.text_chunks(path, 4, warned.append):
        pass
    assert warned == []


def test_unique_matches_numpy_in_both_ways_of_sorting() -> None:
    rng = np.random.default_rng(0)
    for high in (50, 2**40, 2**62):  # small keys are packed with their position
        keys = rng.integers(0, high, 3000)
        keys[::7] = keys[0]
        ours = streaming.unique(keys)
        theirs = np.unique(keys, return_inverse=True, return_counts=True)
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(a, b)


def test_score_sums_add_up() -> None:
    lm = NGramLM.estimate(sentences(FIXTURE), order=3)
    text = sentences(FIXTURE[::-1])  # words seen in other orders, and unseen ones
    whole = lm.score(text)
    pieces = sum((lm.score(text[i : i + 7]).sums() for i in range(0, len(text), 7)), ScoreSums())
    assert (pieces.tokens, pieces.oov) == (whole.num_tokens, whole.num_oov)
    for include_oov in (True, False):
        assert pieces.perplexity(include_oov) == pytest.approx(whole.perplexity(include_oov))
        assert pieces.bits_per_token(include_oov) == pytest.approx(
            whole.bits_per_token(include_oov)
        )


def test_sizes() -> None:
    assert parse_size("2G") == parse_size("2 GiB") == parse_size("2gb") == 2 * 2**30
    assert parse_size("1.5M") == 3 * 2**19
    assert parse_size("4096") == 4096
    assert format_size(2 * 2**30) == "2G"
    assert format_size(1000) == "1000"
    for bad in ("", "G", "two", "0", "-1G", "1e30T"):
        with pytest.raises(ValueError, match="size"):
            parse_size(bad)


# -- the command line --------------------------------------------------------------------------
def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_memory_budget_changes_nothing_in_the_model(tmp_path: Path) -> None:
    # 64K: runs of 4,096 positions, so the embedded sample is counted in several sorted runs.
    invoke("train", "ngram", "--set", "model.order=4", "--out", "big")
    invoke("train", "ngram", "--set", "model.order=4", "--out", "small", "--memory", "64K")
    for name in ("model.safetensors", "vocab.json", "config.json"):
        assert sha256(tmp_path / "big" / name) == sha256(tmp_path / "small" / name), name
    # The scratch folder went with the run; nothing else is left beside the run's files.
    assert not [p for p in (tmp_path / "small").iterdir() if p.name.startswith(".")]
    assert "memory" not in invoke_json("info", "small")["recipe"]  # no part of the model


def test_bad_memory_is_a_usage_error() -> None:
    result = invoke("train", "ngram", "--memory", "lots", ok=False)
    assert result.exit_code == 2
    assert "'lots' is not a size" in result.stderr


def test_a_failed_training_leaves_no_scratch(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_bytes(b"fine\n" * 50 + b"\xff\n")
    assert_error(
        invoke("train", "ngram", "--data", "bad.txt", "--out", "r", "--memory", "64K", ok=False),
        "not UTF-8",
        "offset 250",
    )
    assert not (tmp_path / "r").exists()


def test_evaluate_reads_in_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    invoke("train", "ngram", "--out", "r")
    test = tmp_path / "test.txt"
    test.write_text(FIXTURE[::-1])
    whole = invoke_json("evaluate", "r", "--data", test)["metrics"]
    monkeypatch.setattr("gentool_ngram.family.SCORE_BYTES", 100)
    pieces = invoke_json("evaluate", "r", "--data", test)["metrics"]
    assert pieces == pytest.approx(whole, rel=1e-12)


def test_help_shows_the_default_budget() -> None:
    assert "--memory SIZE" in invoke("train", "--help").stdout
    assert f"[default: {format_size(2 * 2**30)}]" in " ".join(
        invoke("train", "--help").stdout.split()
    )
