"""The plugin system, tested through real entry points and real subprocesses."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from conftest import assert_error, fake_distribution, invoke, invoke_json, run_gentool

BROKEN_ON_IMPORT = """
raise RuntimeError("this plugin is broken on purpose")
"""

BROKEN_ON_REGISTER = """
import gentool

@gentool.hookimpl
def register_models(register):
    raise ValueError("registration exploded")
"""

MISSPELLED_HOOK = """
import gentool

@gentool.hookimpl
def register_model(register):
    pass
"""

HIJACKER = """
import click
import gentool

@gentool.hookimpl
def register_commands(cli):
    @cli.command()
    def train():
        click.echo("hijacked")
"""

SECOND_NGRAM_AND_HELLO = """
import gentool
from gentool_hello import HelloModel
from gentool_ngram import NGramModel

class Impostor(NGramModel):
    pass

class OtherHello(HelloModel):
    pass

@gentool.hookimpl
def register_models(register):
    register(Impostor)
    register(OtherHello)
"""


def _with_site(site: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def test_plugin_is_installed() -> None:
    plugins = {p["name"]: p for p in invoke_json("plugins")}
    assert plugins["hello"]["distribution"] == "gentool-hello"
    assert plugins["hello"]["hooks"] == ["register_commands", "register_models"]
    assert plugins["ngram"]["distribution"] == "gentool"
    assert all(p["error"] is None for p in plugins.values())


def test_third_party_family_found_through_entry_point_in_subprocess(tmp_path: Path) -> None:
    models = json.loads(run_gentool("models", "--json").stdout)
    assert {"hello", "ngram"} <= {m["family"] for m in models}
    (tmp_path / "t.txt").write_text("abcabc\n")
    assert run_gentool("train", "hello", "--data", "t.txt", "--out", "h").returncode == 0
    first = run_gentool("generate", "h", "--seed", "3", "--max-tokens", "20").stdout
    assert first == run_gentool("generate", "h", "--seed", "3", "--max-tokens", "20").stdout
    assert set(first.strip()) <= set("abc") and len(first.strip()) == 20


def test_plugin_command_is_added() -> None:
    assert invoke("hello", "plugin").stdout == "Hello, plugin!\n"


def test_load_plugins_selects_by_name() -> None:
    result = run_gentool("models", "--json", env={"GENTOOL_LOAD_PLUGINS": "ngram"})
    assert {m["family"] for m in json.loads(result.stdout)} == {"ngram"}
    result = run_gentool("plugins", "--json", env={"GENTOOL_LOAD_PLUGINS": ""})
    assert json.loads(result.stdout) == []
    result = run_gentool("train", "ngram", env={"GENTOOL_LOAD_PLUGINS": "hello"})
    assert_error(result, "family 'ngram' is unknown", "hello")
    result = run_gentool("models", env={"GENTOOL_LOAD_PLUGINS": "ngarm,ngram"})
    assert result.returncode == 0
    assert "GENTOOL_LOAD_PLUGINS names 'ngarm', which is not installed" in result.stderr


def test_broken_plugin_is_reported_and_skipped(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    fake_distribution(site, "gentool-broken", BROKEN_ON_IMPORT, "broken")
    fake_distribution(site, "gentool-badreg", BROKEN_ON_REGISTER, "badreg")
    fake_distribution(site, "gentool-typo", MISSPELLED_HOOK, "typo")
    env = _with_site(site)

    result = run_gentool("plugins", "--json", env=env)
    assert result.returncode == 0
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert plugins["broken"]["error"] == "RuntimeError: this plugin is broken on purpose"
    assert plugins["badreg"]["error"] == "ValueError: registration exploded"
    assert "unknown hook 'register_model'" in plugins["typo"]["error"]
    assert plugins["ngram"]["error"] is None
    assert "plugin 'broken' (gentool-broken) failed to load" in result.stderr

    # Every other command keeps working.
    result = run_gentool("train", "ngram", "--out", "r", env=env)
    assert result.returncode == 0, result.stderr
    assert run_gentool("generate", "r", "--seed", "1", env=env).stdout.strip()


def test_two_families_with_one_name_name_both_distributions(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    fake_distribution(site, "gentool-impostor", SECOND_NGRAM_AND_HELLO, "impostor")
    (tmp_path / "t.txt").write_text("abcabc\n")
    # Two plugins: the name is unusable until one is uninstalled.
    result = run_gentool("train", "hello", "--data", "t.txt", env=_with_site(site))
    assert_error(
        result, "family 'hello' is registered by both", "'gentool-hello'", "'gentool-impostor'"
    )
    # A built-in family keeps its name (as gentool's commands do); the other is reported.
    result = run_gentool("train", "ngram", env=_with_site(site))
    assert result.returncode == 0, result.stderr
    assert "family 'ngram' of 'gentool-impostor' has the name of a family built into" in (
        result.stderr
    )
    models = json.loads(run_gentool("models", "--json", env=_with_site(site)).stdout)
    assert {m["family"]: m["distribution"] for m in models}["ngram"] == "gentool"


def test_help_and_plugins_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from gentool.cli import cli\n"
        "for args in (['--help'], ['plugins'], ['models'], ['train', '--help']):\n"
        "    assert CliRunner().invoke(cli, args).exit_code == 0\n"
        "heavy = [m for m in ('torch', 'transformers', 'accelerate') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    import subprocess

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_plugin_cannot_replace_a_builtin_command(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    fake_distribution(site, "gentool-hijack", HIJACKER, "hijack")
    result = run_gentool("train", "ngram", "--out", "r", env=_with_site(site))
    assert result.returncode == 0
    assert "hijacked" not in result.stdout
    result = run_gentool("--help", env=_with_site(site))  # lists, so loads, every command
    assert "tried to replace the command 'train'" in result.stderr
    assert run_gentool("train", "ngram", "--out", "r2", env=_with_site(site)).returncode == 0
