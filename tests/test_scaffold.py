"""`gentool plugin new`: the scaffold installs, registers its model and passes its tests."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, assert_error, invoke, invoke_json

from gentool import scaffold


def _venv_seeing_this_environment(where: Path) -> Path:
    """A throwaway venv that sees every package of the running environment (gentool,
    numpy, pytest, pip, setuptools) and installs into its own site-packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    own = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    parents = site.getsitepackages() + (
        [site.getusersitepackages()] if site.ENABLE_USER_SITE else []
    )
    lines = [f"import site; site.addsitedir({path!r})" for path in parents]
    Path(own, "_parent_environment.pth").write_text("\n".join(lines) + "\n")
    return python


def test_new_plugin_installs_registers_and_passes_its_tests(tmp_path: Path) -> None:
    if not all(importlib.util.find_spec(m) for m in ("pip", "setuptools")):
        pytest.skip("pip and setuptools are needed to install the plugin")
    invoke("plugin", "new", "bigram")
    python = _venv_seeing_this_environment(tmp_path / "venv")
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(python), *args], capture_output=True, text=True, env=env, timeout=300
        )
        assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
        return result

    run("-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "-e", "./bigram")
    tests = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "./bigram")
    assert "5 passed" in tests.stdout
    models = {m["family"]: m for m in json.loads(run("-m", "gentool", "models", "--json").stdout)}
    assert models["bigram"]["distribution"] == "gentool-bigram"
    assert models["bigram"]["kind"] == "bigram"
    assert models["bigram"]["tasks"] == ["generate-text", "score-text"]
    run("-m", "gentool", "train", "bigram", "--data", "bigram/README.md", "--out", "r")
    first = run("-m", "gentool", "generate", "r", "--seed", "4", "-n", "2").stdout
    assert first == run("-m", "gentool", "generate", "r", "--seed", "4", "-n", "2").stdout
    # ... and the environment gentool's own tests run in is left as it was.
    assert "bigram" not in {m["family"] for m in invoke_json("models")}


def test_layout_and_json_output(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    found = invoke_json("plugin", "new", "char_bigram", "--dir", "work")
    root = tmp_path / "work" / "char_bigram"
    assert found == {
        "path": str(Path("work") / "char_bigram"),
        "family": "char_bigram",
        "distribution": "gentool-char-bigram",
        "package": "gentool_char_bigram",
        "files": [
            ".gitignore",
            "README.md",
            "gentool_char_bigram/__init__.py",
            "gentool_char_bigram/model.py",
            "pyproject.toml",
            "tests/test_char_bigram.py",
        ],
    }
    pyproject = (root / "pyproject.toml").read_text()
    assert 'name = "gentool-char-bigram"' in pyproject
    assert 'char_bigram = "gentool_char_bigram"' in pyproject
    model = (root / "gentool_char_bigram" / "model.py").read_text()
    assert "class CharBigramModel(Model, TextGeneration, TextScoring):" in model
    assert 'family = "char_bigram"' in model
    assert "check_model(CharBigramModel" in (root / "tests/test_char_bigram.py").read_text()
    assert not [p for p in root.rglob("*") if "{{" in p.name or "{{" in _text(p)]
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["char_bigram"]


def _text(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def test_generated_code_is_lint_clean(tmp_path: Path) -> None:
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.skip("ruff is not installed")
    invoke("plugin", "new", "bigram")
    for args in (["check", "bigram"], ["format", "--check", "bigram"]):
        result = subprocess.run([ruff, *args], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_refuses_an_existing_folder(tmp_path: Path) -> None:
    (tmp_path / "bigram").mkdir()
    (tmp_path / "bigram" / "mine.txt").write_text("keep me")
    assert_error(invoke("plugin", "new", "bigram", ok=False), "'bigram' already exists")
    assert [p.name for p in (tmp_path / "bigram").iterdir()] == ["mine.txt"]


@pytest.mark.parametrize("name", ["Bigram", "char-bigram", "1gram", "big__ram", "bigram_", "é"])
def test_rejects_a_name_that_is_not_a_family_name(name: str, tmp_path: Path) -> None:
    assert_error(invoke("plugin", "new", name, ok=False), f"plugin name '{name}' is not valid")
    assert list(tmp_path.iterdir()) == []


def test_rejects_the_name_of_an_installed_family(tmp_path: Path) -> None:
    result = invoke("plugin", "new", "ngram", ok=False)
    assert_error(result, "a family named 'ngram' is already installed", "'gentool'")
    assert_error(invoke("plugin", "new", "x", "--dir", "nope", ok=False), "'nope' does not exist")


def test_a_failure_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(text: str, names: scaffold.PluginNames) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(scaffold, "_render", broken)
    with pytest.raises(OSError, match="disk full"):
        scaffold.new_plugin("bigram", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_help_has_an_example() -> None:
    assert "gentool plugin new bigram" in invoke("plugin", "new", "--help").stdout
    assert "plugin" in invoke("--help").stdout


def test_the_tutorial_shows_the_code_the_scaffold_writes(tmp_path: Path) -> None:
    """Each code block of docs/plugins.md marked `<!-- bigram: FILE -->` is in FILE of
    `gentool plugin new bigram`, verbatim: the tutorial cannot drift from the scaffold."""
    docs = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- bigram: (\S+) -->\n```python\n(.*?)```", docs, re.DOTALL)
    assert len(blocks) >= 8
    invoke("plugin", "new", "bigram")
    for path, block in blocks:
        assert block in (tmp_path / "bigram" / path).read_text(encoding="utf-8"), block
