"""``HFModel``: the base of every kind held as a Hugging Face model and tokenizer.

It is the skeleton the neural kinds share, written once: check the settings before any
data work, read the data, train (or, on ``--resume``, reload) the run's tokenizer, build
the model and its ``TrainingTask``, ``fit`` it, and report the summary every kind reports;
save with ``save_pretrained`` and load with the ``AutoModelFor*`` class from safetensors
only, after checking the run's config against its weights. A kind fills in its own steps::

    class LanguageModel(HFModel, TextGeneration, TextScoring):
        auto_class = "AutoModelForCausalLM"
        model_type = "gpt2"

        @classmethod
        def read_data(cls, config, context): ...
        @classmethod
        def new_tokenizer(cls, config, data): ...
        @classmethod
        def make_task(cls, config, context, tokenizer, data): ...

The module imports no torch at its top: a kind's module (what a plugin registers) must
stay importable without torch, so ``gentool models`` and the n-gram family run without it.
"""

from __future__ import annotations

import importlib
from abc import abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from gentool.model import Model, TrainingContext
from gentool.neural import require_neural
from gentool.neural.config import TrainConfig

if TYPE_CHECKING:
    from gentool.neural.engine import TrainingTask


class HFModel(Model):
    """A kind whose model is a ``transformers`` model with a tokenizer."""

    train_config_class: ClassVar[type] = TrainConfig
    #: The Auto class that loads the run: "AutoModelForCausalLM", "AutoModelForSeq2SeqLM".
    auto_class: ClassVar[str] = "AutoModelForCausalLM"
    #: config.json's ``model_type`` that this kind writes (a run of another is refused).
    model_type: ClassVar[str]
    #: A module to import before loading: it registers a custom architecture with the Auto
    #: classes (None for transformers' own architectures).
    modeling_module: ClassVar[str | None] = None
    #: Special tokens the kind uses: a loaded tokenizer must have them.
    special_tokens: ClassVar[tuple[str, ...]] = ("bos_token", "unk_token")
    #: Keyword arguments of ``from_pretrained`` (``{"attn_implementation": "sdpa"}``).
    load_options: ClassVar[Mapping[str, Any]] = {}

    def __init__(
        self, model: Any, tokenizer: Any, config: Any, metrics: dict[str, Any] | None = None
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.metrics: dict[str, Any] = dict(metrics or {})

    # -- the steps a kind fills in ------------------------------------------------------------
    @classmethod
    def check_config(cls, config: Any, train: Any) -> None:
        """Refuse settings that cannot train (a RecipeError naming the key), before any work."""

    @classmethod
    @abstractmethod
    def read_data(cls, config: Any, context: TrainingContext[Any]) -> Any:
        """Read the training data of ``context`` (text, pairs ...)."""

    @classmethod
    @abstractmethod
    def new_tokenizer(cls, config: Any, data: Any) -> Any:
        """Train the tokenizer of a new run on ``data``."""

    @classmethod
    @abstractmethod
    def make_task(
        cls, config: Any, context: TrainingContext[Any], tokenizer: Any, data: Any
    ) -> tuple[TrainingTask, dict[str, Any]]:
        """Encode the data, build the model (seeded with ``context.seed``) and return its
        TrainingTask with the figures about the data for the summary (``train_tokens``...)."""

    @classmethod
    def run_tokenizer(cls, config: Any, context: TrainingContext[Any], data: Any) -> Any:
        """The run's tokenizer: on ``--resume`` the one saved in the run (the checkpoint was
        trained with it), else ``new_tokenizer``'s, saved into the run."""
        from gentool.neural.tokenizers import run_tokenizer

        return run_tokenizer(
            context.run_dir,
            context.runtime.resume,
            lambda: cls.new_tokenizer(config, data),
            context.log,
        )

    def after_training(self, context: TrainingContext[Any], task: TrainingTask) -> dict[str, Any]:
        """More figures for the summary, computed with the trained model and the task it
        trained on (a translator's BLEU on the task's held-out pairs); by default none."""
        return {}

    # -- the shared skeleton --------------------------------------------------------------------
    @classmethod
    def train(cls, config: Any, context: TrainingContext[Any]) -> Self:
        require_neural()
        from gentool.neural.devices import check_setup
        from gentool.neural.engine import LN2, fit

        cls.check_config(config, context.train)
        check_setup(context.train, context.runtime)  # before the data work, not after it
        data = cls.read_data(config, context)
        tokenizer = cls.run_tokenizer(config, context, data)
        task, facts = cls.make_task(config, context, tokenizer, data)
        result = fit(
            task, context.train, context.runtime, context.run_dir, context.log, context.recipe
        )
        metrics = {**result.summary(), **facts}
        if result.val_loss is not None and task.unit == "tokens":
            metrics["val_bits_per_token"] = result.val_loss / LN2
        trained = cls(result.model.eval(), tokenizer, config, metrics)
        trained.metrics.update(trained.after_training(context, task))
        return trained

    def save(self, directory: Path) -> dict[str, Any]:
        """Hugging Face files: the run loads with ``AutoModelFor*``/``AutoTokenizer`` alone."""
        self.model.save_pretrained(str(directory))
        self.tokenizer.save_pretrained(str(directory))
        return self.metrics

    @classmethod
    def load(cls, directory: Path, config: Any) -> Self:
        require_neural()
        import transformers

        from gentool.neural.weights import load_pretrained

        if cls.modeling_module is not None:
            importlib.import_module(cls.modeling_module)  # registers the Auto classes
        model, tokenizer = load_pretrained(
            getattr(transformers, cls.auto_class),
            directory,
            cls.model_type,
            cls.special_tokens,
            cls.tokenizer_loader(directory),
            **cls.load_options,
        )
        return cls(model, tokenizer, config)

    @classmethod
    def tokenizer_loader(cls, directory: Path) -> Callable[[], Any] | None:
        """How the run's tokenizer is read; None: the Hugging Face tokenizer.json."""
        return None

    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())
