"""Image generation with a DCGAN (model.task = "generate"): train on a folder of images, an
MNIST idx file or an npz, then sample seeded grids, class-conditional draws and latent
walks; ``gentool evaluate`` scores samples against real images (``metrics.py``).

A run holds ``model.safetensors`` (generator, discriminator and the generator's moving
average, which is what samples are drawn from), ``config.json`` (the architecture, the class
names and the data facts), ``reference.safetensors`` (up to 1,000 training images, for the
memorisation check) and ``samples.png`` (a grid from the final model). ``samples/`` holds
the grids written during training.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

try:
    import numpy as np
    import torch
except ImportError as err:  # pragma: no cover (the family is installed with its extras)
    from gentool.errors import GentoolError

    raise GentoolError(f"the gan family needs {err.name}: pip install 'gentool[neural]'") from None

from gentool import runs
from gentool.data.images import ImageSet, read_images
from gentool.errors import DataError, GentoolError, RecipeError, RunError
from gentool.family import GENERATE_IMAGE, SCORE_IMAGES, GenerationRequest, TrainingContext
from gentool.output.images import make_grid, save_image
from gentool.neural.engine import check_setup, fit
from gentool.neural.weights import check_weights
from gentool_gan.adversarial import (
    AdversarialPair,
    AdversarialTask,
    Stats,
    check_adversarial,
    d_loss,
    d_outputs,
    g_loss,
    gradient_penalty,
    sampling,
    seeded,
    spread,
    to_uint8,
    unwrap,
)
from gentool_gan.family import GanFamily, GanModelConfig, GanTrainConfig
from gentool_gan.networks import Discriminator, Generator, layout

CONFIG_FILE = "config.json"
REFERENCE_FILE = "reference.safetensors"
SAMPLES_FILE = "samples.png"
REFERENCE_IMAGES = 1000  # training images kept in the run for the memorisation check
GRID_SAMPLES = 64
GRID_SEED = 1234  # the noise of every sample grid: grids of one run are comparable
CHUNK = 256  # images generated per forward pass


class GenerationPair(AdversarialPair):
    """DCGAN's generator and discriminator, with the losses of ``model.loss``."""

    def __init__(
        self,
        generator: Generator,
        discriminator: Discriminator,
        loss: str = "nonsaturating",
        smoothing: float = 0.0,
        gp_weight: float = 10.0,
    ) -> None:
        super().__init__(generator, discriminator)
        self.latent_size = generator.latent_size
        self.num_classes = generator.num_classes
        self.loss_kind = loss
        self.smoothing = smoothing
        self.gp_weight = gp_weight

    def discriminator_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, Stats]:
        real, real_labels = batch["real"], batch.get("label")
        fake_labels = batch.get("fake_label")
        with torch.no_grad():
            fake = self.generator(batch["z"], fake_labels)
        real_logits = self.discriminator(real, real_labels)
        fake_logits = self.discriminator(fake, fake_labels)
        loss = d_loss(real_logits, fake_logits, self.loss_kind, self.smoothing)
        stats = {**d_outputs(real_logits, fake_logits, self.loss_kind)}
        if self.loss_kind == "wgan-gp":
            penalty = gradient_penalty(
                self.discriminator, real, fake, fake_labels, alpha=batch.get("gp_alpha")
            )
            loss = loss + self.gp_weight * penalty
            stats["gp"] = penalty.detach()
        stats["loss_d"] = loss.detach()
        stats["spread_real"] = spread(real, real_labels)
        return loss, stats

    def generator_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, Stats]:
        labels = batch.get("fake_label")
        fake = self.generator(batch["z"], labels)
        loss = g_loss(self.discriminator(fake, labels), self.loss_kind)
        return loss, {"loss_g": loss.detach(), "spread_fake": spread(fake, labels)}


class GenerationTask(AdversarialTask):
    """Real images, and for each batch noise z (and labels to draw, when conditional)."""

    def __init__(self, model: GenerationPair, *args: Any, **kwargs: Any) -> None:
        super().__init__(model, *args, **kwargs)
        self.latent_size = model.latent_size
        self.num_classes = model.num_classes
        self.last_extras: dict[str, float] = {}

    def make_batch(
        self, index: int, rows: slice, generator: torch.Generator, split: str = "train"
    ) -> dict[str, Any]:
        batch = self.real_batch(index, rows, split)
        batch["z"] = self.noise(generator, rows, self.latent_size)
        if self.num_classes:
            k = self.num_classes
            batch["fake_label"] = self.draw(
                generator, rows, lambda n, g: torch.randint(0, k, (n,), generator=g)
            )
        else:
            batch.pop("label", None)
        return batch

    def write_samples(self, pair: AdversarialPair, step: int) -> None:
        assert self.run_dir is not None
        save_image(sample_grid(pair.sampler()), self.run_dir / "samples" / f"step-{step}.png")

    def log_extras(self) -> dict[str, float]:
        self.last_extras = super().log_extras()
        return self.last_extras


class ImageGenerator(GanFamily):
    """A trained DCGAN: samples images, scores them against real ones."""

    def __init__(
        self,
        pair: GenerationPair,
        spec: dict[str, Any],
        reference: np.ndarray,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        self.pair = pair.eval()
        self.spec = spec
        self.reference = reference  # uint8 N x C x H x W training images
        self.metrics = metrics or {}
        self.tasks = (GENERATE_IMAGE, SCORE_IMAGES)
        self.interpolation = "slerp"  # or "linear": how --interpolate walks between latents

    # -- training -----------------------------------------------------------------------------
    @classmethod
    def train(cls, config: GanModelConfig, context: TrainingContext) -> ImageGenerator:
        train: GanTrainConfig = context.train
        run_dir = context.run_dir
        assert run_dir is not None
        check_model(config)
        check_adversarial(train)
        check_setup(train, context.runtime)  # before the data work, not after it
        data = read_images(context.data, config.image_size, config.channels)
        report_skipped(data, context)
        if config.conditional and data.labels is None:
            raise DataError(
                f"model.conditional needs class labels, and {_names(context.data)} has none; "
                "give a folder with one sub-folder per class, an idx file with its labels file "
                "beside it, or an npz with a 'labels' array (or drop model.conditional)"
            )
        if config.conditional and len(data.classes) < 2:
            raise DataError(
                f"model.conditional needs at least 2 classes; {_names(context.data)} has "
                f"{len(data.classes)}"
            )
        val: ImageSet | None
        if context.val is not None:
            channels: Literal["gray", "rgb"] = "rgb" if data.channels == 3 else "gray"
            val = read_images([context.val], config.image_size, channels)
            report_skipped(val, context)
            train_set = data
        else:
            train_set, val = split(data, train.val_fraction, context.seed)
        num_classes = len(data.classes) if config.conditional else 0
        facts = {
            "train_images": len(train_set),
            "val_images": len(val) if val is not None else 0,
            "skipped_files": len(data.skipped) + (len(val.skipped) if val else 0),
            "skipped": sorted(Path(p).name for p in data.skipped)[:20],
        }
        spec = {
            "task": "generate",
            "image_size": config.image_size,
            "channels": data.channels,
            "latent_size": config.latent_size,
            "width": config.width,
            "num_classes": num_classes,
            "classes": list(data.classes) if num_classes else [],
            "loss": config.loss,
            "spectral_norm": config.spectral_norm,
            "ema": train.ema_decay > 0,
            "data": facts,
        }
        torch.manual_seed(context.seed)
        pair = build_pair(spec, train.label_smoothing, train.gp_weight)
        labels = _tensor(train_set.labels) if num_classes else None
        task = GenerationTask(
            pair,
            train,
            torch.from_numpy(train_set.images),
            labels,
            torch.from_numpy(val.images) if val is not None and len(val) else None,
            _tensor(val.labels) if val is not None and num_classes else None,
            seed=context.seed,
            run_dir=run_dir,
            loss_kind=config.loss,
        )
        context.log(
            f"training a {config.image_size}px DCGAN ({config.loss} loss) on "
            f"{len(train_set)} images ({facts['val_images']} held out)"
        )
        result = fit(task, train, context.runtime, run_dir, context.log, context.recipe)
        trained = unwrap(task.model)
        assert isinstance(trained, GenerationPair)
        metrics: dict[str, Any] = {
            "steps": result.steps,
            "generator_steps": task.generator_steps(result.steps),
            "train_seconds": result.seconds,
            "images_per_s": result.items_per_second,
            "mixed_precision": result.mixed_precision,
            "val_loss_d": result.val_loss,
            **{k: v for k, v in task.last_extras.items() if not k.startswith("grad_norm")},
            "train_images": len(train_set),
            "val_images": facts["val_images"],
            "skipped_files": facts["skipped_files"],
            "parameters_g": _count(trained.generator),
            "parameters_d": _count(trained.discriminator),
        }
        reference = _reference(train_set.images, context.seed)
        return cls(trained, spec, reference, metrics)

    # -- persistence --------------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        tensors = {
            k: v.detach().cpu().contiguous().numpy() for k, v in self.pair.state_dict().items()
        }
        runs.save_tensors(directory / runs.TENSOR_FILE, tensors, self.name)
        runs.save_tensors(directory / REFERENCE_FILE, {"images": self.reference}, self.name)
        runs.write_json(directory / CONFIG_FILE, self.spec)
        save_image(sample_grid(self.pair.sampler()), directory / SAMPLES_FILE)
        return self.metrics

    @classmethod
    def load(cls, directory: Path, config: GanModelConfig) -> ImageGenerator:
        try:
            spec = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise RunError(
                f"'{directory / CONFIG_FILE}' is not a gan generator's config ({err}); "
                "retrain the run"
            ) from None
        if not isinstance(spec, dict):
            raise runs.damaged(directory, f"{CONFIG_FILE} does not hold a JSON object")
        # The config must describe the networks the file holds, before they are built, and
        # the reference images must be images of the size the networks make.
        check_weights(lambda: build_pair(spec), directory / runs.TENSOR_FILE)
        size, channels = spec["image_size"], spec["channels"]
        runs.check_tensors(
            directory / REFERENCE_FILE, {"images": ("U8", (None, channels, size, size))}
        )
        pair = build_pair(spec)
        tensors = runs.load_tensors(directory / runs.TENSOR_FILE, cls.name)
        pair.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()})
        reference = runs.load_tensors(directory / REFERENCE_FILE, cls.name)["images"]
        return cls(pair, spec, reference)

    # -- tasks --------------------------------------------------------------------------------
    def generate_images(self, request: GenerationRequest) -> list[Any]:
        """``num_samples`` images (times ``interpolate`` frames: each sample a row walking
        from one latent to another), drawn from noise seeded by ``request.seed``."""
        from PIL import Image

        seed = request.seed if request.seed is not None else secrets.randbits(63)
        labels = self.labels_for(request.class_label, request.num_samples)
        frames = request.interpolate if request.interpolate > 1 else 0
        generator = seeded(seed)
        z = torch.randn(request.num_samples, self.latent_size, generator=generator)
        if frames:
            end = torch.randn(request.num_samples, self.latent_size, generator=generator)
            t = torch.linspace(0, 1, frames)
            walk = slerp if self.interpolation == "slerp" else lerp
            z = walk(z[:, None, :], end[:, None, :], t[None, :, None]).flatten(0, 1)
            labels = None if labels is None else labels.repeat_interleave(frames)
        images = self.sample(z, labels)
        mode = "L" if images.shape[1] == 1 else "RGB"
        arrays = images.permute(0, 2, 3, 1).numpy()
        return [Image.fromarray(a[..., 0] if mode == "L" else a, mode) for a in arrays]

    def labels_for(self, class_label: int | None, count: int) -> torch.Tensor | None:
        """The labels to draw: every sample ``class_label``, or the classes in turn."""
        k = self.num_classes
        if class_label is not None and not k:
            raise GentoolError(
                f"--class {class_label}: this model is not class-conditional (it was trained "
                "without model.conditional); drop --class"
            )
        if not k:
            return None
        if class_label is None:
            return torch.arange(count) % k
        if not 0 <= class_label < k:
            raise GentoolError(
                f"--class {class_label}: this model draws classes 0-{k - 1} "
                f"({', '.join(self.spec['classes'])})"
            )
        return torch.full((count,), class_label, dtype=torch.long)

    def sample(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 images (N, C, H, W) for latents ``z`` (N, latent_size)."""
        net = self.pair.sampler()
        device = next(net.parameters()).device
        out = []
        with sampling(net):
            for start in range(0, len(z), CHUNK):
                y = None if labels is None else labels[start : start + CHUNK].to(device)
                out.append(to_uint8(net(z[start : start + CHUNK].to(device), y)))
        return torch.cat(out) if out else torch.zeros(0, self.channels, self.size, self.size)

    def random_images(self, count: int, seed: int) -> torch.Tensor:
        """``count`` uint8 samples (classes in turn when conditional), seeded."""
        z = torch.randn(count, self.latent_size, generator=seeded(seed))
        return self.sample(z, self.labels_for(None, count))

    def evaluate_images(self, paths: Sequence[Path]) -> dict[str, Any]:
        from gentool_gan.metrics import evaluate_generator

        return evaluate_generator(self, paths)

    def describe(self) -> dict[str, Any]:
        return {
            "task": "generate",
            "image_size": self.size,
            "channels": self.channels,
            "latent_size": self.latent_size,
            "width": self.spec["width"],
            "conditional": bool(self.num_classes),
            "classes": list(self.spec["classes"]),
            "loss": self.spec["loss"],
            "spectral_norm": self.spec["spectral_norm"],
            "ema": self.spec["ema"],
            "parameters": _count(self.pair.generator),
            "parameters_d": _count(self.pair.discriminator),
            "data": self.spec.get("data", {}),
        }

    @property
    def size(self) -> int:
        return int(self.spec["image_size"])

    @property
    def channels(self) -> int:
        return int(self.spec["channels"])

    @property
    def latent_size(self) -> int:
        return int(self.spec["latent_size"])

    @property
    def num_classes(self) -> int:
        return int(self.spec["num_classes"])

    @property
    def classes(self) -> list[str]:
        return list(self.spec["classes"])


# -- helpers --------------------------------------------------------------------------------


def check_model(config: GanModelConfig) -> None:
    layout(config.image_size)
    for key in ("latent_size", "width"):
        if getattr(config, key) < 1:
            raise RecipeError(f"model.{key} must be at least 1, got {getattr(config, key)}")


def build_pair(
    spec: dict[str, Any], smoothing: float = 0.0, gp_weight: float = 10.0
) -> GenerationPair:
    """The networks ``spec`` (a run's config.json) describes, freshly initialised."""
    size, channels, width = spec["image_size"], spec["channels"], spec["width"]
    num_classes = spec["num_classes"]
    generator = Generator(size, channels, spec["latent_size"], width, num_classes)
    discriminator = Discriminator(
        size,
        channels,
        width,
        num_classes,
        batch_norm=spec["loss"] != "wgan-gp" and not spec["spectral_norm"],
        spectral_norm=spec["spectral_norm"],
    )
    pair = GenerationPair(generator, discriminator, spec["loss"], smoothing, gp_weight)
    pair.ema_decay = 1.0 if spec.get("ema", True) else 0.0  # (only its sign matters here)
    return pair


def sample_grid(generator: torch.nn.Module, count: int = GRID_SAMPLES) -> Any:
    """A grid of ``count`` samples from fixed noise; one class per column when conditional."""
    from PIL import Image

    k: int = getattr(generator, "num_classes", 0)
    latent: int = getattr(generator, "latent_size")  # noqa: B009 (typed: a Generator's)
    columns = min(k, 10) if k else None
    labels = torch.arange(count) % columns if columns else None
    z = torch.randn(count, latent, generator=seeded(GRID_SEED))
    device = next(generator.parameters()).device
    with sampling(generator):
        images = to_uint8(generator(z.to(device), None if labels is None else labels.to(device)))
    arrays = images.permute(0, 2, 3, 1).numpy()
    pictures = [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arrays]
    return make_grid(pictures, columns=columns)


def split(data: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet | None]:
    """A seeded shuffle, then ``fraction`` of the images held out (none if that is < 1)."""
    held = int(len(data) * fraction)
    if held < 1 or held >= len(data):
        return data, None
    order = np.random.default_rng(seed).permutation(len(data))
    parts = []
    for chosen in (order[held:], order[:held]):
        labels = data.labels[chosen] if data.labels is not None else None
        parts.append(ImageSet(data.images[chosen], labels, data.classes))
    return parts[0], parts[1]


def report_skipped(data: ImageSet, context: TrainingContext) -> None:
    if data.skipped:
        first, why = next(iter(data.skipped.items()))
        context.log(f"skipped {len(data.skipped)} unreadable image file(s); first: {why}")


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Gaussian latents keep their norm along the way); linear
    where a and b are (nearly) parallel."""
    cos = (a * b).sum(-1, keepdim=True) / (
        a.norm(dim=-1, keepdim=True) * b.norm(dim=-1, keepdim=True)
    )
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    if float(so.abs().min()) < 1e-6:
        return lerp(a, b, t)
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return (1 - t) * a + t * b


def _reference(images: np.ndarray, seed: int) -> np.ndarray:
    if len(images) <= REFERENCE_IMAGES:
        return np.ascontiguousarray(images)
    chosen = np.sort(np.random.default_rng(seed).permutation(len(images))[:REFERENCE_IMAGES])
    return np.ascontiguousarray(images[chosen])


def _tensor(labels: np.ndarray | None) -> torch.Tensor | None:
    return None if labels is None else torch.from_numpy(np.asarray(labels, dtype=np.int64))


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _names(paths: Sequence[Path]) -> str:
    return ", ".join(f"'{p}'" for p in paths)
