"""docs/api.md cannot rot: its ```python examples run, in order, in one session, as a
reader copying them would; every public name of ``gentool.api`` has its section there,
each function and class with its exact signature (in a ```text block)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from gentool import api

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[tuple[int, str]]:
    """The fenced blocks of ``language`` in docs/api.md: (first line number, code)."""
    text = DOC.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, m.start(2)) + 1, m.group(2))
        for m in FENCE.finditer(text)
        if m.group(1) == language
    ]


def test_the_examples_run(tmp_path: Path) -> None:
    """In the empty folder conftest's ``_isolated`` changed to, on one torch thread."""
    pytest.importorskip("torch")  # (the examples train the neural families too)
    namespace: dict[str, Any] = {"__name__": "__api_docs__"}
    for line, code in blocks("python"):
        # Padded to its line, so that a failure's traceback points into docs/api.md.
        exec(compile("\n" * (line - 1) + code, str(DOC), "exec"), namespace)
    # What the examples say they did, they did.
    assert namespace["rnn"].meta["metrics"]["steps"] == 6  # resumed from 4 to 6
    assert namespace["translator"].kind == "translator"
    assert api.info(tmp_path / "runs/imported")["imported_from"]["format"] == "arpa"
    assert (tmp_path / "ng2.arpa").read_text().startswith("\\data\\")
    assert (tmp_path / "grid.png").is_file() and (tmp_path / "restored.png").is_file()
    samples = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert samples == [f"sample-{i:04d}.png" for i in range(4)]
    assert sorted(p.name for p in (tmp_path / "restored").iterdir()) == samples
    assert len(namespace["sevens"]) == 2 and namespace["gan"].classes()[7] == "7"


def _squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def written(name: str, obj: object) -> str:
    """``obj``'s signature as its source writes it (annotations are strings under
    ``from __future__ import annotations``; a function default by its name)."""
    signature = inspect.signature(obj)  # type: ignore[arg-type]
    parts, star = [], False
    for p in signature.parameters.values():
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        part = p.name if p.annotation is p.empty else f"{p.name}: {p.annotation}"
        if p.default is not p.empty:
            default = getattr(p.default, "__name__", None) or repr(p.default)
            part += f" = {default}"
        parts.append(part)
    returns = signature.return_annotation
    shown = "" if returns in (inspect.Signature.empty, None, "None") else f" -> {returns}"
    return f"api.{name}({', '.join(parts)}){shown}"


def test_every_public_name_is_documented_with_its_signature() -> None:
    text = DOC.read_text(encoding="utf-8")
    signatures = _squeezed("".join(code for _, code in blocks("text")))
    missing, wrong = [], []
    for name in api.__all__:
        if f"### {name}\n" not in text:
            missing.append(name)
        obj = getattr(api, name)
        callable_ = inspect.isfunction(obj) or inspect.isclass(obj)  # (RunLike is a type alias)
        if callable_ and _squeezed(written(name, obj)) not in signatures:
            wrong.append(written(name, obj))
    assert (missing, wrong) == ([], [])


def test_every_example_block_is_python_or_a_signature() -> None:
    """A block of another language would be skipped by both tests above, unnoticed."""
    languages = {m.group(1) for m in FENCE.finditer(DOC.read_text(encoding="utf-8"))}
    assert languages == {"python", "text"}
