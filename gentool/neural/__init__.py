"""The neural kit: what every torch-based kind of model shares.

Everything in this package needs torch, transformers, accelerate and tokenizers (the
``neural`` extra); nothing outside it imports them at module level, so the core and the
n-gram family run without them. This ``__init__`` itself stays importable without torch,
so that a kind's module can import ``TrainConfig`` and ``require_neural`` at its top.

- ``config``: the engine's ``[train]`` table (``TrainConfig``), torch-free.
- ``engine``: ``fit`` and the ``TrainingTask`` contract: the one training loop.
- ``devices``: device, processes, mixed precision, the accelerator.
- ``checkpoints``: writing, checking and reading resumable checkpoints.
- ``hf``: ``HFModel``, the base of kinds held as a Hugging Face model and tokenizer.
- ``tokenizers``, ``streams``: training tokenizers; token streams for language models.
- ``weights``: checking a run's config against its weights before building the model.
"""

from __future__ import annotations

from gentool import threads
from gentool.errors import GentoolError
from gentool.interrupts import threads_started_here_ignore_interrupts


def require_neural() -> None:
    """Raise a GentoolError saying what to install unless torch, transformers, accelerate and
    tokenizers import; quiet transformers' own progress bars (gentool reports progress); give
    torch the threads ``--threads`` / GENTOOL_THREADS asked for (gentool.threads)."""
    try:
        with threads_started_here_ignore_interrupts():  # see gentool.interrupts
            import accelerate  # noqa: F401
            import tokenizers  # noqa: F401
            import torch
            import transformers
    except ImportError as err:
        raise GentoolError(
            f"the neural families need {err.name}: pip install 'gentool[neural]'"
        ) from None
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    threads.apply(torch)
