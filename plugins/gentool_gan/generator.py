"""The gan ``generator`` kind: image generation with a DCGAN (model.task = "generate").

Train on a folder of images, an MNIST idx file or an npz, then sample seeded grids,
class-conditional draws and latent walks; ``gentool evaluate`` scores samples against
real images (``metrics.py``).

A run holds ``model.safetensors`` (generator, discriminator and the generator's moving
average, which is what samples are drawn from), ``config.json`` (the architecture, the class
names and the data facts), ``reference.safetensors`` (up to 1,000 training images, for the
memorisation check) and ``samples.png`` (a grid from the final model). ``samples/`` holds
the grids written during training.

The tensors live in ``generation.py``, imported when the model trains or samples: this
module, which the plugin imports to register the kind, needs no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gentool import runs
from gentool.errors import DataError
from gentool.model import FromRun, TrainingContext
from gentool.tasks import GenerationRequest, ImageGeneration, ImageScoring
from gentool_gan.base import GanModel, ImageData, count_parameters, names
from gentool_gan.configs import GanTrainConfig, GeneratorConfig, check_generator

if TYPE_CHECKING:
    import numpy as np

    from gentool.neural.engine import FitResult
    from gentool_gan.generation import GenerationPair, GenerationTask

REFERENCE_FILE = "reference.safetensors"


class ImageGenerator(GanModel, ImageGeneration, ImageScoring, FromRun):
    """A trained DCGAN: samples images, scores them against real ones."""

    kind = "generator"
    description = "DCGAN image generation (class-conditional too): model.task=generate"
    config_class = GeneratorConfig
    train_config_class = GanTrainConfig
    selected_by = {"task": ("generate",)}

    def __init__(
        self,
        pair: GenerationPair,
        spec: dict[str, Any],
        reference: np.ndarray,
        metrics: dict[str, Any] | None = None,
        samples: Any = None,
    ) -> None:
        self.pair = pair.eval()
        self.spec = spec
        self.reference = reference  # uint8 N x C x H x W training images
        self.metrics = metrics or {}
        self.samples = samples
        self.interpolation = "slerp"  # or "linear": how --interpolate walks between latents

    @property
    def network(self) -> GenerationPair:
        return self.pair

    # -- training -----------------------------------------------------------------------------
    @classmethod
    def check_config(cls, config: GeneratorConfig, train: GanTrainConfig) -> None:
        from gentool_gan.networks import layout

        layout(config.image_size)  # (names the sizes there are)
        check_generator(config)
        super().check_config(config, train)

    @classmethod
    def check_data(
        cls, config: GeneratorConfig, data: ImageData, context: TrainingContext[Any]
    ) -> None:
        if not config.conditional:
            return
        if data.train.labels is None:
            raise DataError(
                f"model.conditional needs class labels, and {names(context.data)} has none; "
                "give a folder with one sub-folder per class, an idx file with its labels file "
                "beside it, or an npz with a 'labels' array (or drop model.conditional)"
            )
        if len(data.train.classes) < 2:
            raise DataError(
                f"model.conditional needs at least 2 classes; {names(context.data)} has "
                f"{len(data.train.classes)}"
            )

    @classmethod
    def make_task(
        cls, config: GeneratorConfig, context: TrainingContext[GanTrainConfig], data: ImageData
    ) -> tuple[GenerationTask, dict[str, Any]]:
        import torch

        from gentool_gan.generation import GenerationTask, build_pair

        train, images, val = context.train, data.train, data.val
        classes = list(images.classes) if config.conditional else []
        spec = {
            "task": "generate",
            "image_size": config.image_size,
            "channels": images.channels,
            "latent_size": config.latent_size,
            "width": config.width,
            "num_classes": len(classes),
            "classes": classes,
            "loss": config.loss,
            "spectral_norm": config.spectral_norm,
            "ema": train.ema_decay > 0,
            "data": data.facts(),
        }

        def labels(part: Any) -> torch.Tensor | None:
            if not classes or part is None or part.labels is None:
                return None
            return torch.from_numpy(part.labels.astype("int64"))

        held_out = val is not None and len(val) > 0
        task = GenerationTask(
            build_pair(spec, train.label_smoothing, train.gp_weight),
            train,
            torch.from_numpy(images.images),
            labels(images),
            torch.from_numpy(val.images) if val is not None and held_out else None,
            labels(val),
            seed=context.seed,
            run_dir=context.run_dir,
            loss_kind=config.loss,
        )
        return task, spec

    @classmethod
    def trained(
        cls, spec: dict[str, Any], task: GenerationTask, result: FitResult, metrics: dict[str, Any]
    ) -> ImageGenerator:
        from gentool_gan.generation import reference_images, sample_grid, trained_figures

        pair: GenerationPair = result.model  # type: ignore[assignment]
        metrics.update(trained_figures(task, result))
        reference = reference_images(task.images.numpy(), task.seed)
        return cls(pair, spec, reference, metrics, samples=sample_grid(pair.sampler()))

    # -- persistence --------------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        metrics = super().save(directory)
        runs.save_tensors(directory / REFERENCE_FILE, {"images": self.reference}, self.family)
        return metrics

    @classmethod
    def load(cls, directory: Path, config: GeneratorConfig) -> ImageGenerator:
        from gentool_gan.generation import build_pair

        spec = cls.read_spec(directory)
        # The config must describe the networks the file holds, before they are built, and
        # the reference images must be images of the size the networks make.
        pair = cls.load_network(lambda: build_pair(spec), directory)
        size, channels = spec["image_size"], spec["channels"]
        runs.check_tensors(
            directory / REFERENCE_FILE, {"images": ("U8", (None, channels, size, size))}
        )
        reference = runs.load_tensors(directory / REFERENCE_FILE, cls.family)["images"]
        return cls(pair, spec, reference)

    # -- tasks --------------------------------------------------------------------------------
    def generate_images(self, request: GenerationRequest) -> list[Any]:
        """``num_samples`` images (times ``interpolate`` frames: each sample a row walking
        from one latent to another), drawn from noise seeded by ``request.seed``."""
        from gentool_gan.generation import generate_images

        return generate_images(self.pair, self.classes(), request, self.interpolation)

    def classes(self) -> list[str]:
        return list(self.spec["classes"])

    def evaluate_images(
        self,
        paths: Sequence[Path],
        feature_space: str = "classifier",
        feature_weights: Path | None = None,
    ) -> dict[str, Any]:
        from gentool_gan.inception import requested
        from gentool_gan.metrics import evaluate_generator

        return evaluate_generator(self, paths, requested(feature_space, feature_weights))

    def describe(self) -> dict[str, Any]:
        return {
            "task": "generate",
            "image_size": self.size,
            "channels": self.channels,
            "latent_size": self.spec["latent_size"],
            "width": self.spec["width"],
            "conditional": bool(self.classes()),
            "classes": self.classes(),
            "loss": self.spec["loss"],
            "spectral_norm": self.spec["spectral_norm"],
            "ema": self.spec["ema"],
            "parameters": count_parameters(self.pair.generator),
            "parameters_d": count_parameters(self.pair.discriminator),
            "data": self.spec.get("data", {}),
        }

    @property
    def size(self) -> int:
        return int(self.spec["image_size"])

    @property
    def channels(self) -> int:
        return int(self.spec["channels"])
