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
import warnings
from abc import abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from gentool.errors import RecipeError
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
        self.adapter = False  # loaded from a LoRA adapter (merged into its base on load)

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

        if getattr(config, "init", ""):
            cls.check_init(config)
        rank = getattr(context.train, "lora_rank", 0)
        if rank and not getattr(config, "init", ""):
            raise RecipeError(
                f"train.lora_rank={rank} adapts a pretrained model: give --init SOURCE, or "
                "drop train.lora_rank"
            )
        if rank < 0:
            raise RecipeError(f"train.lora_rank must be at least 0 (0: off), got {rank}")
        cls.check_config(config, context.train)
        check_setup(context.train, context.runtime)  # before the data work, not after it
        data = cls.read_data(config, context)
        tokenizer = cls.run_tokenizer(config, context, data)
        task, facts = cls.make_task(config, context, tokenizer, data)
        rank = getattr(context.train, "lora_rank", 0)
        if rank:
            task.model = with_lora(task.model, rank)
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
        """Hugging Face files: the run loads with ``AutoModelFor*``/``AutoTokenizer`` alone;
        a LoRA run saves its adapter (adapter_config.json, adapter_model.safetensors),
        which peft loads over the pretrained model it names."""
        self.model.save_pretrained(str(directory))
        self.tokenizer.save_pretrained(str(directory))
        adapter = directory / ADAPTER_CONFIG
        if adapter.is_file():  # name the base as the recipe does, not by a local path
            import json

            settings = json.loads(adapter.read_text(encoding="utf-8"))
            settings["base_model_name_or_path"] = self.config.init
            adapter.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        return self.metrics

    @classmethod
    def load(cls, directory: Path, config: Any) -> Self:
        require_neural()
        import transformers

        from gentool.neural.weights import load_pretrained

        if cls.modeling_module is not None:
            importlib.import_module(cls.modeling_module)  # registers the Auto classes
        if (directory / ADAPTER_CONFIG).is_file():  # a LoRA run: its base, then the adapter
            from peft import PeftModel

            from gentool.neural.weights import pretrained_tokenizer

            base = cls.init_model(config)
            with warnings.catch_warnings():  # (see with_lora)
                warnings.simplefilter("ignore", FutureWarning)
                model = PeftModel.from_pretrained(base, str(directory)).merge_and_unload()
            merged = cls(model.eval(), pretrained_tokenizer(directory), config)
            merged.adapter = True
            return merged
        foreign = bool(getattr(config, "init", ""))  # started from (or is) a Hub model
        model, tokenizer = load_pretrained(
            getattr(transformers, cls.auto_class),
            directory,
            None if foreign else cls.model_type,
            () if foreign else cls.special_tokens,
            cls.tokenizer_loader(directory),
            **cls.load_options,
        )
        return cls(model, tokenizer, config)

    @classmethod
    def tokenizer_loader(cls, directory: Path) -> Callable[[], Any] | None:
        """How the run's tokenizer is read; None: the Hugging Face tokenizer.json."""
        return None

    # -- Hugging Face models gentool did not train (``FromPretrained``) -------------------------
    @classmethod
    def accepts_pretrained(cls, config: dict[str, Any]) -> bool:
        """Whether ``config`` (config.json) is a model of transformers' ``auto_class``: by
        its ``architectures`` (MarianMTModel, not MarianForCausalLM), else its model_type
        (one that has an encoder-decoder class is taken as one)."""
        require_neural()
        from transformers.models.auto import modeling_auto

        causal = modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        seq2seq = modeling_auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES
        names: Any = {"AutoModelForCausalLM": causal, "AutoModelForSeq2SeqLM": seq2seq}.get(
            cls.auto_class, {}
        )
        architectures = config.get("architectures")
        if isinstance(architectures, list) and architectures:
            classes = {c for v in names.values() for c in ([v] if isinstance(v, str) else v)}
            return any(a in classes for a in architectures)
        model_type = config.get("model_type")
        return model_type in names and (names is seq2seq or model_type not in seq2seq)

    @classmethod
    def from_pretrained(cls, directory: Path, source: str) -> Self:
        """The model of a Hugging Face folder, as this kind with ``model.init=source``."""
        return cls.load(directory, cls.config_class(init=source))

    # -- training from a pretrained model (``model.init``, gentool train --init) --------------
    @classmethod
    def check_init(cls, config: Any) -> None:
        """With ``model.init``, the pretrained model fixes the sizes and the vocabulary:
        a ``[model]`` key set away from its default is a RecipeError saying so."""
        import dataclasses

        from gentool import hub

        if hub.is_run(Path(config.init)):  # its [model] table is the run's (api.plan)
            return
        free = {"init", *cls.selected_by}
        for f in dataclasses.fields(config):
            if f.name not in free and getattr(config, f.name) != f.default:
                raise RecipeError(
                    f"model.{f.name} is fixed by the pretrained model (model.init="
                    f"{config.init}): drop model.{f.name}, it is taken from the model"
                )

    @classmethod
    def init_tokenizer(cls, config: Any) -> Any:
        """The tokenizer of ``config.init``: a fine-tuned model keeps its own."""
        from gentool import hub
        from gentool.neural.weights import pretrained_tokenizer

        return pretrained_tokenizer(hub.resolve(config.init).path)

    @classmethod
    def init_model(cls, config: Any) -> Any:
        """The network of ``config.init``, in training mode, its weights as saved."""
        import transformers

        from gentool import hub
        from gentool.neural.weights import load_pretrained

        folder = hub.resolve(config.init).path
        if cls.modeling_module is not None:  # a gentool architecture (the rnn's)
            importlib.import_module(cls.modeling_module)
        auto = getattr(transformers, cls.auto_class)
        loader = cls.tokenizer_loader(folder)  # (a music run's tokenizer is not Hugging Face's)
        model, _ = load_pretrained(auto, folder, None, (), loader, **cls.load_options)
        return model.train()

    def describe_pretrained(self) -> dict[str, Any]:
        """``describe()`` of a model of any architecture (one gentool did not build)."""
        config = self.model.config
        return {
            "model_type": config.model_type,
            "architecture": type(self.model).__name__,
            "source": self.config.init,
            "vocab_size": config.vocab_size,
            "context_length": context_length(config),
            "tokenizer": type(self.tokenizer).__name__,
            "parameters": self.parameters(),
        }

    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def context_length(config: Any) -> int | None:
    """The positions a Hugging Face model has (None: relative positions, no limit)."""
    for key in ("n_positions", "max_position_embeddings"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


ADAPTER_CONFIG = "adapter_config.json"


def with_lora(model: Any, rank: int) -> Any:
    """``model`` with LoRA adapters of ``rank`` (peft) on its attention projections, as
    peft chooses them per architecture (GPT-2's c_attn, Llama's q_proj/v_proj, T5's q/v),
    else on every linear layer; only the adapters train."""
    try:
        from peft import LoraConfig, get_peft_model
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
    except ImportError:
        raise RecipeError("train.lora_rank needs the peft package: pip install peft") from None
    from transformers.pytorch_utils import Conv1D

    known = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model.config.model_type)
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        lora_dropout=0.0,
        target_modules=list(known) if known else "all-linear",
        # GPT-2's projections are Conv1D, whose weights are stored transposed
        fan_in_fan_out=any(isinstance(m, Conv1D) for m in model.modules()),
        task_type="SEQ_2_SEQ_LM" if model.config.is_encoder_decoder else "CAUSAL_LM",
    )
    with warnings.catch_warnings():  # peft asks transformers a deprecated question
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(model, config)
