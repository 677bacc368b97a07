"""The gan family's image generator, end to end: train on folders, idx and npz files, save,
load, seeded generation, class control, latent walks, every loss, evaluation (FID/KID,
coverage, memorisation), resume, bad input; and the adversarial building blocks."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    assert_error,
    assert_same_weights,
    interrupt_at,
    invoke,
    invoke_json,
)

torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from gentool import api, runs  # noqa: E402
from gentool.tasks import GenerationRequest  # noqa: E402
from gentool_gan import adversarial, metrics  # noqa: E402
from gentool_gan.generation import GenerationTask, lerp, slerp  # noqa: E402
from gentool_gan.networks import Discriminator, Generator  # noqa: E402

SIZE = 28
TINY = [
    "--set", "model.width=8",
    "--set", "model.latent_size=16",
    "--set", "train.batch_size=8",
    "--set", "train.log_every=2",
    "--set", "train.sample_every=3",
    "--set", "train.eval_batches=1",
    "--set", "train.val_fraction=0.25",
]  # fmt: skip


def tiny(steps: int = 6, checkpoint_every: int = 0, *more: str) -> list[str]:
    extra = [a for setting in more for a in ("--set", setting)]
    return [
        *TINY,
        "--set",
        f"train.max_steps={steps}",
        "--set",
        f"train.checkpoint_every={checkpoint_every}",
        *extra,
    ]


def digit_like(label: int, rng: np.random.Generator) -> np.ndarray:
    """A 28 x 28 uint8 picture of class ``label``: a bar whose position and angle depend on
    the class (horizontal, vertical, diagonal), jittered."""
    image = np.zeros((SIZE, SIZE), dtype=np.uint8)
    offset = int(rng.integers(-3, 4))
    if label == 0:
        image[12 + offset : 16 + offset, 4:24] = 255
    elif label == 1:
        image[4:24, 12 + offset : 16 + offset] = 255
    else:
        for i in range(4, 24):
            image[i, max(0, min(SIZE - 3, i + offset)) : i + offset + 3] = 255
    noise = rng.integers(0, 40, image.shape, dtype=np.uint8)
    return np.maximum(image, noise)


def write_folder(root: Path, per_class: int = 12, classes: int = 3, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for label in range(classes):
        folder = root / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(digit_like(label, rng)).save(folder / f"{i:03d}.png")
    return root


def arrays(count: int, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % classes
    return np.stack([digit_like(int(y), rng) for y in labels]), labels.astype(np.uint8)


def write_idx(path: Path, array: np.ndarray) -> Path:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder(tmp_path_factory.mktemp("gan-data") / "shapes")


@pytest.fixture(scope="module")
def heldout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder(tmp_path_factory.mktemp("gan-heldout") / "shapes", per_class=10, seed=7)


@pytest.fixture(scope="module")
def trained(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An unconditional tiny DCGAN on the shapes folder, shared by the read-only tests."""
    out = tmp_path_factory.mktemp("gan") / "run"
    api.train("gan", data=[data], overrides=[a for a in tiny(6) if a != "--set"], out=out)
    return out


@pytest.fixture(scope="module")
def conditional(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gan-cond") / "run"
    overrides = [a for a in tiny(4, 0, "model.conditional=true") if a != "--set"]
    api.train("gan", data=[data], overrides=overrides, out=out)
    return out


@pytest.fixture(autouse=True)
def _quick_classifier(monkeypatch: pytest.MonkeyPatch) -> None:
    """The evaluation classifier's floor of 300 steps is for real data sets; the tests'
    bars are told apart in 30."""
    monkeypatch.setattr(metrics, "MIN_CLASSIFIER_STEPS", 30)


def log_lines(run: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# -- training and the run directory ---------------------------------------------------------


def test_train_writes_a_run_with_samples_and_adversarial_metrics(trained: Path) -> None:
    names = {p.name for p in trained.iterdir()}
    assert {"gentool.json", "model.safetensors", "config.json", "samples.png"} <= names
    assert {"reference.safetensors", "metrics.jsonl"} <= names
    run = runs.RunDirectory(trained)
    run.verify()
    assert run.kind == "generator"  # `gentool train gan` with no model.task
    assert sorted(p.name for p in (trained / "samples").iterdir()) == ["step-3.png", "step-6.png"]
    grid = Image.open(trained / "samples.png")
    assert grid.size == (8 * (SIZE + 2) + 2,) * 2 and grid.mode == "L"  # 64 samples, 8 x 8
    *lines, summary = log_lines(trained)
    logged = [r for r in lines if "loss" in r]
    assert [r["step"] for r in logged] == [2, 4, 6]
    for record in logged:  # n_critic=1: every window of 2 steps has one step of each kind
        for key in ("loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g"):
            assert isinstance(record[key], float), key
        assert 0 < record["d_real"] < 1 and 0 < record["d_fake"] < 1  # probabilities
        assert record["grad_norm_d"] > 0 and record["grad_norm_g"] > 0
        assert record["diversity"] > 0
    assert summary["steps"] == 6 and summary["generator_steps"] == 3
    assert summary["train_images"] == 27 and summary["val_images"] == 9  # 36, a quarter held
    assert summary["skipped_files"] == 0 and summary["val_loss_d"] > 0
    config = json.loads((trained / "config.json").read_text())
    assert config["task"] == "generate" and config["channels"] == 1
    assert config["data"]["train_images"] == 27
    # The moving average was updated (3 generator steps) and differs from the generator.
    tensors = load_file(str(trained / "model.safetensors"))
    ema = tensors["ema.net.0.weight"]
    assert not torch.equal(ema, tensors["generator.net.0.weight"])


def test_describe_and_info(trained: Path, conditional: Path) -> None:
    info = invoke_json("info", trained)["model"]
    assert info["image_size"] == 28 and info["channels"] == 1 and info["latent_size"] == 16
    assert info["conditional"] is False and info["classes"] == []
    assert info["loss"] == "nonsaturating" and info["parameters"] > 0
    model = api.load(conditional)
    described = model.describe()
    assert described["conditional"] is True
    assert model.classes() == described["classes"] == ["class0", "class1", "class2"]


# -- generation -----------------------------------------------------------------------------


def test_generate_is_repeatable_with_a_seed(trained: Path, tmp_path: Path) -> None:
    def draw(seed: int, out: Path) -> list[bytes]:
        found = invoke_json("generate", trained, "-n", "5", "--seed", seed, "--out-dir", out)
        assert found["images"] == 5 and len(found["files"]) == 5
        files = sorted(out.iterdir())
        assert [p.name for p in files] == [f"sample-{i:04d}.png" for i in range(5)]
        images = [Image.open(p) for p in files]
        assert all(im.size == (SIZE, SIZE) and im.mode == "L" for im in images)
        return [im.tobytes() for im in images]

    first = draw(1, tmp_path / "a")
    assert first == draw(1, tmp_path / "b")
    assert len(set(first)) == 5  # five different samples
    assert draw(2, tmp_path / "c") != first
    invoke("generate", trained, "-n", "6", "--seed", "1", "--grid", tmp_path / "grid.png")
    assert Image.open(tmp_path / "grid.png").size == (3 * 30 + 2, 2 * 30 + 2)  # 3 x 2 tiles


def test_interpolate_walks_between_the_samples_latents(trained: Path, tmp_path: Path) -> None:
    invoke("generate", trained, "-n", "2", "--interpolate", "5", "--grid", tmp_path / "w.png")
    assert Image.open(tmp_path / "w.png").size == (5 * 30 + 2, 2 * 30 + 2)  # a row per sample
    model = api.load(trained)
    walk = model.generate_images(GenerationRequest(num_samples=2, seed=3, interpolate=5))
    plain = model.generate_images(GenerationRequest(num_samples=2, seed=3))
    assert len(walk) == 10
    for row in range(2):  # each row starts at the sample drawn without --interpolate
        start = np.asarray(walk[row * 5], dtype=int)
        assert np.abs(start - np.asarray(plain[row], dtype=int)).max() <= 1
        frames = {walk[row * 5 + i].tobytes() for i in range(5)}
        assert len(frames) == 5
    model.interpolation = "linear"
    linear = model.generate_images(GenerationRequest(num_samples=2, seed=3, interpolate=5))
    assert linear[0].tobytes() == walk[0].tobytes() and linear[2].tobytes() != walk[2].tobytes()


def test_slerp_keeps_the_norm_of_gaussian_latents() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 512, generator=g), torch.randn(1, 512, generator=g)
    t = torch.linspace(0, 1, 9)[:, None]
    walked = slerp(a, b, t)
    assert torch.allclose(walked[0], a[0], atol=1e-5) and torch.allclose(
        walked[-1], b[0], atol=1e-5
    )
    norms = walked.norm(dim=1)
    assert (norms.max() - norms.min()) / norms.mean() < 0.05  # both ends have norm ~sqrt(512)
    assert lerp(a, b, t)[4].norm() < 0.8 * norms[4]  # linear cuts through the low-norm middle


def test_conditional_generator_draws_the_class_asked_for(
    conditional: Path, trained: Path, tmp_path: Path
) -> None:
    model = api.load(conditional)
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(0))
    net = model.pair.sampler()
    with adversarial.sampling(net):
        outputs = [net(z, torch.full((4,), k)) for k in range(3)]
    assert not torch.allclose(outputs[0], outputs[1]) and not torch.allclose(outputs[1], outputs[2])

    def draw(label: str, out: Path) -> list[bytes]:
        invoke(
            "generate", conditional, "--class", label, "-n", "3", "--seed", "5", "--out-dir", out
        )
        return [p.read_bytes() for p in sorted(out.iterdir())]

    assert draw("class1", tmp_path / "by-name") == draw("1", tmp_path / "by-number")
    assert draw("0", tmp_path / "zero") != draw("1", tmp_path / "one")
    assert_error(
        invoke(
            "generate", conditional, "--class", "class9", "--grid", tmp_path / "x.png", ok=False
        ),
        "unknown class 'class9'",
        "class0, class1, class2",
    )
    assert_error(
        invoke("generate", trained, "--class", "3", "--grid", tmp_path / "x.png", ok=False),
        "not class-conditional",
        "drop --class",
    )
    grid = Image.open(conditional / "samples.png")  # one class a column: 3 columns
    assert grid.size == (3 * 30 + 2, 22 * 30 + 2)


# -- losses, data formats -------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        ("model.loss=hinge", "model.spectral_norm=true", "train.lr_d_scale=4"),
        ("model.loss=wgan-gp", "train.n_critic=2", "train.ema_decay=0"),
        ("train.label_smoothing=0.2", "model.image_size=32", "model.channels=rgb"),
    ],
    ids=["hinge-sn-ttur", "wgan-gp", "smoothing-rgb32"],
)
def test_losses_and_options_train(data: Path, tmp_path: Path, settings: tuple[str, ...]) -> None:
    out = tmp_path / "run"
    invoke("train", "gan", "--data", data, *tiny(6, 0, *settings), "--out", out)
    lines = [r for r in log_lines(out) if "loss" in r]
    assert all(np.isfinite(r["loss"]) for r in lines)
    if "model.loss=wgan-gp" in settings:
        # n_critic=2: steps d, d, g, d, d, g; the critic's raw scores, and the penalty
        assert log_lines(out)[-1]["generator_steps"] == 2
        assert all("gp" in r for r in lines if "loss_d" in r)
        pair = api.load(out).pair
        assert pair.sampler() is pair.generator  # ema_decay=0: no moving average
    if "model.spectral_norm=true" in settings:
        keys = load_file(str(out / "model.safetensors"))
        assert any("parametrizations.weight.original" in k for k in keys)
    image = api.load(out).generate_images(GenerationRequest(num_samples=1, seed=0))[0]
    expected = (32, "RGB") if "model.channels=rgb" in settings else (28, "L")
    assert (image.size[0], image.mode) == expected


def test_idx_and_npz_data(tmp_path: Path) -> None:
    images, labels = arrays(20)
    idx = write_idx(tmp_path / "shapes-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "shapes-labels-idx1-ubyte.gz", labels)
    npz = tmp_path / "shapes.npz"
    np.savez(npz, images=images, labels=labels)
    for name, path in (("idx", idx), ("npz", npz)):
        out = tmp_path / name
        invoke("train", "gan", "--data", path, *tiny(2, 0, "model.conditional=true"), "--out", out)
        described = api.load(out).describe()
        assert described["classes"] == ["0", "1", "2"]
        assert described["data"]["train_images"] + described["data"]["val_images"] == 20


# -- bad input ------------------------------------------------------------------------------


def test_bad_input(tmp_path: Path, data: Path) -> None:
    (tmp_path / "empty").mkdir()
    out = tmp_path / "run"
    assert_error(
        invoke("train", "gan", "--data", tmp_path / "empty", *tiny(2), "--out", out, ok=False),
        "holds no image files",
    )
    images, _ = arrays(4)
    broken = tmp_path / "broken-images-idx3-ubyte.gz"
    write_idx(broken, images)
    broken.write_bytes(gzip.compress(gzip.decompress(broken.read_bytes())[:-100]))
    assert_error(
        invoke("train", "gan", "--data", broken, *tiny(2), "--out", out, ok=False),
        "truncated or the wrong size",
    )
    assert_error(
        invoke("train", "gan", "--data", data, *tiny(2, 0, "model.image_size=48"), ok=False),
        "model.image_size=48",
        "28, 32, 64",
    )
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(images[0]).save(flat / "a.png")
    Image.fromarray(images[1]).save(flat / "b.png")
    assert_error(
        invoke("train", "gan", "--data", flat, *tiny(2, 0, "model.conditional=true"), ok=False),
        "model.conditional needs class labels",
        "sub-folder per class",
    )
    assert_error(
        invoke("train", "gan", "--data", data, *tiny(2, 0, "train.n_critic=0"), ok=False),
        "train.n_critic must be at least 1",
    )
    assert_error(  # a restorer's setting
        invoke("train", "gan", "--data", data, *tiny(2, 0, "train.l1_weight=5"), ok=False),
        "train.l1_weight applies to the gan restorer",
        "not to the gan generator",
        "drop it",
    )
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_a_corrupt_png_is_skipped_and_counted(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "shapes", per_class=4, classes=2)
    (folder / "class0" / "zz-corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    out = tmp_path / "run"
    result = invoke("train", "gan", "--data", folder, *tiny(2), "--out", out)
    assert "skipped 1 unreadable image file(s)" in result.stderr
    assert "zz-corrupt.png" in result.stderr
    assert log_lines(out)[-1]["skipped_files"] == 1
    facts = json.loads((out / "config.json").read_text())["data"]
    assert facts["skipped_files"] == 1 and facts["skipped"] == ["zz-corrupt.png"]
    assert facts["train_images"] + facts["val_images"] == 8


# -- resume ---------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["nonsaturating", "wgan-gp"])
def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loss: str
) -> None:
    settings = ["--data", data, *tiny(8, 0, f"model.loss={loss}", "model.conditional=true")]
    invoke("train", "gan", *settings, "--out", tmp_path / "whole")
    interrupt_at(
        monkeypatch, GenerationTask, 4
    )  # during step 5: after a generator step, EMA updated
    result = invoke("train", "gan", *settings, "--out", tmp_path / "cut", ok=False)
    assert result.exit_code == 130 and "interrupted at step 5" in result.stderr
    monkeypatch.undo()
    invoke("train", "--resume", "--out", tmp_path / "cut")
    whole = assert_same_weights(tmp_path / "whole", tmp_path / "cut", atol=1e-6)
    assert any(k.startswith("ema.") for k in whole)
    assert [r["step"] for r in log_lines(tmp_path / "cut") if "loss" in r] == [2, 4, 6, 8]
    assert (tmp_path / "cut" / "samples.png").read_bytes() == (
        tmp_path / "whole" / "samples.png"
    ).read_bytes()


# -- evaluation -----------------------------------------------------------------------------


def test_evaluate_gives_fid_kid_coverage_and_memorisation(
    trained: Path, heldout: Path, tmp_path: Path
) -> None:
    found = invoke_json("evaluate", trained, "--data", heldout)["metrics"]
    space = found["feature_space"]
    assert space.startswith("classifier_shapes_")
    assert found[f"fid_{space}"] > 0 and np.isfinite(found[f"kid_{space}"])
    assert found["real_images"] == found["generated_images"] == 30
    assert 0 <= found["class_coverage"] <= 1
    assert 0 <= found["class_entropy_bits"] <= found["class_entropy_max_bits"] == np.log2(3)
    assert found["classifier_accuracy"] >= 0.6  # the bars are easy to tell apart
    assert found["nn_distance_generated"] > 0 and found["nn_distance_heldout"] > 0
    # The same data gives the same feature space and the same figures.
    again = invoke_json("evaluate", trained, "--data", heldout)["metrics"]
    assert {k: v for k, v in again.items() if k != "seconds"} == {
        k: v for k, v in found.items() if k != "seconds"
    }
    # Unlabelled images: a fixed random CNN, named as such, and no class figures.
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, path in enumerate(sorted(heldout.rglob("*.png"))[:12]):
        (flat / f"{i}.png").write_bytes(path.read_bytes())
    plain = invoke_json("evaluate", trained, "--data", flat)["metrics"]
    assert plain["feature_space"] == "randcnn_28px" and "fid_randcnn_28px" in plain
    assert "class_coverage" not in plain
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_error(invoke("evaluate", trained, "--data", empty, ok=False), "holds no image files")


def test_conditional_evaluate_checks_the_classes_drawn(conditional: Path, data: Path) -> None:
    found = invoke_json("evaluate", conditional, "--data", data)["metrics"]
    assert 0 <= found["conditional_accuracy"] <= 1


def test_fid_kid_and_coverage_on_known_features() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 8))
    b = rng.normal(size=(2000, 8))
    assert metrics.fid(a, a) == pytest.approx(0, abs=1e-6)
    assert metrics.fid(a, b) < 0.1
    # Shifting every feature by 1 adds |mu_a - mu_b|^2 = 8; doubling the spread adds
    # tr(S) + tr(4S) - 2 tr(2S) = 8 more.
    assert metrics.fid(a, b + 1) == pytest.approx(8, abs=0.3)
    assert metrics.fid(a, 2 * b) == pytest.approx(8, abs=0.6)
    assert abs(metrics.kid(a, b)[0]) < 0.01 < metrics.kid(a, b + 1)[0]
    one_hot = np.eye(4)[[0] * 50 + [1] * 45 + [2] * 5]  # class 3 never, class 2 rarely
    found = metrics.coverage(one_hot)
    assert found["class_coverage"] == 0.5  # 12.5% of the images is half a fair share
    assert found["class_entropy_max_bits"] == 2.0
    assert 1.0 < found["class_entropy_bits"] < 1.5


def test_nearest_distance_flags_copies() -> None:
    images, _ = arrays(30)
    assert metrics.nearest_distance(images[:10], images) == pytest.approx(0, abs=1e-6)
    assert metrics.nearest_distance(images[:10], images[10:]) > 0.01


# -- the adversarial building blocks --------------------------------------------------------


def test_losses_match_their_definitions() -> None:
    real = torch.tensor([2.0, -1.0])
    fake = torch.tensor([0.5, -3.0])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = bce(real, torch.full((2,), 0.9)) + bce(fake, torch.zeros(2))
    assert torch.allclose(adversarial.d_loss(real, fake, "nonsaturating", 0.1), expected)
    assert torch.allclose(adversarial.g_loss(fake, "nonsaturating"), bce(fake, torch.ones(2)))
    # hinge: mean(relu(1 - [2, -1])) + mean(relu(1 + [0.5, -3])) = 1 + 0.75
    assert adversarial.d_loss(real, fake, "hinge").item() == pytest.approx(1.75)
    assert adversarial.d_loss(real, fake, "wgan-gp").item() == pytest.approx(-1.25 - 0.5)
    assert adversarial.g_loss(fake, "hinge").item() == pytest.approx(1.25)
    # lsgan: ((2-1)^2 + (-1-1)^2) / 2 / 2 + (0.5^2 + 3^2) / 2 / 2; G: ((0.5-1)^2 + 4^2) / 2
    assert adversarial.d_loss(real, fake, "lsgan").item() == pytest.approx(3.5625)
    assert adversarial.g_loss(fake, "lsgan").item() == pytest.approx(8.125)
    with pytest.raises(Exception, match="valid: nonsaturating, hinge, wgan-gp, lsgan"):
        adversarial.d_loss(real, fake, "least-squares")


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic() -> None:
    class Linear(torch.nn.Module):
        def __init__(self, scale: float) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.full((1, 4), scale / 2))  # |w| = scale

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x.flatten(1) * self.w).sum(1)

    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    assert adversarial.gradient_penalty(Linear(1.0), real, fake).item() == pytest.approx(
        0, abs=1e-6
    )
    assert adversarial.gradient_penalty(Linear(3.0), real, fake).item() == pytest.approx(4.0)


def moved(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


def test_each_step_trains_one_network_and_batches_are_pure(data: Path) -> None:
    from gentool_gan.configs import GanTrainConfig
    from gentool_gan.generation import GenerationPair

    torch.manual_seed(0)
    pair = GenerationPair(Generator(28, 1, 16, 4), Discriminator(28, 1, 4))
    train = GanTrainConfig(batch_size=8, n_critic=2, lr_d_scale=3.0)
    images = torch.from_numpy(arrays(20)[0][:, None])
    task = GenerationTask(pair, train, images, seed=5, loss_kind="nonsaturating")
    assert [task.phase(s) for s in range(6)] == ["d", "d", "g", "d", "d", "g"]
    groups = task.param_groups(pair, train)
    assert {g["lr_scale"] for g in groups} == {1.0, 3.0} and all(
        g["betas"] == (0.5, 0.999) for g in groups
    )
    first = task.train_batch(7, slice(0, 8))
    again = task.train_batch(7, slice(0, 8))
    halves = [task.train_batch(7, slice(0, 4)), task.train_batch(7, slice(4, 8))]
    for key in ("real", "z"):
        assert torch.equal(first[key], again[key])
        assert torch.equal(first[key], torch.cat([h[key] for h in halves]))  # rows of one batch
    assert not torch.equal(first["z"], task.train_batch(8, slice(0, 8))["z"])
    optimizer = torch.optim.AdamW(groups, lr=1e-2)
    for step in range(3):
        batch = task.train_batch(step, slice(0, 8))
        d_before = [p.clone() for p in pair.discriminator.parameters()]
        g_before = [p.clone() for p in pair.generator.parameters()]
        loss = task.loss(pair, batch)
        loss.backward()
        task.on_backward(pair, step + 1)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        d_moved = moved(d_before, pair.discriminator)
        g_moved = moved(g_before, pair.generator)
        assert (d_moved, g_moved) == ((True, False) if batch["phase"] == "d" else (False, True))
    extras = task.log_extras()
    assert {
        "loss_d",
        "loss_g",
        "d_real",
        "d_fake",
        "grad_norm_d",
        "grad_norm_g",
        "diversity",
    } <= set(extras)
    assert task.log_extras() == {}  # means since the last call


# -- runs of gentool 0.1 (run format 1) -----------------------------------------------------

# gentool 0.1's one [model] table for both kinds, and the [train] key only restorers use.
UNION_MODEL = {"latent_size": 100, "conditional": False, "upscale_factor": 4, "mask_size": 0.4}
UNION_TRAIN = {"l1_weight": 100.0}


def as_format_1(run: Path) -> None:
    """Rewrite a run as gentool 0.1 wrote it: format 1, no kind, every key of the family's
    one config in its recipe (and in a restorer's config.json), the file list rehashed."""
    meta = json.loads((run / "gentool.json").read_text())
    del meta["kind"], meta["recipe"]["kind"]
    meta["format_version"] = 1
    meta["recipe"]["model"] = {**UNION_MODEL, **meta["recipe"]["model"]}
    meta["recipe"]["train"] = {**UNION_TRAIN, **meta["recipe"]["train"]}
    config = json.loads((run / "config.json").read_text())
    if config["task"] != "generate":
        (run / "config.json").write_text(json.dumps({**UNION_MODEL, **config}))
        meta["files"]["config.json"] = runs.fingerprint(run / "config.json")
        del meta["files"]["config.json"]["path"]
    (run / "gentool.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("kind", "settings"),
    [("generator", []), ("restorer", ["model.task=upscale", "model.image_size=16"])],
)
def test_a_run_of_gentool_0_1_loads_repeats_and_resumes(
    kind: str, settings: list[str], tmp_path: Path
) -> None:
    run = tmp_path / "old"
    overrides = [a for a in tiny(4, 2, *settings) if a != "--set"]
    if kind == "restorer":  # (a generator's key: refused)
        overrides.remove("model.latent_size=16")
    api.train("gan", overrides=overrides, out=run)
    as_format_1(run)
    runs.RunDirectory(run).verify()
    model = api.load(run)
    assert model.kind_name() == kind
    image = Image.fromarray(arrays(1)[0][0][:7, :7])
    if kind == "generator":
        assert len(model.generate_images(GenerationRequest(num_samples=2, seed=0))) == 2
    else:
        assert model.restore([image])[0].size == (28, 28)
    invoke("train", "--recipe", run, "--out", tmp_path / "again")  # the same kind, again
    assert runs.RunDirectory(tmp_path / "again").meta["kind"] == kind
    invoke("train", "--resume", "--out", run, "--set", "train.max_steps=6", "--override")
    assert runs.RunDirectory(run).meta["kind"] == kind
    assert [r["step"] for r in log_lines(run) if "loss" in r] == [2, 4, 6]
