"""The plugin contract of gentool 0.1, kept only so that a plugin written against it
imports and is then refused with one clear message (``gentool.kinds.check_kind``): every
name 0.1's docs/plugins.md documented here is still importable.

Since gentool 0.2 a plugin registers ``gentool.model.Model`` subclasses that implement the
task interfaces of ``gentool.tasks``: see docs/plugins.md, "Migrating from Family".
"""

from __future__ import annotations

from typing import ClassVar

from gentool.model import TrainingContext
from gentool.tasks import (
    GENERATE_IMAGE,
    GENERATE_TEXT,
    RESTORE_IMAGE,
    SAMPLE_BATCH,
    SCORE_IMAGES,
    SCORE_TEXT,
    TRANSLATE,
    GenerationRequest,
    TranslationRequest,
    sample_batches,
)


class Family:
    """gentool 0.1's base class of a family. Registering a subclass is refused, naming
    what replaced it."""

    name: ClassVar[str]
    tasks: ClassVar[tuple[str, ...]] = ()


__all__ = [
    "GENERATE_IMAGE",
    "GENERATE_TEXT",
    "RESTORE_IMAGE",
    "SAMPLE_BATCH",
    "SCORE_IMAGES",
    "SCORE_TEXT",
    "TRANSLATE",
    "Family",
    "GenerationRequest",
    "TrainingContext",
    "TranslationRequest",
    "sample_batches",
]
