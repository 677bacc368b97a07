"""Finding plugins through entry points, isolating broken ones, and registering their kinds.

Nothing is loaded at import time: ``get_plugin_manager()`` loads the entry points of the
``gentool`` group the first time it is called. A plugin that fails to import, or whose
hook raises, is recorded in ``load_errors()``, reported once on stderr, and skipped;
every other plugin keeps working.
"""

from __future__ import annotations

import functools
import importlib.metadata as metadata
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from gentool import hookspecs
from gentool.errors import PluginError
from gentool.interrupts import threads_started_here_ignore_interrupts
from gentool.kinds import Registry, check_kind
from gentool.model import Model

ENTRY_POINT_GROUP = "gentool"
BUILTIN_DISTRIBUTION = "gentool"  # the families that ship with gentool (plugins/)
TRACE_VARIABLE = "GENTOOL_TRACE_PLUGINS"


def tracing() -> bool:
    """Whether ``GENTOOL_TRACE_PLUGINS`` asks for a line on stderr per plugin hook call."""
    return os.environ.get(TRACE_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def trace(message: str) -> None:
    if tracing():
        print(f"gentool: trace: {message}", file=sys.stderr)


@dataclass
class PluginInfo:
    """One entry point of the ``gentool`` group, loaded or not."""

    name: str
    module: str
    distribution: str
    version: str
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    refused: list[str] = field(default_factory=list)  # kinds it registered that were refused

    @property
    def builtin(self) -> bool:
        return self.distribution == BUILTIN_DISTRIBUTION

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": self.hooks,
            "error": self.error,
            "refused": self.refused,
        }


class LoadedPlugins:
    """The pluggy manager with the entry points loaded, and what became of each."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("gentool")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self._notes: list[str] = []
        self._load_entry_points()

    def _load_entry_points(self) -> None:
        selection = os.environ.get("GENTOOL_LOAD_PLUGINS")
        wanted = None if selection is None else {s.strip() for s in selection.split(",") if s}
        # By name; of two with one name, gentool's own first, so that it keeps the name.
        entry_points = sorted(
            metadata.entry_points(group=ENTRY_POINT_GROUP),
            key=lambda e: (e.name, _distribution(e) != BUILTIN_DISTRIBUTION, _distribution(e)),
        )
        for name in sorted((wanted or set()) - {ep.name for ep in entry_points}):
            installed = ", ".join(ep.name for ep in entry_points) or "none"
            print(
                f"gentool: warning: GENTOOL_LOAD_PLUGINS names '{name}', which is not "
                f"installed; installed plugins: {installed}",
                file=sys.stderr,
            )
        for ep in entry_points:
            if wanted is not None and ep.name not in wanted:
                continue
            dist = ep.dist
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                distribution=_distribution(ep),
                version=dist.version if dist else "?",
            )
            taken = next((p for p in self.plugins if p.name == ep.name), None)
            if taken is not None and taken.distribution == info.distribution:
                continue  # the same distribution seen twice on sys.path
            self.plugins.append(info)
            if taken is not None:
                # Loading it would replace (and, if it is broken, unregister) the plugin
                # that has the name: one distribution must not hide another's families.
                self._report(
                    info,
                    "is skipped",
                    PluginError(
                        f"the entry point name '{ep.name}' is taken by '{taken.distribution}' "
                        f"({taken.module}); rename the entry point in {info.distribution}"
                    ),
                )
                continue
            try:
                with threads_started_here_ignore_interrupts():  # see gentool.interrupts
                    module = ep.load()
                self.pm.register(module, name=ep.name)
                self.pm.check_pending()  # a misspelled hook name fails this plugin only
                info.hooks = sorted(hc.name for hc in self.pm.get_hookcallers(module) or ())
                trace(
                    f"loaded plugin '{ep.name}' = {ep.value} ({info.distribution} "
                    f"{info.version}); hooks: {', '.join(info.hooks) or 'none'}"
                )
            except KeyboardInterrupt:
                raise
            except BaseException as err:  # a broken plugin (even one calling sys.exit) must
                self._fail(info, "failed to load", err)  # not break gentool

    def _fail(self, info: PluginInfo, what: str, err: BaseException) -> None:
        self._report(info, what, err)
        if self.pm.get_plugin(info.name) is not None:
            self.pm.unregister(name=info.name)

    def _report(self, info: PluginInfo, what: str, err: BaseException) -> None:
        if info.error is None:
            info.error = _describe(err)
            ending = "" if what == "is skipped" else "; it is skipped"
            print(
                f"gentool: warning: plugin '{info.name}' ({info.distribution}) {what}: "
                f"{info.error}{ending}",
                file=sys.stderr,
            )

    def call_each(
        self,
        hook_name: str,
        arguments: Callable[[PluginInfo], dict[str, Any]],
        after: Callable[[PluginInfo], None] | None = None,
    ) -> None:
        """Call ``hook_name`` on every plugin separately, so one failure stays local.

        ``arguments(plugin)`` gives the hook's arguments for that plugin (so a
        ``register`` callback knows whom it registers for); ``after(plugin)``, if given,
        runs after each successful call. With ``GENTOOL_TRACE_PLUGINS=1`` each call, and
        what it did or returned or raised, is printed on stderr. Every hook is called here.
        """
        by_name: dict[str, PluginInfo] = {}
        for p in self.plugins:  # the loaded one of two with a name comes first
            by_name.setdefault(p.name, p)
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            info = by_name[impl.plugin_name]
            self._notes = []
            call = f"{info.name}.{hook_name}({', '.join(f'{a}=...' for a in impl.argnames)})"
            try:
                args = arguments(info)
                result = impl.function(**{name: args[name] for name in impl.argnames})
                if after is not None:
                    after(info)
            except KeyboardInterrupt:
                raise
            except BaseException as err:  # SystemExit too: a hook must not end gentool
                trace(f"{call} -> raised {_describe(err)}")
                self._fail(info, f"failed in {hook_name}", err)
            else:
                shown = [*self._notes, *([] if result is None and self._notes else [repr(result)])]
                trace(f"{call} -> {'; '.join(shown)}")

    def note(self, message: str) -> None:
        """Record what the hook being called did, for its GENTOOL_TRACE_PLUGINS line."""
        self._notes.append(message)


def _distribution(ep: metadata.EntryPoint) -> str:
    return ep.dist.name if ep.dist else "?"


# Modules of gentool 0.1's documented plugin contract that moved in 0.2: a plugin that
# imports one is told where it went, not only that it is missing.
MOVED_MODULES = {
    "gentool.training": "gentool.neural.engine (fit, TrainingTask) and gentool.neural.config "
    "(TrainConfig)",
    "gentool.weights": "gentool.neural.weights",
    "gentool.data.hf_tokenizers": "gentool.neural.tokenizers",
    "gentool.data.streams": "gentool.neural.streams",
    "gentool.images": "gentool.output.images",
    "gentool.files": "gentool.output.files",
    "gentool._data": "gentool.embedded",
}


def _describe(err: BaseException) -> str:
    if isinstance(err, SystemExit):
        return f"SystemExit: {err} (it called sys.exit)"
    if isinstance(err, PluginError):  # gentool's own words
        return str(err)
    if isinstance(err, ModuleNotFoundError) and err.name in MOVED_MODULES:
        return (
            f"it imports {err.name}, which gentool 0.2 moved to {MOVED_MODULES[err.name]} "
            "(see docs/plugins.md, 'Migrating from Family')"
        )
    return f"{type(err).__name__}: {err}"


@functools.cache
def get_plugin_manager() -> LoadedPlugins:
    """The process-wide plugin manager, loading entry points on first use."""
    return LoadedPlugins()


def plugin_infos() -> list[PluginInfo]:
    return get_plugin_manager().plugins


@functools.cache
def get_registry() -> Registry:
    """Every kind registered by the loaded plugins (``register_models`` is called once)."""
    manager = get_plugin_manager()
    registry = Registry()

    def register_for(info: PluginInfo) -> Callable[[type[Model]], None]:
        def register(model: type[Model]) -> None:
            try:
                check_kind(model)
            except PluginError as err:  # that kind is refused; the plugin's others stay
                print(
                    f"gentool: warning: plugin '{info.name}' ({info.distribution}): {err}; "
                    "that kind is skipped",
                    file=sys.stderr,
                )
                info.refused.append(str(err))
                manager.note(f"refused {getattr(model, '__qualname__', model)!s}: {err}")
                return
            label = f"{model.family}/{model.kind_name()} ({model.__qualname__})"
            warning = registry.add(model, info)
            if warning is not None:
                print(f"gentool: warning: {warning}", file=sys.stderr)
                manager.note(f"registered {label}: {warning}")
            else:
                manager.note(f"registered {label}")

        return register

    manager.call_each("register_models", lambda info: {"register": register_for(info)})
    registry.drop_failed()
    return registry


def get_family(name: str) -> list[type[Model]]:
    """The kinds of the family ``name`` (a PluginError when it is unknown or contested)."""
    return get_registry().get_family(name)


def add_plugin_commands(cli: Any) -> None:
    """Let plugins add commands (``register_commands``) to the click group ``cli``.

    A plugin may add verbs but not replace gentool's own: those are restored, with a warning.
    """
    builtin = dict(cli.commands)
    manager = get_plugin_manager()
    seen = dict(cli.commands)

    def note_added(info: PluginInfo) -> None:
        added = sorted(n for n, c in cli.commands.items() if seen.get(n) is not c)
        if added:
            manager.note(f"added command{'s' if len(added) > 1 else ''} {', '.join(added)}")
        seen.update(cli.commands)

    manager.call_each("register_commands", lambda info: {"cli": cli}, after=note_added)
    for name, command in builtin.items():
        if cli.commands.get(name) is not command:
            cli.commands[name] = command
            print(
                f"gentool: warning: a plugin tried to replace the command '{name}'; kept gentool's",
                file=sys.stderr,
            )
