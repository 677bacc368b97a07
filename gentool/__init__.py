"""gentool: train and sample generative models from the shell.

Plugins import ``hookimpl`` from here to implement the hooks in ``gentool.hookspecs``.
"""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("gentool")

__all__ = ["__version__", "hookimpl"]
