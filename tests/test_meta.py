"""Meta-tests, as datasette has: every hook is tested, and every hook, model method, task
interface method, engine hook and kit function is documented in docs/plugins.md with its
exact signature; and the aids for plugin authors (GENTOOL_TRACE_PLUGINS) work."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, fake_distribution, run_gentool

from gentool import hookspecs, testing
from gentool.model import Exportable, Importable, Model
from gentool.tasks import CAPABILITIES

DOCS = REPO / "docs" / "plugins.md"
TESTS = REPO / "tests"


def docs() -> str:
    """docs/plugins.md, with the pipes that tables escape (``\\|``) as written in code."""
    return DOCS.read_text(encoding="utf-8").replace("\\|", "|")


def hook_specs() -> list[Any]:
    return [
        f
        for _, f in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(f, "gentool_spec")
    ]


def signature(function: Callable[..., Any]) -> str:
    """``name(arg: Type = default, *, ...) -> Return`` as written in the source (annotations
    unevaluated), without ``self`` or ``cls``."""
    sig = inspect.signature(function)
    parts, star = [], False
    for p in sig.parameters.values():
        if p.name in ("self", "cls"):
            continue
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
        star = star or p.kind in (p.KEYWORD_ONLY, p.VAR_POSITIONAL)
        text = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name
        if p.annotation is not p.empty:
            text += f": {p.annotation}"
        if p.default is not p.empty:
            text += f" = {p.default!r}"
        parts.append(text)
    returns = "" if sig.return_annotation is sig.empty else f" -> {sig.return_annotation}"
    return f"{function.__name__}({', '.join(parts)}){returns}"


def public_methods(cls: type) -> list[Callable[..., Any]]:
    """The public methods ``cls`` itself defines (classmethods bound to it)."""
    return [
        getattr(cls, name)
        for name, value in vars(cls).items()
        if not name.startswith("_")
        and isinstance(value, (classmethod, staticmethod))
        or (not name.startswith("_") and inspect.isfunction(value))
    ]


def undocumented(functions: list[Callable[..., Any]]) -> list[str]:
    text = docs()
    return [signature(f) for f in functions if f"`{signature(f)}`" not in text]


HOOKS = {f.__name__: f for f in hook_specs()}


def test_there_are_hooks() -> None:
    assert {"register_models", "register_commands"} <= set(HOOKS)


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_every_hook_has_a_test(hook: str) -> None:
    tests = [p for p in TESTS.glob("test_*.py") if p.name != "test_meta.py"]
    assert any(re.search(rf"\b{hook}\b", p.read_text(encoding="utf-8")) for p in tests), hook


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_every_hook_signature_is_documented(hook: str) -> None:
    assert undocumented([HOOKS[hook]]) == []


def test_signature_is_the_hooks_own() -> None:
    assert signature(HOOKS["register_models"]) == (
        "register_models(register: Callable[[type[Model]], None]) -> None"
    )
    assert signature(testing.check_model).startswith(
        "check_model(model_class: type[Model], *, data: Sequence[str | Path] | ParallelPaths"
    )


@pytest.mark.parametrize("interface", CAPABILITIES, ids=lambda c: c.__name__)
def test_every_task_interface_method_is_documented(interface: type) -> None:
    methods = public_methods(interface)
    assert methods
    assert undocumented(methods) == []
    assert f"`{interface.__name__}` (`{interface.task}`)" in docs()  # type: ignore[attr-defined]


def test_every_model_member_is_documented() -> None:
    methods = [*public_methods(Model), *public_methods(Exportable), *public_methods(Importable)]
    assert {m.__name__ for m in methods} >= {"train", "load", "save", "describe", "export"}
    assert undocumented(methods) == []
    attributes = [
        name
        for cls in (Model, Exportable, Importable)
        for name in [*vars(cls), *vars(cls).get("__annotations__", {})]
        if not name.startswith("_") and not callable(getattr(cls, name, None))
    ]
    assert {"family", "kind", "config_class", "selected_by", "trains_on"} <= set(attributes)
    assert [a for a in attributes if f"`{a}`" not in docs()] == []


def test_every_engine_hook_and_neural_step_is_documented() -> None:
    pytest.importorskip("torch")
    from gentool.neural.engine import FitResult, TrainingTask, fit
    from gentool.neural.hf import HFModel

    task_methods = public_methods(TrainingTask)
    assert {m.__name__ for m in task_methods} >= {
        "train_batch", "loss", "evaluate", "param_groups", "on_backward", "on_step_end",
        "log_extras", "carried_state", "restore_carried_state",
    }  # fmt: skip
    steps = [m for m in public_methods(HFModel) if m.__name__ not in ("parameters",)]
    steps = [m for m in steps if m.__name__ not in vars(Model)]  # train, save, load: above
    assert undocumented([*task_methods, *steps, fit, FitResult.summary]) == []
    attributes = ["unit", "find_unused_parameters", "carries_state", "auto_class", "model_type",
                  "modeling_module", "special_tokens"]  # fmt: skip
    assert [a for a in attributes if f"`{a}`" not in docs()] == []


def test_every_kit_export_is_documented() -> None:
    exports = [getattr(testing, name) for name in testing.__all__]
    functions = [f for f in exports if inspect.isfunction(f)]
    assert testing.check_model in functions and testing.fuzz_run in functions
    assert undocumented(functions) == []
    others = [name for name in testing.__all__ if not inspect.isfunction(getattr(testing, name))]
    assert [name for name in others if f"`{name}`" not in docs()] == []


@pytest.mark.parametrize("check", list(testing.CHECKS))
def test_every_check_is_in_the_docs_table(check: str) -> None:
    task = testing.CHECKS[check].task
    applies = task.__name__ if task is not None else "every kind"
    skippable = "yes" if testing.CHECKS[check].skippable else ""
    assert re.search(rf"^\| `{check}` \| {applies} \| {skippable} ?\|", docs(), re.MULTILINE)


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
    assert "ngram.register_models(register=...) -> registered ngram/ngram (NGramModel)" in trace
    assert "hello.register_models(register=...) -> registered hello/hello (HelloModel)" in trace
    assert (
        "badreg.register_models(register=...) -> raised ValueError: registration exploded" in trace
    )
    assert "plugin 'badreg' (gentool-badreg) failed in register_models" in trace


def test_no_trace_unless_asked() -> None:
    for value in (None, "0", ""):
        env = {} if value is None else {"GENTOOL_TRACE_PLUGINS": value}
        result = run_gentool("models", env=env)
        assert result.returncode == 0 and "trace" not in result.stderr
