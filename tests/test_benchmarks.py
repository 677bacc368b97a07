"""The benchmark scripts still import what they name.

The scripts in benchmarks/ train for minutes, so no test runs them; but they import gentool's
internals (the engine, the plugins' tasks and networks), usually inside functions, and a
rename there leaves them crashing at the first run, long after the change. This reads every
script with ``ast`` and checks that each ``import gentool...`` / ``from gentool... import a,
b`` (and the same for the ``gentool_*`` plugins), at any depth, resolves: the module imports
and every name exists in it. Nothing is trained.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))

# What the neural families need beyond the core (pyproject's [neural] extra): without one of
# these installed, the modules that need it are skipped, not failed.
OPTIONAL = {"torch", "transformers", "accelerate", "tokenizers", "PIL", "sacrebleu", "kenlm"}

# Kept only so that gentool 0.1's plugins get a clear refusal; gentool's own code uses what
# replaced them.
LEGACY = {"gentool.family": "gentool.model, gentool.kinds and gentool.tasks"}


def _ours(module: str) -> bool:
    root = module.split(".")[0]
    return root == "gentool" or root.startswith("gentool_")


def gentool_imports(script: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) for every import of gentool or a gentool_* plugin in ``script``;
    ``names`` is empty for ``import X``."""
    found = []
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"), str(script))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and _ours(node.module or ""):
            found.append((node.lineno, node.module or "", [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names if _ours(a.name)]
    return sorted(found)


CASES = [
    pytest.param(script, module, names, id=f"{script.name}:{line}:{module}")
    for script in SCRIPTS
    for line, module, names in gentool_imports(script)
]


def _import(module: str) -> object:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] in OPTIONAL:
            pytest.skip(f"{module} needs {e.name}, which is not installed")
        raise


def test_every_script_is_checked() -> None:
    """The list is not empty by accident (a moved folder, a glob that matches nothing)."""
    assert {s.name for s in SCRIPTS} >= {"engine.py", "rnn.py", "transformer_lm.py"}
    assert len(CASES) > 20


def _borrowed(module: Any, name: str) -> str | None:
    """Where ``name`` really lives, when ``module`` only imports it for its own use: a plain
    module (not a package) that neither defines it nor lists it in ``__all__``. Importing it
    from there works until that module stops needing it (``Runtime`` from the engine did)."""
    value = getattr(module, name)
    home = getattr(value, "__module__", None)
    if not (inspect.isclass(value) or inspect.isfunction(value)) or home == module.__name__:
        return None
    if hasattr(module, "__path__") or name in getattr(module, "__all__", ()):
        return None  # a package's or a module's chosen public names
    return home


@pytest.mark.parametrize(("script", "module", "names"), CASES)
def test_benchmark_import_resolves(script: Path, module: str, names: list[str]) -> None:
    where = f"benchmarks/{script.name}"
    assert module not in LEGACY, f"{where}: {module} is the 0.1 shim; use {LEGACY[module]}"
    imported = _import(module)
    problems = []
    for name in names:
        if hasattr(imported, name):
            if home := _borrowed(imported, name):
                problems.append(f"{name} is {home}'s, only imported by {module}")
            continue
        try:  # `from package import submodule` imports it
            _import(f"{module}.{name}")
        except ImportError:
            problems.append(f"{module} has no {name}")
    assert not problems, f"{where}: " + "; ".join(problems)
