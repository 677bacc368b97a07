"""Errors the user can act on, and the exit codes the CLI maps them to.

Every expected failure (bad data, a bad recipe, a missing or broken run) is raised as a
``GentoolError`` anywhere in gentool or a plugin, and converted to one ``Error: ...`` line
and exit code 1 at a single boundary: ``gentool.cli``. A traceback always means a bug.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1  # a clear, expected failure: one "Error: ..." line on stderr
EXIT_USAGE = 2  # command-line misuse (click's UsageError)
EXIT_INTERRUPTED = 130  # SIGINT / SIGTERM, after saving what can be saved
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: stdout's reader has gone (| head), as for any Unix tool


class GentoolError(Exception):
    """An expected failure. The message names the offending thing and the fix."""


class DataError(GentoolError):
    """Training or evaluation data that cannot be used."""


class RecipeError(GentoolError):
    """A recipe or a ``--set`` override that does not fit the family's config."""


class RunError(GentoolError):
    """A run directory that is missing, incomplete, corrupt, or of another family."""


class PluginError(GentoolError):
    """A family that is unknown, duplicated, or cannot do what was asked."""


class OutputError(GentoolError):
    """A place gentool cannot or may not write: a read-only or missing folder, a full disk,
    a path inside a run directory, an existing file without --force; stdout that cannot
    be written (a full disk, /dev/full)."""


class ComparisonError(GentoolError):
    """Runs whose figures do not share a unit (word against character perplexity, FID in
    different feature spaces, different tasks) asked to share a table column."""


class TrainingError(GentoolError):
    """Training cannot go on (a non-finite loss, a checkpoint that does not fit)."""
