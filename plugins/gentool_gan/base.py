"""``GanModel``: what the gan family's kinds (``generator``, ``restorer``) share.

The training skeleton, written once: check the settings before any data work, read the
images (and a held-out split), build the networks and their ``AdversarialTask``, ``fit``
it, and report the summary every kind reports. A run is ``model.safetensors`` (the
network's state), ``config.json`` (what to build it from) and ``samples.png``; loading
checks the config against the weights' header before building anything. A kind fills in
its own steps::

    class Restorer(GanModel, ImageRestoration, ImageScoring):
        @classmethod
        def make_task(cls, config, context, data): ...  # -> (task, config.json)
        @classmethod
        def trained(cls, spec, task, result, metrics): ...
        @classmethod
        def load(cls, directory, config): ...  # read_spec, then load_network

No torch here at module level: the plugin's ``__init__`` imports the kinds to register
them, and ``gentool models`` runs without torch.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

import numpy as np

from gentool import runs
from gentool.data.images import Channels, ImageSet, default_images_path, read_images
from gentool.errors import RecipeError
from gentool.model import Model, TrainingContext
from gentool.neural import require_neural
from gentool_gan.configs import GanTrainConfig, check_adversarial

if TYPE_CHECKING:
    from torch import nn

    from gentool.neural.engine import FitResult
    from gentool_gan.adversarial import AdversarialTask

CONFIG_FILE = "config.json"
NetworkT = TypeVar("NetworkT", bound="nn.Module")
SAMPLES_FILE = "samples.png"


@dataclass
class ImageData:
    """The training images and the held-out ones (``--val``, or a split of the data)."""

    train: ImageSet
    val: ImageSet | None

    def counts(self) -> dict[str, int]:
        """The figures about the data that every kind reports."""
        skipped = len(self.train.skipped) + (len(self.val.skipped) if self.val else 0)
        val = len(self.val) if self.val is not None else 0
        return {"train_images": len(self.train), "val_images": val, "skipped_files": skipped}

    def facts(self) -> dict[str, Any]:
        """``counts``, and the first names of the files skipped as unreadable."""
        return {**self.counts(), "skipped": sorted(Path(p).name for p in self.train.skipped)[:20]}


class GanModel(Model):
    """A gan kind: a network trained adversarially on images, saved as safetensors with a
    config.json. Instances hold ``network`` (the module saved), ``spec`` (config.json),
    ``metrics`` and ``samples`` (the final sample grid, a PIL image, or None once loaded)."""

    family: ClassVar[str] = "gan"
    train_config_class: ClassVar[type] = GanTrainConfig
    default_data: ClassVar[Path | None] = default_images_path()  # 1,000 MNIST digits

    network: Any
    spec: dict[str, Any]
    metrics: dict[str, Any]
    samples: Any

    # -- the steps a kind fills in ------------------------------------------------------------
    @classmethod
    def check_config(cls, config: Any, train: Any) -> None:
        """Refuse settings that cannot train (a RecipeError naming the key), before any work;
        a kind adds its own checks to these."""
        check_adversarial(train)

    @classmethod
    def read_channels(cls, config: Any) -> Channels:
        """How to read the training images: ``model.channels`` unless the kind must see
        what the data holds."""
        channels: Channels = config.channels
        return channels

    @classmethod
    def read_training_data(cls, config: Any, context: TrainingContext[Any]) -> Any:
        """What the kind trains on, with ``counts()`` (the figures it reports): images, and
        held-out ones, unless the kind reads other data (the music kind's phrases)."""
        channels = cls.read_channels(config)
        return read_data(context, config.image_size, channels, context.train.val_fraction)

    @classmethod
    def training_line(cls, config: Any, counts: dict[str, int]) -> str:
        """The log line that says what is trained on what."""
        return (
            f"training a gan {cls.kind_name()} ({config.image_size} px, {config.loss} loss) on "
            f"{counts['train_images']} images ({counts['val_images']} held out)"
        )

    @classmethod
    def check_data(cls, config: Any, data: Any, context: TrainingContext[Any]) -> None:
        """Refuse data this kind cannot learn from (a DataError saying what to give)."""

    @classmethod
    @abstractmethod
    def make_task(
        cls, config: Any, context: TrainingContext[Any], data: ImageData
    ) -> tuple[AdversarialTask, dict[str, Any]]:
        """Build the networks (torch is seeded with ``context.seed``) and their training task;
        return it with the run's config.json, what ``load`` builds the networks from."""

    @classmethod
    @abstractmethod
    def trained(
        cls, spec: dict[str, Any], task: Any, result: FitResult, metrics: dict[str, Any]
    ) -> Self:
        """The trained model from ``fit``'s ``result`` (``result.model`` is the trained
        AdversarialPair; ``task`` is what ``make_task`` made, with the training images and
        the seed), with the kind's figures added to ``metrics``."""

    # -- the shared skeleton ------------------------------------------------------------------
    @classmethod
    def train(cls, config: Any, context: TrainingContext[Any]) -> Self:
        require_neural()
        import torch

        from gentool.neural.devices import check_setup
        from gentool.neural.engine import fit

        cls.check_config(config, context.train)
        check_setup(context.train, context.runtime)  # before the data work, not after it
        data = cls.read_training_data(config, context)
        cls.check_data(config, data, context)
        torch.manual_seed(context.seed)
        task, spec = cls.make_task(config, context, data)
        if config.init:
            start_from(task.model, spec, Path(config.init))
        counts = data.counts()
        context.log(cls.training_line(config, counts))
        result = fit(
            task, context.train, context.runtime, context.run_dir, context.log, context.recipe
        )
        metrics = {**result.summary(), **counts}
        return cls.trained(spec, task, result, metrics)

    def save(self, directory: Path) -> dict[str, Any]:
        from gentool.output.images import save_image

        tensors = {
            k: v.detach().cpu().contiguous().numpy() for k, v in self.network.state_dict().items()
        }
        runs.save_tensors(directory / runs.TENSOR_FILE, tensors, self.family)
        runs.write_json(directory / CONFIG_FILE, self.spec)
        if self.samples is not None:
            save_image(self.samples, directory / SAMPLES_FILE)
        return self.metrics

    # -- loading: shared steps ------------------------------------------------------------------
    @classmethod
    def read_spec(cls, directory: Path) -> dict[str, Any]:
        """The run's config.json, a JSON object (else the run is damaged)."""
        try:
            spec = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise runs.damaged(
                directory, f"{CONFIG_FILE} is not a gan {cls.kind_name()}'s config ({err})"
            ) from None
        if not isinstance(spec, dict):
            raise runs.damaged(directory, f"{CONFIG_FILE} does not hold a JSON object")
        return spec

    @classmethod
    def load_network(cls, build: Callable[[], NetworkT], directory: Path) -> NetworkT:
        """The network ``build`` makes, with the weights of ``model.safetensors``: ``build``
        runs first on torch's meta device, and must make exactly the file's tensors."""
        require_neural()
        import torch

        from gentool.neural.weights import check_weights

        path = directory / runs.TENSOR_FILE
        check_weights(build, path)  # before building it for real
        network = build()
        tensors = runs.load_tensors(path, cls.family)
        network.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()})
        return network.eval()


# config.json keys that do not shape the networks: what the data was, what the run was
# started from, figures calibrated after training
NOT_SHAPING = frozenset({"data", "init", "baseline_colours", "thresholds"})


def start_from(pair: Any, spec: dict[str, Any], parent: Path) -> None:
    """Load the run ``parent``'s networks into ``pair`` (an AdversarialPair), the start of
    a run of its kind (gentool train gan --init RUN). Its [model] table is this run's
    (gentool.api.training), but what the data and [train] decide (channels, classes, the
    pitch range, the moving average) must agree too, else it is a RecipeError saying which.

    A run that saved the whole pair (generator, composer: G, D and the moving average) gives
    all three; one that saved only the generator it samples with (restorer, translators:
    for cyclegan both directions) gives G and its average, and D starts afresh."""
    import torch

    theirs = GanModel.read_spec(parent)
    for key, value in spec.items():
        if key not in NOT_SHAPING and theirs.get(key) != value:
            raise RecipeError(
                f"--init '{parent}': its networks have {key}={theirs.get(key)!r}, this run's "
                f"{key}={value!r} (from the data or [train]); train on data like its own, or "
                "from scratch"
            )
    tensors = runs.load_tensors(parent / runs.TENSOR_FILE, "gan")
    weights = {k: torch.from_numpy(v.copy()) for k, v in tensors.items()}
    if weights.keys() == pair.state_dict().keys():
        pair.load_state_dict(weights)
    else:
        pair.generator.load_state_dict(weights)
        pair.ema.load_state_dict(weights)


def read_data(
    context: TrainingContext[Any], image_size: int, channels: Channels, val_fraction: float
) -> ImageData:
    """The training images of ``context``, and held-out ones: ``--val``, read with the
    training images' channels, else ``val_fraction`` of the data (a seeded split)."""
    images = read_images(context.data, image_size, channels)
    report_skipped(images, context.log)
    if context.val is None:
        return ImageData(*split(images, val_fraction, context.seed))
    val = read_images([context.val], image_size, "rgb" if images.channels == 3 else "gray")
    report_skipped(val, context.log)
    return ImageData(images, val)


def split(data: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet | None]:
    """A seeded shuffle, then ``fraction`` of the images held out (none if that is < 1):
    the end of a folder is one class, and must not be all that is held out."""
    held = int(len(data) * fraction)
    if held < 1 or held >= len(data):
        return data, None
    order = np.random.default_rng(seed).permutation(len(data))

    def part(chosen: np.ndarray, skipped: dict[str, str]) -> ImageSet:
        labels = data.labels[chosen] if data.labels is not None else None
        return ImageSet(data.images[chosen], labels, data.classes, skipped)

    return part(order[held:], data.skipped), part(order[:held], {})


def report_skipped(data: ImageSet, log: Callable[[str], None]) -> None:
    if data.skipped:
        first, why = next(iter(data.skipped.items()))
        log(f"skipped {len(data.skipped)} unreadable image file(s); first: {why}")


def count_parameters(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def names(paths: Sequence[Path]) -> str:
    """'a', 'b': paths for a message."""
    return ", ".join(f"'{p}'" for p in paths)
