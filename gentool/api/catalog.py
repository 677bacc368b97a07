"""What is installed: plugins, kinds of model, shipped recipes (``gentool plugins``,
``gentool models``, ``gentool recipes``)."""

from __future__ import annotations

from typing import Any

from gentool.kinds import describe_kind
from gentool.plugins import get_registry, plugin_infos


def plugins() -> list[dict[str, Any]]:
    """Every installed plugin: its entry point, distribution, hooks and load error."""
    get_registry()  # registering models can surface more errors
    return [p.as_json() for p in plugin_infos()]


def models() -> list[dict[str, Any]]:
    """Every kind of model of the installed plugins: its family, tasks and options."""
    registry = get_registry()
    found = []
    for kind in registry.all_kinds():
        owner = registry.owners[kind.family]
        found.append(
            {**describe_kind(kind), "plugin": owner.name, "distribution": owner.distribution}
        )
    return found


def recipes() -> list[dict[str, Any]]:
    """The recipes shipped with gentool: name, family, description and path."""
    from gentool.recipes import shipped_recipes

    return [
        {"name": r.name, "family": r.family, "description": r.description, "path": str(r.path)}
        for r in shipped_recipes()
    ]
