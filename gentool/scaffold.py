"""``gentool plugin new NAME``: a ready third-party plugin distribution, from templates.

The templates live in ``gentool/_templates/plugin``; ``{{placeholder}}`` in their text is
replaced, and their paths renamed (``package/`` -> ``gentool_NAME/``, ``*.tmpl`` -> ``*``).
What comes out installs (``pip install -e ./NAME``), registers the model ``NAME``
(``gentool models``) and passes its own tests, gentool's conformance kit among them.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from gentool import __version__
from gentool.errors import GentoolError, PluginError
from gentool.output.files import check_can_create
from gentool.runs import check_outside_runs

TEMPLATES = ("_templates", "plugin")  # inside the gentool package
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class PluginNames:
    """The names one plugin NAME gives: family, distribution, package, class prefix."""

    name: str  # the family: gentool train NAME
    distribution: str  # pip install gentool-NAME
    package: str  # import gentool_NAME
    class_prefix: str  # NAMEModel, NAMEConfig in CamelCase

    @classmethod
    def of(cls, name: str) -> PluginNames:
        if not NAME_PATTERN.fullmatch(name) or name.endswith("_") or "__" in name:
            raise PluginError(
                f"plugin name '{name}' is not valid: use lowercase letters, digits and single "
                "underscores, starting with a letter (e.g. 'bigram' or 'char_bigram'); it "
                "becomes the family name"
            )
        return cls(
            name=name,
            distribution=f"gentool-{name.replace('_', '-')}",
            package=f"gentool_{name}",
            class_prefix="".join(part.capitalize() for part in name.split("_")),
        )

    def substitutions(self) -> dict[str, str]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "package": self.package,
            "class_prefix": self.class_prefix,
            "gentool_version": __version__,
        }


def _target_name(part: str, names: PluginNames) -> str:
    part = part.removesuffix(".tmpl")
    renames = {
        "package": names.package,
        "gitignore": ".gitignore",
        "test_package.py": f"test_{names.name}.py",
    }
    return renames.get(part, part)


def _render(text: str, names: PluginNames) -> str:
    for key, value in names.substitutions().items():
        text = text.replace("{{" + key + "}}", value)
    leftover = re.search(r"\{\{\w+\}\}", text)
    if leftover:  # a template names a placeholder that does not exist: a bug in gentool
        raise AssertionError(f"unknown template placeholder {leftover.group()}")
    return text


def _copy_tree(source: Traversable, target: Path, names: PluginNames) -> list[Path]:
    written = []
    for entry in sorted(source.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__":
            continue
        destination = target / _target_name(entry.name, names)
        if entry.is_dir():
            destination.mkdir()
            written += _copy_tree(entry, destination, names)
        elif entry.name.endswith(".tmpl"):
            destination.write_text(_render(entry.read_text(encoding="utf-8"), names), "utf-8")
            written.append(destination)
    return written


def new_plugin(name: str, parent: str | Path = ".") -> tuple[Path, list[Path]]:
    """Create the plugin distribution ``parent/NAME``; return it and the files written.

    Refuses a folder that exists. The folder is built under a temporary name beside it
    and renamed when complete, so a failure leaves nothing half-written.
    """
    names = PluginNames.of(name)
    from gentool.plugins import get_registry

    registry = get_registry()
    if name in registry.kinds:
        owner = registry.owners[name].distribution
        raise PluginError(
            f"a family named '{name}' is already installed (by '{owner}'); choose another name"
        )
    parent = Path(parent)
    target = parent / name
    if target.exists() or target.is_symlink():
        raise GentoolError(
            f"'{target}' already exists; choose another NAME, or another folder with --dir"
        )
    if not parent.is_dir():
        raise GentoolError(f"folder '{parent}' does not exist; create it first or change --dir")
    check_outside_runs(target, "--dir")
    check_can_create(target, "--dir")
    building = parent / f".{name}.{secrets.token_hex(4)}.tmp"
    building.mkdir()
    try:
        written = _copy_tree(resources.files("gentool").joinpath(*TEMPLATES), building, names)
        os.rename(building, target)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return target, sorted(target / path.relative_to(building) for path in written)
