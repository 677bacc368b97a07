"""Shell completion (click's, for bash, zsh and fish): commands, families, runs, recipes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.shell_completion import BashComplete, ZshComplete

from gentool.cli import cli


def complete(line: str) -> list[str]:
    """What bash completes at the end of ``gentool LINE``."""
    return [item.value for item in items(line)]


def items(line: str) -> list[object]:
    args = line.split(" ")
    completion = BashComplete(cli, {}, "gentool", "_GENTOOL_COMPLETE")
    return completion.get_completions(args[:-1], args[-1])  # type: ignore[return-value]


def make_run(path: Path, family: str = "ngram") -> None:
    path.mkdir(parents=True)
    (path / "gentool.json").write_text(f'{{"family": "{family}"}}')


def test_commands() -> None:
    assert complete("ge") == ["generate"]
    assert {"train", "generate", "plugin", "hello"} <= set(complete(""))
    assert complete("plugin n") == ["new"]


def test_families_with_descriptions() -> None:
    assert complete("train ng") == ["ngram"]
    assert {"ngram", "hello"} <= set(complete("train "))
    (ngram,) = items("train ng")
    assert "Markov" in ngram.help  # type: ignore[attr-defined]


def test_run_directories(tmp_path: Path) -> None:
    make_run(tmp_path / "runs" / "ngram")
    make_run(tmp_path / "runs" / "hello", family="hello")
    make_run(tmp_path / "mine")
    (tmp_path / "runs" / "not-a-run").mkdir()
    (tmp_path / "other").mkdir()
    assert complete("generate ") == ["mine", "runs/hello", "runs/ngram"]
    assert complete("generate runs/n") == ["runs/ngram"]
    assert complete("info ./m") == ["./mine"]
    assert complete("evaluate runs/") == ["runs/hello", "runs/ngram"]
    helps = {i.value: i.help for i in items("export ")}  # type: ignore[attr-defined]
    assert helps["runs/hello"] == "hello run"
    # Nothing matches: the shell completes folders.
    (fallback,) = items("generate oth")
    assert (fallback.type, fallback.value) == ("dir", "oth")  # type: ignore[attr-defined]


def test_recipes_by_name_and_file(tmp_path: Path) -> None:
    (tmp_path / "my-recipe.toml").write_text('family = "ngram"\n')
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "big.toml").write_text("")
    assert complete("train --recipe ngram-s") == ["ngram-shakespeare-word3"]
    assert "my-recipe.toml" in complete("train --recipe ")
    assert complete("train -r my") == ["my-recipe.toml"]
    assert complete("train ngram --recipe conf/") == ["conf/big.toml"]
    (fallback,) = items("train --recipe zzz")
    assert fallback.type == "file"  # type: ignore[attr-defined]


def test_zsh_shows_help() -> None:
    completion = ZshComplete(cli, {}, "gentool", "_GENTOOL_COMPLETE")
    (item,) = completion.get_completions(["train"], "ng")
    assert completion.format_completion(item).split("\n")[:2] == ["plain", "ngram"]


def _shell(complete: str, words: str = "", cword: int = 0) -> subprocess.CompletedProcess[str]:
    """``gentool`` run the way the installed completion script runs it."""
    env = {"_GENTOOL_COMPLETE": complete, "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    return subprocess.run(
        [sys.executable, "-m", "gentool"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )


def test_through_the_environment_as_the_shell_calls_it(tmp_path: Path) -> None:
    make_run(tmp_path / "runs" / "ngram")
    assert _shell("bash_complete", "gentool tr", 1).stdout.split() == [
        "plain,train",
        "plain,transform",
        "plain,translate",
    ]
    result = _shell("bash_complete", "gentool generate runs/", 2)
    assert result.stdout.split() == ["plain,runs/ngram"]


@pytest.mark.parametrize(
    ("shell", "marker"), [("bash", "complete -o"), ("zsh", "compdef"), ("fish", "complete")]
)
def test_source_scripts(shell: str, marker: str) -> None:
    result = _shell(f"{shell}_source")
    assert result.returncode == 0 and marker in result.stdout
    assert "_GENTOOL_COMPLETE" in result.stdout


def test_readme_shows_how_to_enable_it() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for shell in ("bash", "zsh", "fish"):
        assert f"_GENTOOL_COMPLETE={shell}_source gentool" in readme
