"""A kind of model: its configs, how it trains, saves and loads.

A plugin registers one or more kinds (``register_models``). Each kind is a subclass of
``Model`` that also implements the task interfaces of ``gentool.tasks`` for what it can
do; nothing else is required::

    class Bigram(Model, TextGeneration):
        family = "bigram"
        config_class = BigramConfig

        @classmethod
        def train(cls, config, context): ...
        @classmethod
        def load(cls, directory, config): ...
        def save(self, directory): ...
        def generate(self, request): ...

A family (the name users type: ``gentool train transformer``) may have several kinds
(``transformer``: ``lm`` and ``translator``); ``gentool.kinds.route`` picks one from the
recipe and the data, in one place for every family.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar

from gentool.data.sources import Fields
from gentool.errors import PluginError
from gentool.recipes import NoTrainingOptions
from gentool.tasks import tasks_of

DEFAULT_MEMORY = 2 * 2**30  # bytes; see Runtime.memory


@dataclass
class Runtime:
    """How this process trains, as opposed to what (the recipe): not part of the recipe."""

    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    log_with: tuple[str, ...] = ()
    resume: bool = False
    progress: bool | None = None  # None: when stderr is a terminal
    # Off a terminal (CI, nohup, a pipe): a plain progress line at most this often (seconds)
    plain_every: float = 30.0
    # Working memory for counting (ngram): larger data is sorted in runs spilled to disk.
    # The same model whatever the budget, so it is no part of the recipe.
    memory: int = DEFAULT_MEMORY


TrainT = TypeVar("TrainT")


@dataclass
class TrainingContext(Generic[TrainT]):
    """What the core hands to ``Model.train`` besides the ``[model]`` config.

    ``data`` are the training files (``--data`` or the recipe's ``[data] train``; the
    kind's embedded default when neither is given), ``val`` an optional held-out file,
    ``source``/``target`` aligned parallel files; any of them may be a table or an ``hf:``
    dataset (``gentool.data.sources``), whose rows are read through ``fields``. ``train``
    is the recipe's ``[train]`` table (an instance of the kind's ``train_config_class``).
    ``run_dir`` is where the run is being built: checkpoints and metrics.jsonl go there
    while training. ``log`` prints progress to stderr (on the main process only).
    """

    data: list[Path]
    val: Path | None
    seed: int
    train: TrainT
    run_dir: Path
    source: Path | None = None
    target: Path | None = None
    val_source: Path | None = None
    val_target: Path | None = None
    log: Callable[[str], None] = print
    runtime: Runtime = field(default_factory=Runtime)
    recipe: dict[str, Any] = field(default_factory=dict)  # the whole resolved recipe
    fields: Fields = field(default_factory=Fields)  # which fields of a table's rows to read


class Model(ABC):
    """One kind of model. Subclass it together with the ``gentool.tasks`` interfaces.

    Class attributes (``family`` and ``config_class`` are required):

    - ``family``: the name users type (``gentool train NAME``); several kinds may share it.
    - ``kind``: this kind's name within the family (default: the family's name).
    - ``config_class``: a dataclass, the recipe's ``[model]`` table.
    - ``train_config_class``: a dataclass, the recipe's ``[train]`` table.
    - ``selected_by``: ``[model]`` keys whose values choose this kind among the family's,
      e.g. ``{"arch": ("encoder-decoder",)}``; the value ``auto`` leaves it to the data.
    - ``trains_on``: the kind of data only this kind takes (``"parallel"``), or None.
    - ``takes_target``: the kind reads ``--target`` alone, beside ``--data`` (a second
      image domain: ``--data A/ --target B/``), not as the target side of parallel text.
    - ``default_data``: the embedded data ``gentool train FAMILY`` uses with no ``--data``.
    """

    family: ClassVar[str]
    kind: ClassVar[str] = ""
    description: ClassVar[str] = ""
    config_class: ClassVar[type]
    train_config_class: ClassVar[type] = NoTrainingOptions
    selected_by: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    trains_on: ClassVar[str | None] = None
    takes_target: ClassVar[bool] = False
    default_data: ClassVar[Path | None] = None

    @classmethod
    def kind_name(cls) -> str:
        return cls.kind or cls.family

    @classmethod
    def tasks(cls) -> tuple[str, ...]:
        """What this kind can do, from the task interfaces it implements."""
        return tasks_of(cls)

    @classmethod
    @abstractmethod
    def train(cls, config: Any, context: TrainingContext[Any]) -> Self:
        """Train a model from ``config`` (the ``[model]`` table) and ``context``."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, config: Any) -> Self:
        """Load the model saved in the run ``directory`` (verified by the core)."""

    @abstractmethod
    def save(self, directory: Path) -> dict[str, Any]:
        """Write the model's files into ``directory`` (the run being built); return the
        metrics summary for gentool.json."""

    def describe(self) -> dict[str, Any]:
        """Facts for ``gentool info``: sizes, vocabulary, statistics (JSON-serialisable)."""
        return {}

    def describe_heldout(self, paths: Sequence[Path]) -> dict[str, Any]:
        """Facts about held-out data for ``gentool info --data`` (ngram: how many of its
        n-grams the model never saw). A kind with none keeps this default, an error."""
        raise PluginError(
            f"'{self.family}' models have no held-out statistics for 'gentool info --data'; "
            "score held-out data with 'gentool evaluate --data'"
        )


class Exportable(ABC):
    """A model that ``gentool export --format FORMAT`` can write in another tool's format."""

    export_formats: ClassVar[tuple[str, ...]]
    #: Those of ``export_formats`` written as a folder (a CTranslate2 model), not one file.
    folder_formats: ClassVar[tuple[str, ...]] = ()
    #: Those that take ``--quantization`` (CTranslate2's weight types: int8, float16 ...).
    quantized_formats: ClassVar[tuple[str, ...]] = ()
    #: Those whose folder ``--engine FORMAT`` runs (``load_export``).
    engine_formats: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def export(self, fmt: str, path: Path, quantization: str | None = None) -> None:
        """Write the model in format ``fmt`` (one of ``export_formats``) to ``path``: a file,
        or a folder that does not exist yet for ``folder_formats``; ``quantization`` only
        for ``quantized_formats``."""

    @classmethod
    def load_export(cls, fmt: str, folder: Path) -> Model:
        """The model of ``folder``, an export in ``fmt`` (one of ``engine_formats``) that
        ``export`` wrote, ready to generate or translate with that engine."""
        raise PluginError(f"'{cls.__name__}' models run no export (--engine {fmt})")


class GradientFlow(ABC):
    """A model whose loss can be differentiated with respect to its input embeddings:
    ``gentool evaluate --gradient-flow`` (the rnn and transformer language models of text,
    through ``gentool.neural.streams.TextStreamModel``)."""

    @abstractmethod
    def gradient_flow(
        self, text: str, tail: float = 1.0, max_distance: int = 64, windows: int = 64
    ) -> dict[str, Any]:
        """The norm of the gradient of the loss at a position with respect to the input
        embedding ``k`` steps before it, for k = 0 .. ``max_distance``, averaged over
        ``windows`` windows of the last ``tail`` of ``text``'s tokens:
        ``{"distance", "gradient_norm", "relative", "windows", "tokens"}``
        (gentool.neural.gradients)."""


class FromPretrained(ABC):
    """A kind that can use a Hugging Face model gentool did not train (a Hub id or a local
    model folder, ``gentool.hub``) wherever a run is expected, and start training from one
    (``gentool train KIND --init SOURCE``)."""

    @classmethod
    @abstractmethod
    def accepts_pretrained(cls, config: dict[str, Any]) -> bool:
        """Whether the model whose config.json is ``config`` is one this kind runs."""

    @classmethod
    @abstractmethod
    def from_pretrained(cls, directory: Path, source: str) -> Model:
        """Load the Hugging Face model in ``directory`` (checked by ``gentool.hub``);
        ``source`` is what the user named it by."""


class FromRun(ABC):  # noqa: B024 (a marker: gentool.api.training does the work)
    """A kind that starts from a gentool run of its own kind (``gentool train KIND --init
    RUN``) into a new run: the run's ``[model]`` table (sizes, vocabulary) is taken as it
    is, and its tokenizer and weights are where training starts. Its config has a ``init``
    key (the run), which its training reads. Kinds that are ``FromPretrained`` start from
    runs too."""


class Importable(ABC):
    """A kind that ``gentool import FAMILY FILE`` can make from another tool's format."""

    import_formats: ClassVar[tuple[str, ...]]

    @classmethod
    @abstractmethod
    def import_model(cls, fmt: str, path: Path) -> tuple[Model, Any]:
        """Read ``path`` in format ``fmt``; return the model and the config it corresponds to."""
