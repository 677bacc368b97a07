"""Meta-tests, as datasette has: every hook is tested and documented with its exact
signature; and the aids for plugin authors (GENTOOL_TRACE_PLUGINS) work."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from conftest import REPO, fake_distribution, run_gentool

from gentool import hookspecs, testing
from gentool.family import Family

DOCS = REPO / "docs" / "plugins.md"
TESTS = REPO / "tests"


def hook_specs() -> list[object]:
    return [
        f
        for _, f in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(f, "gentool_spec")
    ]


def signature(function: object) -> str:
    """``name(arg: Type, ...) -> Return`` as written in hookspecs.py (annotations unevaluated)."""
    sig = inspect.signature(function)  # type: ignore[arg-type]
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{function.__name__}({params}) -> {sig.return_annotation}"  # type: ignore[attr-defined]


HOOKS = {f.__name__: f for f in hook_specs()}  # type: ignore[attr-defined]


def test_there_are_hooks() -> None:
    assert {"register_models", "register_commands"} <= set(HOOKS)


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_every_hook_has_a_test(hook: str) -> None:
    tests = [p for p in TESTS.glob("test_*.py") if p.name != "test_meta.py"]
    assert any(re.search(rf"\b{hook}\b", p.read_text(encoding="utf-8")) for p in tests), hook


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_every_hook_signature_is_documented(hook: str) -> None:
    assert f"`{signature(HOOKS[hook])}`" in DOCS.read_text(encoding="utf-8")


def test_signature_is_the_hooks_own() -> None:
    assert signature(HOOKS["register_models"]) == (
        "register_models(register: Callable[[type[Family]], None]) -> None"
    )


def test_every_family_member_and_kit_export_is_documented() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    members = [m for m in vars(Family) if not m.startswith("_")]
    assert members
    missing = [m for m in members + testing.__all__ if f"`{m}" not in docs]
    assert missing == []


# -- GENTOOL_TRACE_PLUGINS ------------------------------------------------------------------

RAISES_IN_HOOK = """
import gentool

@gentool.hookimpl
def register_models(register):
    raise ValueError("registration exploded")
"""


def test_trace_shows_each_hook_call_and_result(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    fake_distribution(site, "gentool-badreg", RAISES_IN_HOOK, "badreg")
    env = {"GENTOOL_TRACE_PLUGINS": "1", "PYTHONPATH": str(site)}
    result = run_gentool("hello", "you", env=env)  # a plugin command: both hooks are called
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello, you!\n"  # tracing goes to stderr only
    trace = [line for line in result.stderr.splitlines() if line.startswith("gentool: trace: ")]
    assert "gentool: trace: hello.register_commands(cli=...) -> added command hello" in trace
    assert any(line.startswith("gentool: trace: loaded plugin 'ngram'") for line in trace)

    result = run_gentool("models", env=env)
    trace = result.stderr
    assert "ngram.register_models(register=...) -> registered ngram (NGramFamily)" in trace
    assert "hello.register_models(register=...) -> registered hello (HelloFamily)" in trace
    assert (
        "badreg.register_models(register=...) -> raised ValueError: registration exploded" in trace
    )
    assert "plugin 'badreg' (gentool-badreg) failed in register_models" in trace


def test_no_trace_unless_asked() -> None:
    for value in (None, "0", ""):
        env = {} if value is None else {"GENTOOL_TRACE_PLUGINS": value}
        result = run_gentool("models", env=env)
        assert result.returncode == 0 and "trace" not in result.stderr
