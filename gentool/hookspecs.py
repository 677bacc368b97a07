"""The plugin contract: the hooks a gentool plugin may implement.

A plugin is a module named by an entry point in the ``gentool`` group::

    [project.entry-points.gentool]
    markov = "gentool_markov"

whose module defines functions decorated with ``@gentool.hookimpl`` whose names and
arguments are those below. Every argument is optional in an implementation: pluggy
passes only the ones the implementation names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from gentool.family import Family

hookspec = pluggy.HookspecMarker("gentool")


@hookspec
def register_models(register: Callable[[type[Family]], None]) -> None:
    """Register model families.

    :param register: call ``register(FamilyClass)`` once for each family the plugin
        provides. ``FamilyClass`` subclasses :class:`gentool.family.Family`; gentool
        checks it (a name, tasks it supports, a config dataclass) and raises
        ``PluginError`` naming the plugin when it is malformed or its name is taken.

    Called once per process, the first time a command needs the list of families.
    Import heavy libraries (torch, transformers) inside the family's methods, not at
    module import time, so that ``gentool --help`` stays fast.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``gentool`` command line.

    :param cli: the top-level click group; call ``cli.command()`` / ``cli.add_command()``.

    Families add a verb only where their task needs one (``translate``, ``restore``);
    the generic commands (train, generate, evaluate, info, export) already dispatch to
    any family by the tasks it declares.
    """
