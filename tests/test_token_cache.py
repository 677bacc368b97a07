"""Token caches (gentool.neural.tokencache): the corpus is tokenized once into a
memory-mapped file, reused by the next run on the same data and tokenizer, tokenized again
when either changes or the file is damaged, and gives exactly the ids (and the model)
encoding the whole text in memory gave."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import assert_error, invoke

pytest.importorskip("torch")

from safetensors.torch import load_file  # noqa: E402

from gentool.data.text import SAFE_CUT, read_corpus, safe_pieces  # noqa: E402
from gentool.neural import tokencache  # noqa: E402
from gentool.neural.streams import TokenStream  # noqa: E402
from gentool.neural.tokenizers import encode_text, train_tokenizer  # noqa: E402

TINY = [
    "--set", "model.hidden_size=16",
    "--set", "model.embedding_size=8",
    "--set", "model.num_layers=1",
    "--set", "train.batch_size=2",
    "--set", "train.seq_len=8",
    "--set", "train.max_steps=3",
    "--set", "train.warmup_steps=1",
    "--set", "train.eval_every=0",
    "--set", "train.eval_batches=1",
    "--set", "train.checkpoint_every=0",
]  # fmt: skip

# Spaces before and after line breaks, blank lines, tabs, a line of spaces: where a cut
# could change a tokenizer's output if it were made anywhere but at SAFE_CUT.
TEXT = "".join(
    f"Line {i}: the cat sat  on the mat.\n  indented {i}\n\nword\t{i} \n   \n{'x' * (i % 7)}\n"
    for i in range(300)
)


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many pieces and blocks for a small corpus, so that every join is exercised."""
    monkeypatch.setattr(tokencache, "PIECE_CHARS", 1000)
    monkeypatch.setattr("gentool.data.text.BLOCK_BYTES", 777)


def train(data: Path, out: Path, *extra: str) -> None:
    invoke("train", "rnn", "--data", str(data), "--out", str(out), *TINY, *extra)


def token_files() -> list[Path]:
    return sorted((tokencache.cache_root() / "tokens").glob("*.tokens"))


def test_safe_pieces_join_to_the_text_and_cut_only_where_safe() -> None:
    pieces = list(safe_pieces([TEXT[i : i + 500] for i in range(0, len(TEXT), 500)], 300))
    assert "".join(pieces) == TEXT
    assert len(pieces) > 10
    end = 0
    for piece in pieces[:-1]:
        end += len(piece)
        assert SAFE_CUT.match(TEXT, end - 1), repr(piece[-5:])


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_the_cached_ids_are_the_whole_texts_ids(
    kind: str, tmp_path: Path, small_pieces: None
) -> None:
    data = tmp_path / "corpus.txt"
    data.write_text(TEXT + "no newline at the end, and <|endoftext|> inside", encoding="utf-8")
    whole = read_corpus([data])
    tokenizer = train_tokenizer(kind, [whole], vocab_size=300 if kind == "bpe" else 40)
    ids = tokencache.token_file([data], None, tokenizer, 0)
    assert ids.dtype.name == "uint16"
    assert ids.tolist() == [0, *encode_text(tokenizer, whole)]
    assert ids.tolist() == [0, *tokenizer.encode(whole, add_special_tokens=False)]


def test_a_second_run_reads_the_cache_and_trains_the_same_model(corpus: Path) -> None:
    before = dict(tokencache.built)
    train(corpus, Path("a"))
    assert tokencache.built == {k: v + 1 for k, v in before.items()}
    assert len(token_files()) == 1
    result = invoke("train", "rnn", "--data", str(corpus), "--out", "b", *TINY)
    assert tokencache.built == {k: v + 1 for k, v in before.items()}  # nothing tokenized again
    assert "read from the cache" in result.output
    first, second = load_file("a/model.safetensors"), load_file("b/model.safetensors")
    assert all((first[k] == second[k]).all() for k in first)


def test_changed_data_or_tokenizer_tokenize_again(corpus: Path) -> None:
    train(corpus, Path("a"))
    built = tokencache.built["tokens"]
    train(corpus, Path("b"), "--set", "model.tokens=word")
    assert tokencache.built["tokens"] == built + 1
    corpus.write_text(corpus.read_text() + "one more line .\n")
    train(corpus, Path("c"))
    assert tokencache.built["tokens"] == built + 2
    assert len(token_files()) == 3


@pytest.mark.parametrize("damage", ["truncated", "overwritten", "no metadata"])
def test_a_damaged_cache_file_is_tokenized_again(corpus: Path, damage: str) -> None:
    train(corpus, Path("a"))
    (path,) = token_files()
    good = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "overwritten":
        path.write_bytes(bytes(len(good)))
    else:  # a run killed between the two renames
        path.with_suffix(".json").unlink()
    built = tokencache.built["tokens"]
    train(corpus, Path("b"))
    assert tokencache.built["tokens"] == built + 1
    assert path.read_bytes() == good
    assert json.loads(path.with_suffix(".json").read_text())["count"] * 2 == len(good)
    first, second = load_file("a/model.safetensors"), load_file("b/model.safetensors")
    assert all((first[k] == second[k]).all() for k in first)


def test_a_killed_tokenization_leaves_nothing_a_run_would_read(
    corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenizer = train_tokenizer("char", [read_corpus([corpus])])

    def killed(text: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tokencache, "_encoder", lambda tokenizer, dtype: killed)
    with pytest.raises(KeyboardInterrupt):
        tokencache.token_file([corpus], None, tokenizer, 0)
    left = [p.suffix for p in (tokencache.cache_root() / "tokens").iterdir()]
    assert left == [".lock"]  # (empty; what a later run waits on)


def test_the_cache_folder_follows_gentool_cache_then_xdg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENTOOL_CACHE", str(tmp_path / "g"))
    assert tokencache.cache_root() == tmp_path / "g"
    monkeypatch.delenv("GENTOOL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert tokencache.cache_root() == tmp_path / "x" / "gentool"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert tokencache.cache_root() == tmp_path / "h" / ".cache" / "gentool"


def test_an_unwritable_cache_is_one_error_line(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GENTOOL_CACHE", str(blocker))
    result = invoke("train", "rnn", "--data", str(corpus), "--out", "a", *TINY, ok=False)
    assert_error(result, "cache folder", "GENTOOL_CACHE")
    assert not Path("a").exists()


def test_a_token_stream_reads_windows_as_int64() -> None:
    import numpy as np
    import torch

    stream = TokenStream(np.arange(100, dtype=np.uint16))
    assert stream[3:6].tolist() == [3, 4, 5] and stream[3:6].dtype == torch.int64
    starts = torch.tensor([0, 10])
    assert stream[starts[:, None] + torch.arange(3)].tolist() == [[0, 1, 2], [10, 11, 12]]
    rows = stream.rows(3)
    assert rows.shape == (3, 33)
    assert rows[1:2, 0:2].tolist() == [[33, 34]]
    assert stream.part(90).count(95) == 1 and stream.count(5, start=6) == 0


def test_a_file_touched_but_intact_is_checked_and_reused(corpus: Path) -> None:
    import os

    train(corpus, Path("a"))
    (path,) = token_files()
    os.utime(path, ns=(1, 1))  # not the file written (a copy, say): its sha256 is checked
    built = tokencache.built["tokens"]
    train(corpus, Path("b"))
    assert tokencache.built["tokens"] == built


def test_evaluation_streams_without_filling_the_cache(corpus: Path, tmp_path: Path) -> None:
    train(corpus, Path("a"))
    held_out = tmp_path / "held-out.txt"
    held_out.write_text("the cat sat on the log .\n" * 50)
    before = token_files()
    scored = json.loads(invoke("evaluate", "a", "--data", held_out, "--json").stdout)
    assert token_files() == before  # tokenized into a temporary file, removed
    assert scored["metrics"]["tokens"] == len(held_out.read_text())
    # The training data is in the cache already: read from there.
    built = tokencache.built["tokens"]
    invoke("evaluate", "a", "--data", corpus)
    assert tokencache.built["tokens"] == built


def test_a_vocabulary_past_uint16_is_stored_as_uint32(tmp_path: Path) -> None:
    data = tmp_path / "words.txt"
    data.write_text("".join(f"w{i} w{i + 1}\n" for i in range(70_000)), encoding="utf-8")
    tokenizer = train_tokenizer("word", [read_corpus([data])])
    assert len(tokenizer) > 1 << 16
    ids = tokencache.token_file([data], None, tokenizer, 0)
    assert ids.dtype.name == "uint32"
    assert ids.tolist() == [0, *encode_text(tokenizer, read_corpus([data]))]


def test_processes_tokenizing_the_same_corpus_at_once_build_it_once(corpus: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    tokenizer = train_tokenizer("char", [read_corpus([corpus])])
    built = tokencache.built["tokens"]
    with ThreadPoolExecutor(4) as pool:  # (flock locks apart each open file, threads too)
        results = list(
            pool.map(lambda _: tokencache.token_file([corpus], None, tokenizer, 0), range(4))
        )
    assert tokencache.built["tokens"] == built + 1
    assert all(r.tolist() == results[0].tolist() for r in results)


# -- a translator's sentence pairs ------------------------------------------------------------
TRANSLATOR = [
    "--set", "model.d_model=16",
    "--set", "model.num_layers=1",
    "--set", "model.num_heads=2",
    "--set", "model.d_ff=32",
    "--set", "model.vocab_size=300",
    "--set", "model.context_length=32",
    "--set", "train.batch_size=4",
    "--set", "train.max_steps=3",
    "--set", "train.warmup_steps=1",
    "--set", "train.eval_every=0",
    "--set", "train.checkpoint_every=0",
    "--set", "train.bleu_pairs=2",
]  # fmt: skip
WORDS = ["the", "cat", "dog", "sat", "ran", "on", "a", "mat", "log", "very", "long"]


def write_pairs(folder: Path, count: int = 60) -> tuple[Path, Path]:
    """Aligned files: a few pairs with an empty side, one too long for context_length."""
    source, target = folder / "pairs.en", folder / "pairs.xx"
    lines = [" ".join(WORDS[(i + k) % len(WORDS)] for k in range(1 + i % 6)) for i in range(count)]
    lines[7] = " ".join(WORDS * 6)  # over 32 tokens
    source.write_text("".join(f"{line}\n" for line in lines))
    target.write_text(
        "".join("  \n" if i % 13 == 5 else f"{line[::-1]} !\n" for i, line in enumerate(lines))
    )
    return source, target


def train_translator(source: Path, target: Path, out: str, *extra: str) -> str:
    pairs = ["--source", str(source), "--target", str(target)]
    return invoke("train", "transformer", *pairs, "--out", out, *TRANSLATOR, *extra).output


def test_a_translator_encodes_its_pairs_once_and_trains_the_same_model(tmp_path: Path) -> None:
    from conftest import assert_same_weights

    source, target = write_pairs(tmp_path)
    built = dict(tokencache.built)
    train_translator(source, target, "a")
    assert tokencache.built == {k: v + 1 for k, v in built.items()}  # the BPE, the pairs
    output = train_translator(source, target, "b")
    assert tokencache.built == {k: v + 1 for k, v in built.items()}  # neither again
    assert "sentence pairs: read from the cache" in output
    assert_same_weights(Path("a"), Path("b"))
    facts = [json.loads(Path(run, "gentool.json").read_text())["metrics"] for run in ("a", "b")]
    assert facts[0]["dropped_pairs"] == facts[1]["dropped_pairs"] == {"empty": 5, "too_long": 1}


def test_changed_pairs_or_tokenizer_encode_the_pairs_again(tmp_path: Path) -> None:
    source, target = write_pairs(tmp_path)
    train_translator(source, target, "a")
    built = tokencache.built["tokens"]
    train_translator(source, target, "b", "--set", "model.vocab_size=320")
    assert tokencache.built["tokens"] == built + 1
    target.write_text(target.read_text().replace("!", "?"))
    train_translator(source, target, "c")
    assert tokencache.built["tokens"] == built + 2
    train_translator(target, source, "d")  # the sides swapped: other pairs
    assert tokencache.built["tokens"] == built + 3


def test_cached_pairs_are_the_in_memory_encoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gentool.data.parallel import read_pairs, read_parallel
    from gentool.data.sources import Fields
    from gentool_transformer.marian import encode_pairs, train_joint_bpe
    from gentool_transformer.translator import PairSource

    monkeypatch.setattr(tokencache, "PAIR_BATCH", 7)  # many batches, and a short last one
    source, target = write_pairs(tmp_path)
    corpus = read_parallel(source, target)
    tokenizer = train_joint_bpe(corpus.sources + corpus.targets, 300)
    expected = encode_pairs(tokenizer, corpus)
    pairs, empty = PairSource.parallel(source, target, Fields()).encoded(tokenizer, print)
    assert list(pairs) == expected and empty == corpus.dropped["empty"] == 5
    assert pairs.source_lengths.tolist() == [len(s) for s, _ in expected]
    assert pairs[3:9][2] == expected[5] and len(pairs[::2]) == 28
    # The same pairs as one TSV, and as a table with named fields.
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("".join(f"{s}\t{t}\n" for s, t in corpus.pairs))
    table = tmp_path / "pairs.jsonl"
    table.write_text("".join(json.dumps({"en": s, "xx": t}) + "\n" for s, t in corpus.pairs))
    fields = Fields(source="en", target="xx")
    for path, read_with in ((tsv, Fields()), (table, fields)):
        pairs, empty = PairSource.files([path], read_with).encoded(tokenizer, print)
        assert list(pairs) == encode_pairs(tokenizer, read_pairs(path, read_with)) == expected
        assert empty == 0


def test_misaligned_pairs_are_one_error_and_cache_nothing(tmp_path: Path) -> None:
    source, target = write_pairs(tmp_path)
    target.write_text(target.read_text() + "one more\n")
    pairs = ["--source", str(source), "--target", str(target)]
    result = invoke("train", "transformer", *pairs, "--out", "a", *TRANSLATOR, ok=False)
    assert_error(result, "not aligned", "has 60 lines", "has 61")
    assert not Path("a").exists()
    assert not list((tokencache.cache_root() / "tokens").glob("*.tokens*"))
