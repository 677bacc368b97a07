"""Text reading and the simple tokenizers."""

from __future__ import annotations

from pathlib import Path

import pytest

from gentool.data import default_text_path, get_tokenizer, read_corpus, read_lines, read_text
from gentool.errors import DataError, RecipeError


@pytest.mark.parametrize(
    ("name", "text", "tokens", "joined"),
    [
        ("char", "ab c", ["a", "b", " ", "c"], "ab c"),
        ("whitespace", " to  be,\tor ", ["to", "be,", "or"], "to be, or"),
        (
            "word",
            "Nay, 'tis well-met; don't (go)!",
            ["Nay", ",", "'tis", "well-met", ";", "don't", "(", "go", ")", "!"],
            "Nay, 'tis well-met; don't (go)!",
        ),
        ("word", "Größe über alles.", ["Größe", "über", "alles", "."], "Größe über alles."),
    ],
)
def test_tokenizers_split_and_join(name: str, text: str, tokens: list[str], joined: str) -> None:
    tokenizer = get_tokenizer(name)
    assert tokenizer.split(text) == tokens
    assert tokenizer.join(tokens) == joined


def test_unknown_tokenizer() -> None:
    with pytest.raises(RecipeError, match="tokens 'bpe' is unknown; valid values: char, word"):
        get_tokenizer("bpe")


def test_read_text_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("one\ntwo\r\nthree\n", encoding="utf-8")
    assert read_lines(path) == ["one", "two", "three"]
    # Only newlines end lines, as for KenLM: a form feed or U+2028 stays inside its line.
    path.write_text("page\x0cbreak\nsep\u2028arator\n\nlast", encoding="utf-8")
    assert read_lines(path) == ["page\x0cbreak", "sep\u2028arator", "", "last"]
    with pytest.raises(DataError, match="is a directory"):
        read_text(tmp_path)


def test_embedded_sample_is_shipped() -> None:
    path = default_text_path()
    text = read_text(path)
    assert text.startswith("First Citizen:\n")
    assert len(text) > 100_000
    assert (path.parent / "README.md").read_text().count("public domain") >= 1


def test_read_corpus_ends_every_file_with_a_newline(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("first line\nno newline at the end")
    (tmp_path / "b.txt").write_text("second file\n")
    text = read_corpus([tmp_path / "a.txt", tmp_path / "b.txt"])
    assert text == "first line\nno newline at the end\nsecond file\n"
