"""The gan translators: image-to-image translation between two domains, A (``--data``) and
B (``--target``).

- ``paired`` (model.task=paired): pix2pix, from pairs of files matched by relative path
  (a silhouette and its coloured picture); ``gentool evaluate`` scores PSNR/SSIM/L1 against
  the true B, and against a trivial baseline (each silhouette filled with the mean colour).
- ``cyclegan`` (model.task=cyclegan): two unpaired collections (printed and handwritten
  digits); both directions (``gentool transform --reverse``); ``gentool evaluate`` scores
  the cycle reconstruction, FID/KID of translated against real images in gentool_gan's
  feature space, and class preservation where both domains have labels.

``translation.py`` holds the tensors; this module needs no torch (the plugin imports it to
register the kinds). A run holds ``model.safetensors`` (the generator(s)), ``config.json``
(the [model] table with each domain's channels resolved, and the U-Net's depth) and
``samples.png``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from gentool import runs
from gentool.errors import DataError, RecipeError
from gentool.model import FromRun, TrainingContext
from gentool.neural import require_neural
from gentool.tasks import ImageScoring, ImageTranslation
from gentool_gan.base import GanModel, report_skipped, start_from
from gentool_gan.configs import TranslatorConfig, TranslatorTrainConfig, check_translator
from gentool_gan.pairs import CHANNELS, Domain, Pairs, read_domains, unmatched_note

if TYPE_CHECKING:
    from gentool.neural.engine import FitResult

SAMPLES = 8
MODES: dict[int, Any] = {1: "gray", 3: "rgb", 4: "rgba"}


class Translator(GanModel, ImageTranslation, ImageScoring, FromRun):
    """What the two translators share: reading A and B, training on the engine, the run's
    files, translating a PIL image (resized to image_size and back)."""

    config_class: ClassVar[type] = TranslatorConfig
    train_config_class: ClassVar[type] = TranslatorTrainConfig
    paired: ClassVar[bool] = True
    takes_target: ClassVar[bool] = True  # --data A/ --target B/
    default_data: ClassVar[Path | None] = None  # (two domains: no embedded sample fits)

    def __init__(
        self, network: Any, config: TranslatorConfig, spec: dict[str, Any],
        metrics: dict[str, Any] | None = None, samples: Any = None,
    ) -> None:  # fmt: skip
        self.network = network.eval().requires_grad_(False)
        self.config = config  # channels_a/channels_b resolved
        self.spec = spec
        self.metrics = metrics or {}
        self.samples = samples

    # -- training -------------------------------------------------------------------------------
    @classmethod
    def train(cls, config: TranslatorConfig, context: TrainingContext[Any]) -> Self:
        require_neural()
        import torch

        from gentool.neural.devices import check_setup
        from gentool.neural.engine import fit

        check_translator(config, context.train)
        super().check_config(config, context.train)
        check_setup(context.train, context.runtime)
        if context.val is not None:
            raise RecipeError(
                f"a gan {cls.kind_name()} holds out train.val_fraction of its data itself; "
                "drop --val"
            )
        pairs = read_domains(
            list(context.data), context.target, config.image_size,
            config.channels_a, config.channels_b, cls.paired,
        )  # fmt: skip
        for domain in (pairs.a, pairs.b):
            if domain.skipped:
                report_skipped(domain, context.log)  # type: ignore[arg-type]
        note = unmatched_note(pairs)
        if note:
            context.log(note)
        config = dataclasses.replace(
            config, channels_a=MODES[pairs.a.channels], channels_b=MODES[pairs.b.channels]
        )
        if min(len(pairs.a), len(pairs.b)) < 2:
            raise DataError(
                f"the {cls.kind_name()} translator needs at least 2 images on each side, got "
                f"{len(pairs.a)} of A and {len(pairs.b)} of B"
            )
        torch.manual_seed(context.seed)
        task, spec = cls.make_task(config, context, pairs)  # type: ignore[arg-type]
        if config.init:
            start_from(task.model, spec, Path(config.init))
        counts = pairs.counts()
        context.log(
            f"training a gan {cls.kind_name()} translator ({config.image_size} px, "
            f"{config.channels_a} -> {config.channels_b}, {config.loss} loss) on "
            f"{counts['images_a']} images of A and {counts['images_b']} of B"
        )
        result = fit(
            task, context.train, context.runtime, context.run_dir, context.log, context.recipe
        )
        metrics = {**result.summary(), **counts}
        return cls.trained(spec, task, result, metrics)

    @classmethod
    def split(cls, domain: Domain, fraction: float, seed: int) -> tuple[Domain, Domain | None]:
        """A seeded shuffle, then ``fraction`` held out (none if that is < 1): as
        ``gentool_gan.base.split`` does for an ImageSet."""
        held = int(len(domain) * fraction)
        if held < 1 or held >= len(domain):
            return domain, None
        order = np.random.default_rng(seed).permutation(len(domain))
        return domain.take(order[held:]), domain.take(order[:held])

    # -- loading --------------------------------------------------------------------------------
    @classmethod
    def saved_config(cls, directory: Path) -> tuple[dict[str, Any], TranslatorConfig, int]:
        from gentool_gan.unet import unet_depth

        spec = cls.read_spec(directory)
        try:
            known = {f.name for f in dataclasses.fields(TranslatorConfig)}
            config = TranslatorConfig(**{k: v for k, v in spec.items() if k in known})
            check_translator(config, TranslatorTrainConfig())
            resolved = config.channels_a in CHANNELS and config.channels_b in CHANNELS
            if config.task != cls.kind_name() or not resolved:
                raise ValueError(
                    f"task {config.task!r}, channels {config.channels_a!r}, {config.channels_b!r}"
                )
            depth = int(spec.get("depth", unet_depth(config.image_size)))
            if depth != unet_depth(config.image_size):
                raise ValueError(f"depth {depth} does not fit image_size {config.image_size}")
        except (ValueError, TypeError, KeyError, RecipeError) as err:
            raise runs.damaged(
                directory, f"config.json is not a gan {cls.kind_name()}'s config ({err})"
            ) from None
        return spec, config, depth

    # -- tasks ----------------------------------------------------------------------------------
    def channels(self) -> tuple[int, int]:
        return CHANNELS[self.config.channels_a], CHANNELS[self.config.channels_b]

    def read_for_scoring(self, data: Sequence[Path], target: Path | None) -> Pairs:
        pairs = read_domains(
            [Path(p) for p in data], target, self.config.image_size,
            self.config.channels_a, self.config.channels_b, self.paired,
        )  # fmt: skip
        return pairs

    def evaluate_images(
        self,
        paths: Sequence[Path],
        feature_space: str = "classifier",
        feature_weights: Path | None = None,
    ) -> dict[str, Any]:
        """``gentool evaluate RUN --data PAIRS.npz`` (arrays a and b)."""
        return self.evaluate_domains(paths, None, feature_space, feature_weights)

    def describe(self) -> dict[str, Any]:
        return {
            "task": self.config.task,
            "image_size": self.config.image_size,
            "channels_a": self.config.channels_a,
            "channels_b": self.config.channels_b,
            "width": self.config.width,
            "parameters": sum(p.numel() for p in self.network.parameters()),
        }


class PairedTranslator(Translator):
    """pix2pix: ``gentool transform RUN a.png -o b.png`` draws B for an A image (at
    image_size, resized back to the input's size)."""

    kind = "paired"
    description = "pix2pix image translation from pairs: --data A/ --target B/ (model.task=paired)"
    selected_by = {"task": ("paired",)}
    paired = True

    @classmethod
    def make_task(cls, config: TranslatorConfig, context: TrainingContext[Any], data: Any) -> Any:
        import torch

        from gentool_gan.translation import (
            PairedPair,
            PairedTask,
            build_generator,
            disc_layers,
        )
        from gentool_gan.unet import PatchDiscriminator, unet_depth

        pairs: Pairs = data
        stacked = Domain(np.concatenate([pairs.a.images, pairs.b.images], 1), pairs.a.keys)
        train, val = cls.split(stacked, context.train.val_fraction, context.seed)
        ca, cb = pairs.a.channels, pairs.b.channels
        depth = unet_depth(config.image_size)
        generator = build_generator(ca, cb, config.width, depth)
        discriminator = PatchDiscriminator(
            ca + cb, config.width, disc_layers(config), config.spectral_norm
        )
        pair = PairedPair(generator, discriminator, ca, config.loss, context.train)
        task = PairedTask(
            pair,
            torch.from_numpy(train.images[:SAMPLES]),
            train=context.train,
            images=torch.from_numpy(train.images),
            val_images=torch.from_numpy(val.images) if val is not None else None,
            seed=context.seed,
            run_dir=context.run_dir,
        )
        from gentool_gan.translation import baseline_colours

        colours = baseline_colours(train.images[:, :ca], train.images[:, ca:])
        spec = {"model_type": cls.family, **dataclasses.asdict(config), "depth": depth,
                "baseline_colours": colours}  # fmt: skip
        return task, spec

    @classmethod
    def trained(
        cls, spec: dict[str, Any], task: Any, result: FitResult, metrics: dict[str, Any]
    ) -> Self:
        from gentool_gan.adversarial import unwrap
        from gentool_gan.translation import paired_grid

        sampler = unwrap(result.model).sampler()
        metrics.update(val_l1=result.val_loss,
                       parameters=sum(p.numel() for p in sampler.parameters()))  # fmt: skip
        config = TranslatorConfig(
            **{f.name: spec[f.name] for f in dataclasses.fields(TranslatorConfig)}
        )
        samples = paired_grid(sampler, task.channels_a, task.samples)
        return cls(sampler, config, spec, metrics, samples)

    @classmethod
    def load(cls, directory: Path, config: TranslatorConfig) -> Self:
        from gentool_gan.translation import build_generator

        spec, saved, depth = cls.saved_config(directory)
        ca, cb = CHANNELS[saved.channels_a], CHANNELS[saved.channels_b]
        network = cls.load_network(lambda: build_generator(ca, cb, saved.width, depth), directory)
        return cls(network, saved, spec)

    def transform(self, images: Sequence[Any], reverse: bool = False) -> list[Any]:
        from gentool_gan.translation import translate_images

        if reverse:
            raise RecipeError(
                "a paired translator goes one way, A to B; --reverse needs a model.task=cyclegan "
                "run (or train a paired one with --data B/ --target A/)"
            )
        return translate_images(self.network, images, self.config.image_size, self.channels()[0])

    def evaluate_domains(
        self,
        data: Sequence[Path],
        target: Path | None,
        feature_space: str = "classifier",
        feature_weights: Path | None = None,
    ) -> dict[str, Any]:
        """PSNR/SSIM/L1 of the translations of A against the true B (pairs matched by name),
        and of the trivial baseline: each A shape filled with the training B's mean colour."""
        from gentool_gan.inception import requested
        from gentool_gan.translation import evaluate_paired

        pairs = self.read_for_scoring(data, target)
        space = requested(feature_space, feature_weights)
        colours, name = self.spec.get("baseline_colours"), Path(target or data[0]).name
        metrics = evaluate_paired(self.network, pairs.a, pairs.b, colours, name, space)
        metrics.update(unmatched_a=pairs.unmatched_a, unmatched_b=pairs.unmatched_b)
        return metrics


class CycleTranslator(Translator):
    """CycleGAN: ``gentool transform RUN a.png -o b.png`` (A to B), ``--reverse`` (B to A)."""

    kind = "cyclegan"
    description = (
        "CycleGAN unpaired translation, both ways: --data A/ --target B/ (model.task=cyclegan)"
    )
    selected_by = {"task": ("cyclegan",)}
    paired = False

    @classmethod
    def make_task(cls, config: TranslatorConfig, context: TrainingContext[Any], data: Any) -> Any:
        import torch

        from gentool_gan.translation import (
            CycleDiscriminators,
            CycleGenerators,
            CyclePair,
            CycleTask,
        )
        from gentool_gan.unet import unet_depth

        pairs: Pairs = data
        fraction, seed = context.train.val_fraction, context.seed
        train_a, val_a = cls.split(pairs.a, fraction, seed)
        train_b, val_b = cls.split(pairs.b, fraction, seed + 1)
        ca, cb = pairs.a.channels, pairs.b.channels
        depth = unet_depth(config.image_size)
        generators = CycleGenerators(ca, cb, config.width, depth)
        discriminators = CycleDiscriminators(ca, cb, config)
        pair = CyclePair(generators, discriminators, (ca, cb), config, context.train)
        task = CycleTask(
            pair,
            torch.from_numpy(train_b.images),
            torch.from_numpy(val_b.images) if val_b is not None else None,
            torch.from_numpy(train_a.images[:SAMPLES]),
            train=context.train,
            images=torch.from_numpy(train_a.images),
            val_images=torch.from_numpy(val_a.images) if val_a is not None else None,
            seed=context.seed,
            run_dir=context.run_dir,
        )
        spec = {"model_type": cls.family, **dataclasses.asdict(config), "depth": depth}
        return task, spec

    @classmethod
    def trained(
        cls, spec: dict[str, Any], task: Any, result: FitResult, metrics: dict[str, Any]
    ) -> Self:
        from gentool_gan.adversarial import unwrap
        from gentool_gan.translation import cycle_grid

        sampler = unwrap(result.model).sampler()
        metrics.update(val_cycle_l1=result.val_loss,
                       parameters=sum(p.numel() for p in sampler.parameters()))  # fmt: skip
        config = TranslatorConfig(
            **{f.name: spec[f.name] for f in dataclasses.fields(TranslatorConfig)}
        )
        return cls(sampler, config, spec, metrics, cycle_grid(sampler, task.samples))

    @classmethod
    def load(cls, directory: Path, config: TranslatorConfig) -> Self:
        from gentool_gan.translation import CycleGenerators

        spec, saved, depth = cls.saved_config(directory)
        ca, cb = CHANNELS[saved.channels_a], CHANNELS[saved.channels_b]
        network = cls.load_network(lambda: CycleGenerators(ca, cb, saved.width, depth), directory)
        return cls(network, saved, spec)

    def transform(self, images: Sequence[Any], reverse: bool = False) -> list[Any]:
        from gentool_gan.translation import translate_images

        ca, cb = self.channels()
        generator, channels = (self.network.ba, cb) if reverse else (self.network.ab, ca)
        return translate_images(generator, images, self.config.image_size, channels)

    def evaluate_domains(
        self,
        data: Sequence[Path],
        target: Path | None,
        feature_space: str = "classifier",
        feature_weights: Path | None = None,
    ) -> dict[str, Any]:
        from gentool_gan.inception import requested
        from gentool_gan.translation import evaluate_cycle

        pairs = self.read_for_scoring(data, target)
        space = requested(feature_space, feature_weights)
        return evaluate_cycle(
            self.network, pairs.a, pairs.b, [str(p) for p in data], str(target or data[0]), space
        )
