"""The gan family's restorers (colorize, inpaint, upscale), end to end: PSNR/SSIM against
known values, the degradations, train / save / load, ``gentool restore`` on a file and a
folder, ``gentool evaluate`` before and after, resume, and bad input."""

from __future__ import annotations

import json
import shutil
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

from PIL import Image, ImageDraw  # noqa: E402

from gentool import api, runs  # noqa: E402
from gentool.data.images import default_images_path, image_files  # noqa: E402
from gentool.errors import DataError  # noqa: E402
from gentool_gan import quality  # noqa: E402
from gentool_gan.restoration import (  # noqa: E402
    RestorationGenerator,
    RestorationTask,
    hole_masks,
    luminance,
    pixelate,
)

SIZE = 16


def tiny(steps: int = 4, **extra: object) -> list[str]:
    settings = {
        "model.image_size": SIZE,
        "model.width": 8,
        "train.batch_size": 4,
        "train.max_steps": steps,
        "train.log_every": 2,
        "train.sample_every": 2,
        "train.checkpoint_every": 0,
        "train.val_fraction": 0.0,
        **extra,
    }
    return [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]


def colour_pictures(folder: Path, count: int = 12, size: int = 24, seed: int = 0) -> Path:
    """Little landscapes whose colours follow from their shapes, so colour can be learnt
    from luminance: sky blue fading to grass green at a random horizon, with a red disc
    or a yellow square at a random place, each at a random brightness."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = np.arange(size)[:, None, None]
    for i in range(count):
        horizon = rng.integers(size // 3, 2 * size // 3)
        sky, grass = np.array([70, 130, 230]), np.array([40, 170, 60])
        ramp = np.clip((rows - horizon + 3) / 6, 0, 1)
        background = (sky * (1 - ramp) + grass * ramp) * rng.uniform(0.6, 1.0)
        image = Image.fromarray(np.repeat(background, size, 1).astype(np.uint8), "RGB")
        x0, y0 = (int(v) for v in rng.integers(0, size // 2, 2))
        box = (x0, y0, x0 + size // 3, y0 + size // 3)
        if i % 2:
            ImageDraw.Draw(image).ellipse(box, fill=(220, 40, 30))
        else:
            ImageDraw.Draw(image).rectangle(box, fill=(240, 210, 40))
        image.save(folder / f"picture-{i:02d}.png")
    return folder


def as_npz(folder: Path) -> Path:
    """The images of a folder as one npz (N x H x W x 3)."""
    path = folder.with_suffix(".npz")
    pictures = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))]
    np.savez(path, images=np.stack(pictures))
    return path


def digits(path: Path, count: int = 64, start: int = 0) -> Path:
    """``count`` embedded MNIST digits as an npz."""
    with np.load(default_images_path()) as data:
        np.savez(path, images=data["images"][start : start + count])
    return path


# -- quality metrics ----------------------------------------------------------------------------


def test_psnr_and_ssim_known_values() -> None:
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 32, 32, generator=gen) * 0.8 + 0.1
    assert torch.isinf(quality.psnr(image, image)).all()
    assert torch.allclose(quality.ssim(image, image), torch.ones(2, dtype=torch.float64))
    # A constant shift d: MSE = d^2, PSNR = 20 log10(1 / d) exactly.
    assert torch.allclose(quality.psnr(image + 0.1, image), torch.full((2,), 20.0).double())
    assert quality.psnr(image * 255 + 10, image * 255, data_range=255)[0] == pytest.approx(
        20 * np.log10(255 / 10)
    )
    # Constant images a and b: only the luminance term is left, (2ab + C1) / (a^2 + b^2 + C1).
    a, b, c1 = 0.3, 0.6, 0.01**2
    flat = quality.ssim(torch.full((1, 1, 16, 16), a), torch.full((1, 1, 16, 16), b))
    assert float(flat) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-9)
    # Noise: symmetric, below 1, and lower for more noise.
    noisy = (image + 0.05 * torch.randn(image.shape, generator=gen)).clamp(0, 1)
    noisier = (image + 0.2 * torch.randn(image.shape, generator=gen)).clamp(0, 1)
    assert torch.allclose(quality.ssim(noisy, image), quality.ssim(image, noisy))
    assert (quality.ssim(noisier, image) < quality.ssim(noisy, image)).all()
    assert (quality.ssim(noisy, image) < 1).all()


def test_ssim_matches_the_formula_on_one_window() -> None:
    """An 11 x 11 image has one window position: SSIM is the paper's formula with the
    Gaussian-weighted means, variances and covariance, computed here directly."""
    rng = np.random.default_rng(1)
    x, y = rng.random((11, 11)), rng.random((11, 11))
    w = quality.gaussian_window().numpy()
    assert w.sum() == pytest.approx(1.0) and w[5, 5] == w.max()
    mx, my = (w * x).sum(), (w * y).sum()
    vx, vy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum()
    cov = (w * (x - mx) * (y - my)).sum()
    c1, c2 = 0.01**2, 0.03**2
    expected = (2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    got = quality.ssim(torch.from_numpy(x)[None, None], torch.from_numpy(y)[None, None])
    assert float(got) == pytest.approx(expected, rel=1e-9)


# -- degradations and networks ------------------------------------------------------------------


def test_degradations() -> None:
    image = torch.rand(1, 1, 8, 8) * 2 - 1
    blocks = pixelate(image, 4)
    assert torch.allclose(blocks[0, 0, :4, :4], image[0, 0, :4, :4].mean().expand(4, 4))
    assert len(blocks.unique()) == 4  # 2 x 2 blocks
    masks = hole_masks(torch.tensor([[0, 0], [5, 2]]), 8, 3)
    assert masks.shape == (2, 1, 8, 8) and masks.sum((1, 2, 3)).tolist() == [9.0, 9.0]
    assert masks[1, 0, 5:8, 2:5].all() and masks[1, 0, 4].sum() == 0
    rgb = np.random.default_rng(0).integers(0, 256, (10, 10, 3), dtype=np.uint8)
    ours = luminance(torch.from_numpy(rgb).permute(2, 0, 1)[None].double())[0, 0]
    pil = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float64)
    assert np.abs(ours.numpy() - pil).max() <= 1.0  # PIL rounds to 8 bits


@pytest.mark.parametrize("task", ["colorize", "inpaint", "upscale"])
def test_generator_projection_and_any_size(task: str) -> None:
    torch.manual_seed(0)
    net = RestorationGenerator(task, 3, width=8, depth=2).eval()
    clean = torch.rand(2, 3, 19, 26) * 2 - 1  # not a multiple of 2^depth
    if task == "colorize":
        condition = luminance(clean)
    elif task == "inpaint":
        mask = torch.zeros(2, 1, 19, 26)
        mask[..., 5:12, 6:14] = 1
        condition = torch.cat([clean * (1 - mask) - mask, mask], 1)
    else:
        condition = clean
    with torch.no_grad():
        out = net(condition)
    assert out.shape == clean.shape and out.abs().max() <= 1
    if task == "colorize":  # the input's luminance is kept (up to clamping at the ends)
        assert torch.allclose(luminance(out), condition, atol=0.05)
    if task == "inpaint":  # the known pixels are kept exactly
        assert torch.equal(out * (1 - mask), clean * (1 - mask))


# -- train, save, load, restore, evaluate -----------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    return {
        "colour": as_npz(colour_pictures(root / "colour")),
        "colour folder": root / "colour",
        "held-out colour": colour_pictures(root / "held-out", count=6, seed=1),
        "digits": digits(root / "digits.npz", 64),
        "held-out digits": digits(root / "held-out.npz", 32, start=900),
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, data: dict[str, Path]) -> dict[str, Path]:
    """One tiny run per task: colorize and inpaint on colour pictures, upscale on digits."""
    out = {}
    for task, source in (("colorize", "colour"), ("inpaint", "colour"), ("upscale", "digits")):
        run = tmp_path_factory.mktemp(task) / "run"
        invoke("train", "gan", *tiny(4, **{"model.task": task}), "--data", data[source],
               "--out", run)  # fmt: skip
        out[task] = run
    return out


@pytest.mark.parametrize("task", ["colorize", "inpaint", "upscale"])
def test_train_writes_a_run_with_sample_grids(task: str, trained: dict[str, Path]) -> None:
    run = trained[task]
    runs.RunDirectory(run).verify()
    assert runs.RunDirectory(run).kind == "restorer"
    names = {p.name for p in run.iterdir()}
    assert {"gentool.json", "model.safetensors", "config.json", "samples.png"} <= names
    assert {p.name for p in (run / "samples").iterdir()} == {"step-2.png", "step-4.png"}
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == task and config["channels"] == ("gray" if task == "upscale" else "rgb")
    # Eight rows (the first 8 images) of degraded | restored | clean, 2-pixel padding.
    grid = Image.open(run / "samples.png")
    assert grid.size == (3 * (SIZE + 2) + 2, 8 * (SIZE + 2) + 2)
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [2, 4]
    assert all({"loss_d", "d_real", "l1", "loss_g"} <= r.keys() for r in records if "loss" in r)
    model = api.load(run)
    assert model.tasks() == ("score-images", "restore-image")
    info = invoke_json("info", run)["model"]
    assert info["task"] == task and info["width"] == 8 and info["parameters"] > 0


def test_colorize_restore_keeps_size_and_luminance(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    gray = Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 20), dtype=np.uint8))
    gray.save(tmp_path / "old.png")
    invoke("restore", trained["colorize"], tmp_path / "old.png", "-o", tmp_path / "new.png")
    out = Image.open(tmp_path / "new.png")
    assert out.size == (20, 12) and out.mode == "RGB"
    difference = np.abs(np.asarray(out.convert("L"), float) - np.asarray(gray, float))
    assert difference.mean() < 2  # the input's own luminance, at full resolution


def test_inpaint_fills_only_the_hole(trained: dict[str, Path], tmp_path: Path) -> None:
    model = api.load(trained["inpaint"])
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[4:10, 8:15, 3] = 0  # the transparent hole
    (out,) = model.restore([Image.fromarray(rgba, "RGBA")])
    assert out.size == (30, 20) and out.mode == "RGB"
    filled = np.asarray(out)
    known = rgba[..., 3] == 255
    assert np.array_equal(filled[known], rgba[..., :3][known])
    assert not np.array_equal(filled[~known], rgba[..., :3][~known])
    # No alpha: the centre square of side mask_size x the short side (0.4 x 20 = 8).
    gray = Image.fromarray(rng.integers(0, 256, (20, 30), dtype=np.uint8))
    (out,) = model.restore([gray])
    assert out.mode == "L" and out.size == (30, 20)
    changed = np.asarray(out) != np.asarray(gray)
    rows, cols = np.nonzero(changed)
    assert rows.min() >= 6 and rows.max() <= 13 and cols.min() >= 11 and cols.max() <= 18


def test_upscale_restores_a_small_image_to_factor_times_its_size(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    small = Image.fromarray(np.random.default_rng(0).integers(0, 256, (5, 7), dtype=np.uint8))
    small.save(tmp_path / "small.png")
    result = invoke_json(
        "restore", trained["upscale"], tmp_path / "small.png", "-o", tmp_path / "big.png"
    )
    assert result["files"] == [str(tmp_path / "big.png")]
    big = Image.open(tmp_path / "big.png")
    assert big.size == (28, 20) and big.mode == "L"
    model = api.load(trained["upscale"])
    (colour,) = model.restore([small.convert("RGB")])
    assert colour.size == (28, 20) and colour.mode == "RGB"
    with pytest.raises(DataError, match="1100x1000 image upscales to 4400x4000"):
        model.restore([Image.new("L", (1100, 1000))])


def test_restore_a_folder_and_refuse_to_overwrite(
    trained: dict[str, Path], data: dict[str, Path], tmp_path: Path
) -> None:
    source = tmp_path / "in"
    colour_pictures(source / "nested", count=2)
    Image.open(source / "nested" / "picture-00.png").convert("L").save(source / "top.jpg")
    out = tmp_path / "out"
    invoke("restore", trained["colorize"], source, "-o", out)
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert written == ["nested/picture-00.png", "nested/picture-01.png", "top.png"]
    assert Image.open(out / "top.png").size == Image.open(source / "top.jpg").size
    result = invoke("restore", trained["colorize"], source, "-o", out, ok=False)
    assert_error(result, "exists", "--force")
    before = (out / "top.png").stat().st_mtime_ns
    invoke("restore", trained["colorize"], source, "-o", out, "--force")
    assert (out / "top.png").stat().st_mtime_ns >= before


@pytest.mark.parametrize(
    ("task", "held_out"),
    [
        ("colorize", "held-out colour"),
        ("inpaint", "held-out colour"),
        ("upscale", "held-out digits"),
    ],
)
def test_evaluate_reports_psnr_and_ssim_before_and_after(
    task: str, held_out: str, trained: dict[str, Path], data: dict[str, Path]
) -> None:
    metrics = invoke_json("evaluate", trained[task], "--data", data[held_out])["metrics"]
    assert metrics["task"] == task
    assert metrics["images"] == (6 if "colour" in held_out else 32)
    for key in ("psnr_before", "psnr_after", "ssim_before", "ssim_after"):
        assert isinstance(metrics[key], float), key
    assert 0 < metrics["psnr_before"] < 60 and -1 < metrics["ssim_after"] <= 1
    assert metrics["psnr_gain"] == pytest.approx(metrics["psnr_after"] - metrics["psnr_before"])
    assert ("psnr_bicubic" in metrics) == (task == "upscale")
    # Deterministic: the same holes, the same numbers.
    again = invoke_json("evaluate", trained[task], "--data", data[held_out])["metrics"]
    assert again == metrics


@pytest.mark.parametrize(
    ("task", "train_on", "held_out", "gain"),
    [  # measured gains: 2.1, 3.9 and 7.8 dB
        ("upscale", "digits", "held-out digits", 1.0),
        ("colorize", "colour", "held-out colour", 2.0),
        ("inpaint", "colour", "held-out colour", 4.0),
    ],
)
def test_a_short_run_restores_held_out_images(
    task: str, train_on: str, held_out: str, gain: float, data: dict[str, Path], tmp_path: Path
) -> None:
    """60 steps (30 of them the generator's) already restore held-out images better than
    the degraded input, in PSNR and SSIM; x2 upscaling also beats bicubic interpolation."""
    run = tmp_path / "run"
    settings = tiny(60, **{"model.task": task, "model.upscale_factor": 2,
                           "train.batch_size": 16, "train.lr": 1e-3, "train.min_lr": 1e-3,
                           "train.sample_every": 0, "train.ema_decay": 0.0})  # fmt: skip
    invoke("train", "gan", *settings, "--data", data[train_on], "--out", run)
    metrics = invoke_json("evaluate", run, "--data", data[held_out])["metrics"]
    assert metrics["psnr_after"] > metrics["psnr_before"] + gain
    assert metrics["ssim_after"] > metrics["ssim_before"]
    if task == "upscale":  # bicubic: 18.4 dB, the restorer 19.5
        assert metrics["psnr_after"] > metrics["psnr_bicubic"] + 0.5
        assert metrics["ssim_after"] > metrics["ssim_bicubic"]


# -- resume, bad input --------------------------------------------------------------------------


def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: dict[str, Path]
) -> None:
    settings = [*tiny(6, **{"model.task": "inpaint", "model.loss": "wgan-gp",
                            "train.ema_decay": 0.9}), "--data", data["colour"]]  # fmt: skip
    invoke("train", "gan", *settings, "--out", tmp_path / "whole")

    interrupt_at(monkeypatch, RestorationTask, 3)
    result = invoke("train", "gan", *settings, "--out", tmp_path / "cut", ok=False)
    assert result.exit_code == 130 and "interrupted at step 4" in result.stderr
    monkeypatch.undo()
    invoke("train", "--resume", "--out", tmp_path / "cut")
    assert_same_weights(tmp_path / "whole", tmp_path / "cut", atol=1e-6)


def test_colorize_on_gray_data_is_a_clear_error(data: dict[str, Path], tmp_path: Path) -> None:
    result = invoke("train", "gan", *tiny(2, **{"model.task": "colorize"}),
                    "--data", data["digits"], "--out", tmp_path / "r", ok=False)  # fmt: skip
    assert_error(result, "digits.npz", "only gray images", "colour")
    assert not (tmp_path / "r").exists()
    gray_rgb = tmp_path / "gray-rgb.png"  # an RGB file whose pixels are all gray
    Image.new("RGB", (16, 16), (90, 90, 90)).save(gray_rgb)
    result = invoke("train", "gan", *tiny(2, **{"model.task": "colorize"}),
                    "--data", gray_rgb, "--out", tmp_path / "r", ok=False)  # fmt: skip
    assert_error(result, "only gray images")


def test_evaluate_colorize_on_gray_images_is_a_clear_error(
    trained: dict[str, Path], data: dict[str, Path]
) -> None:
    result = invoke("evaluate", trained["colorize"], "--data", data["digits"], ok=False)
    assert_error(result, "only gray images")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (["model.task=upscale", "model.upscale_factor=3"], "model.upscale_factor=3"),
        (["model.task=upscale", "model.upscale_factor=1"], "at least 2"),
        (["model.task=inpaint", "model.mask_size=1.5"], "model.mask_size must be in (0, 1)"),
        (["model.task=colorize", "model.channels=gray"], "drop model.channels=gray"),
        (["model.task=upscale", "model.image_size=4"], "model.image_size must be at least 8"),
        (["model.task=inpaint", "model.conditional=true"], "model.conditional applies to"),
    ],
)
def test_bad_settings_name_the_key(setting: list[str], message: str, tmp_path: Path) -> None:
    overrides = [arg for s in setting for arg in ("--set", s)]
    result = invoke("train", "gan", *tiny(2), *overrides, "--out", tmp_path / "r", ok=False)
    assert_error(result, message)


def test_train_on_a_folder_of_images(data: dict[str, Path], tmp_path: Path) -> None:
    invoke("train", "gan", *tiny(2, **{"model.task": "colorize"}), "--data",
           data["colour folder"], "--out", tmp_path / "r")  # fmt: skip
    assert api.load(tmp_path / "r").describe()["task"] == "colorize"
    recorded = runs.RunDirectory(tmp_path / "r").meta["data"]["train"][0]
    assert recorded["files"] == len(image_files(data["colour folder"])) > 0
    # a changed file in the folder changes its fingerprint: --resume would notice
    copy = tmp_path / "copy"
    shutil.copytree(data["colour folder"], copy)
    assert runs.fingerprint(copy)["sha256"] == recorded["sha256"]
    first = sorted(copy.rglob("*.png"))[0]
    first.write_bytes(first.read_bytes() + b"\0")
    assert runs.fingerprint(copy)["sha256"] != recorded["sha256"]
