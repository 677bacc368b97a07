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

    from gentool.model import Model

hookspec = pluggy.HookspecMarker("gentool")


@hookspec
def register_models(register: Callable[[type[Model]], None]) -> None:
    """Register kinds of model.

    :param register: call ``register(ModelClass)`` once for each kind of model the plugin
        provides. ``ModelClass`` subclasses :class:`gentool.model.Model` and the task
        interfaces of :mod:`gentool.tasks` it implements; gentool checks it (a family name,
        config dataclasses, every method of the tasks it claims). A malformed kind is
        refused with one warning naming the plugin and what is missing; the plugin's other
        kinds keep working.

    Called once per process, the first time a command needs the registered kinds. Import
    heavy libraries (torch, transformers) inside the kind's methods, not at module import
    time, so that ``gentool --help`` stays fast.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``gentool`` command line.

    :param cli: the top-level click group; call ``cli.command()`` / ``cli.add_command()``.

    Add a verb only where a new task needs one: the generic commands (train, generate,
    translate, restore, evaluate, info, export, import) already serve any kind by the
    task interfaces it implements.
    """
