"""The gan family's image translators (model.task=paired: pix2pix; cyclegan), through the
CLI on tiny images written here: train, transform, evaluate, resume, the conformance kit
and bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_error, assert_same_weights, interrupt_at, invoke, invoke_json

torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from gentool import runs  # noqa: E402
from gentool.testing import check_model  # noqa: E402
from gentool_gan import translation  # noqa: E402
from gentool_gan.translation import (  # noqa: E402
    CycleTask,
    PairedTask,
    residual_base,
    scheduled_lr,
)
from gentool_gan.translator import CycleTranslator, PairedTranslator  # noqa: E402

SIZE = 16
COLOURS = [(220, 40, 30), (40, 90, 220), (240, 200, 40)]


def tiny(task: str, steps: int = 4, **extra: object) -> list[str]:
    settings = {
        "model.task": task,
        "model.image_size": SIZE,
        "model.width": 4,
        "train.batch_size": 4,
        "train.max_steps": steps,
        "train.log_every": 2,
        "train.sample_every": 0,
        "train.checkpoint_every": 0,
        "train.val_fraction": 0.0,
        **extra,
    }
    return [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]


def silhouettes(
    root: Path, count: int = 10, seed: int = 0, classes: bool = False
) -> tuple[Path, Path]:
    """A/: black squares on white (gray PNG); B/: the same squares coloured (RGBA PNG,
    transparent ground), named alike; with ``classes``, one sub-folder per colour."""
    rng = np.random.default_rng(seed)
    a, b = root / "A", root / "B"
    for i in range(count):
        x, y = (int(v) for v in rng.integers(0, SIZE // 2, 2))
        side = SIZE // 2
        gray = np.full((SIZE, SIZE), 255, np.uint8)
        gray[y : y + side, x : x + side] = 0
        colour = np.zeros((SIZE, SIZE, 4), np.uint8)
        colour[y : y + side, x : x + side] = (*COLOURS[i % 3], 255)
        sub = f"c{i % 3}/" if classes else ""
        (a / sub).mkdir(parents=True, exist_ok=True)
        (b / sub).mkdir(parents=True, exist_ok=True)
        Image.fromarray(gray, "L").save(a / f"{sub}{i:02d}.png")
        Image.fromarray(colour, "RGBA").save(b / f"{sub}{i:02d}.png")
    return a, b


@pytest.fixture(scope="module")
def domains(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    a, b = silhouettes(tmp_path_factory.mktemp("pairs"))
    Image.new("L", (SIZE, SIZE), 255).save(a / "only-in-a.png")  # no partner: counted
    Image.open(a / "03.png").save(a / "03.jpg")
    (a / "03.png").unlink()  # 03.jpg pairs with B's 03.png: the extension does not count
    return a, b


@pytest.fixture(scope="module")
def paired_run(domains: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    a, b = domains
    out = tmp_path_factory.mktemp("runs") / "paired"
    invoke("train", "gan", *tiny("paired"), "--data", a, "--target", b, "--out", out)
    return out


def test_paired_trains_reports_unmatched_and_transforms(
    domains: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = domains
    result = invoke("train", "gan", *tiny("paired"), "--data", a, "--target", b,
                    "--out", tmp_path / "run", "--json")  # fmt: skip
    assert "1 image(s) of A and 0 of B have no partner" in result.stderr
    assert "gray -> rgba" in result.stderr
    record = invoke_json("info", tmp_path / "run")
    assert record["kind"] == "paired" and "translate-image" in record["tasks"]
    assert record["model"]["channels_a"] == "gray" and record["model"]["channels_b"] == "rgba"
    assert record["metrics"]["unmatched_a"] == 1 and record["metrics"]["images_a"] == 10
    out = tmp_path / "out.png"
    invoke("transform", tmp_path / "run", a / "00.png", "-o", out)
    with Image.open(out) as image:
        assert image.mode == "RGBA" and image.size == (SIZE, SIZE)
    # a folder in, a folder out, --grid: input | output side by side
    found = invoke_json("transform", tmp_path / "run", a, "-o", tmp_path / "grid", "--grid")
    assert len(found["files"]) == 11
    with Image.open(tmp_path / "grid" / "00.png") as image:
        assert image.size[0] >= 2 * SIZE


def test_paired_evaluate_scores_against_true_b_and_the_baseline(
    paired_run: Path, domains: tuple[Path, Path]
) -> None:
    a, b = domains
    metrics = invoke_json("evaluate", paired_run, "--data", a, "--target", b)["metrics"]
    assert metrics["pairs"] == 10 and metrics["unmatched_a"] == 1
    for key in ("psnr", "ssim", "l1", "psnr_baseline", "ssim_baseline", "l1_baseline",
                "fid_a2b_randcnn_16px"):  # fmt: skip
        assert np.isfinite(metrics[key]), key
    assert 0 <= metrics["l1"] <= 1
    # the baseline knows the colour of the ground exactly (transparent black) here
    assert metrics["psnr_baseline"] > 10


def test_paired_goes_one_way(paired_run: Path, domains: tuple[Path, Path], tmp_path: Path) -> None:
    result = invoke("transform", paired_run, domains[1] / "00.png", "-o", tmp_path / "x.png",
                    "--reverse", ok=False)  # fmt: skip
    assert_error(result, "one way", "cyclegan")
    assert not (tmp_path / "x.png").exists()


def test_paired_from_an_npz_of_a_and_b(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (8, SIZE, SIZE), dtype=np.uint8)
    b = np.stack([a, 255 - a, a], -1)  # gray -> RGB
    np.savez(tmp_path / "pairs.npz", a=a, b=b)
    invoke(
        "train", "gan", *tiny("paired"), "--data", tmp_path / "pairs.npz", "--out", tmp_path / "r"
    )
    metrics = invoke_json("evaluate", tmp_path / "r", "--data", tmp_path / "pairs.npz")["metrics"]
    assert metrics["pairs"] == 8


def test_cyclegan_trains_both_ways_and_scores_class_preservation(tmp_path: Path) -> None:
    a, b = silhouettes(tmp_path / "data", count=12, classes=True)
    (b / "c0" / "00.png").unlink()  # unpaired: the domains need not match
    settings = tiny("cyclegan", 6, **{"train.pool_size": 3, "model.loss": "lsgan"})
    invoke("train", "gan", *settings, "--data", a, "--target", b, "--out", tmp_path / "run")
    forward, back = tmp_path / "b.png", tmp_path / "a.png"
    invoke("transform", tmp_path / "run", a / "c0" / "00.png", "-o", forward)
    invoke("transform", tmp_path / "run", b / "c1" / "01.png", "-o", back, "--reverse")
    with Image.open(forward) as image_b, Image.open(back) as image_a:
        assert image_b.mode == "RGBA" and image_a.mode == "L"
    metrics = invoke_json("evaluate", tmp_path / "run", "--data", a, "--target", b)["metrics"]
    for key in ("l1_cycle_a", "psnr_cycle_b", "class_preservation_a2b", "class_preservation_b2a"):
        assert np.isfinite(metrics[key]), key
    assert any(k.startswith("fid_a2b_classifier_") for k in metrics)
    assert 0 <= metrics["class_preservation_a2b"] <= 1


def test_cyclegan_resume_equals_an_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = silhouettes(tmp_path / "data", count=8)
    # a pool of 2 fills in the first D step, then swaps: its state must survive the resume
    settings = [*tiny("cyclegan", 8, **{"train.pool_size": 2, "train.lr_schedule": "linear"}),
                "--data", a, "--target", b]  # fmt: skip
    invoke("train", "gan", *settings, "--out", tmp_path / "whole")
    interrupt_at(monkeypatch, CycleTask, 4)
    result = invoke("train", "gan", *settings, "--out", tmp_path / "cut", ok=False)
    assert result.exit_code == 130
    monkeypatch.undo()
    invoke("train", "--resume", "--out", tmp_path / "cut")
    assert_same_weights(tmp_path / "whole", tmp_path / "cut", atol=1e-6)


def test_paired_flip_mirrors_pairs_and_resumes_as_uninterrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.torch import load_file

    a, b = silhouettes(tmp_path / "data", count=8)
    settings = [*tiny("paired", 6), "--data", a, "--target", b]
    invoke("train", "gan", *settings, "--out", tmp_path / "plain")
    flipped = [*settings, "--set", "train.flip=true"]
    invoke("train", "gan", *flipped, "--out", tmp_path / "whole")
    plain, whole = (load_file(str(tmp_path / r / "model.safetensors")) for r in ("plain", "whole"))
    assert any(not torch.equal(plain[k], whole[k]) for k in plain)  # the flips took effect
    interrupt_at(monkeypatch, PairedTask, 3)
    result = invoke("train", "gan", *flipped, "--out", tmp_path / "cut", ok=False)
    assert result.exit_code == 130
    monkeypatch.undo()
    invoke("train", "--resume", "--out", tmp_path / "cut")
    assert_same_weights(tmp_path / "whole", tmp_path / "cut", atol=1e-6)


def test_paired_squared_error_term_is_logged_and_checked(tmp_path: Path) -> None:
    a, b = silhouettes(tmp_path / "data", count=6)
    settings = [*tiny("paired", 2, **{"train.log_every": 1}), "--data", a, "--target", b]
    invoke("train", "gan", *settings, "--set", "train.l2_weight=10", "--out", tmp_path / "r")
    logged = (tmp_path / "r" / "metrics.jsonl").read_text()
    assert '"l2": ' in logged and '"l1": ' in logged
    result = invoke("train", "gan", *settings, "--set", "train.l2_weight=-1",
                    "--out", tmp_path / "bad", ok=False)  # fmt: skip
    assert_error(result, "train.l2_weight", "negative")
    assert not (tmp_path / "bad").exists()


def test_disc_layers_shrinks_the_patch_and_is_checked(tmp_path: Path) -> None:
    from gentool_gan.configs import TranslatorConfig
    from gentool_gan.translation import CycleDiscriminators

    default = CycleDiscriminators(1, 1, TranslatorConfig(image_size=28, width=4)).a
    small = CycleDiscriminators(1, 1, TranslatorConfig(image_size=28, width=4, disc_layers=1)).a
    image = torch.zeros(1, 1, 28, 28)
    assert default(image, image[:, :0]).shape[-1] == 7  # two halvings: a patch per 4 pixels
    assert small(image, image[:, :0]).shape[-1] == 14  # one: a patch per 2 pixels
    a, b = silhouettes(tmp_path / "data", count=6)
    settings = [*tiny("cyclegan", 2), "--data", a, "--target", b]
    invoke("train", "gan", *settings, "--set", "model.disc_layers=1", "--out", tmp_path / "r")
    result = invoke("train", "gan", *settings, "--set", "model.disc_layers=-1",
                    "--out", tmp_path / "bad", ok=False)  # fmt: skip
    assert_error(result, "model.disc_layers", "negative")
    assert not (tmp_path / "bad").exists()


def test_linear_schedule_holds_then_decays() -> None:
    from gentool_gan.configs import TranslatorTrainConfig

    config = TranslatorTrainConfig(max_steps=10, lr=1.0, min_lr=0.0, lr_schedule="linear")
    rates = [scheduled_lr(s, config) for s in range(10)]
    assert rates[:5] == [1.0] * 5 and rates[-1] == 0.0
    assert all(x > y for x, y in zip(rates[4:], rates[5:], strict=False))
    assert residual_base(1, 3) == 1 and residual_base(3, 3) == 3 and residual_base(3, 4) == 0


# -- bad input --------------------------------------------------------------------------------


def test_no_matching_names_is_one_error(tmp_path: Path) -> None:
    a, b = silhouettes(tmp_path / "data", count=4)
    for path in b.glob("*.png"):
        path.rename(path.with_name("x" + path.name))
    result = invoke("train", "gan", *tiny("paired"), "--data", a, "--target", b,
                    "--out", tmp_path / "r", ok=False)  # fmt: skip
    assert_error(result, "no image of --data", "partner", "relative path")
    assert not (tmp_path / "r").exists()


def test_empty_domain_and_missing_target_are_one_error(tmp_path: Path) -> None:
    a, _ = silhouettes(tmp_path / "data", count=4)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("train", "gan", *tiny("cyclegan"), "--data", a, "--target", empty,
                    "--out", tmp_path / "r", ok=False)  # fmt: skip
    assert_error(result, "--target", "holds no image files")
    result = invoke("train", "gan", *tiny("paired"), "--data", a, "--out", tmp_path / "r", ok=False)
    assert_error(result, "two domains", "--target")
    # --target alone means image domains: a kind that is not a translator refuses it
    result = invoke("train", "gan", "--data", a, "--target", a, "--out", tmp_path / "r", ok=False)
    assert_error(result, "--target without --source", "model.task=paired")
    assert not (tmp_path / "r").exists()


def test_corrupt_image_is_skipped_and_counted(tmp_path: Path) -> None:
    a, b = silhouettes(tmp_path / "data", count=6)
    (a / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    result = invoke("train", "gan", *tiny("paired", 2), "--data", a, "--target", b,
                    "--out", tmp_path / "r")  # fmt: skip
    assert "skipped 1 unreadable image file" in result.stderr
    assert invoke_json("info", tmp_path / "r")["metrics"]["skipped_files"] == 1


def test_image_far_larger_than_the_model_is_refused(
    paired_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(translation, "MAX_PIXELS", 1000)
    big = tmp_path / "big.png"
    Image.new("L", (40, 40), 255).save(big)
    result = invoke("transform", paired_run, big, "-o", tmp_path / "o.png", ok=False)
    assert_error(result, "40x40", "scale the image down")
    assert not (tmp_path / "o.png").exists()


# -- the conformance kit ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [PairedTranslator, CycleTranslator])
def test_translators_conform(kind: type, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (12, SIZE, SIZE), dtype=np.uint8)
    np.savez(tmp_path / "pairs.npz", a=a, b=np.stack([a, 255 - a, a], -1))
    task = kind.kind_name()
    overrides = [o for o in tiny(task, 2) if o != "--set"]
    report = check_model(
        kind, data=[tmp_path / "pairs.npz"], overrides=overrides, tmp_path=tmp_path
    )
    assert "transform" in report.passed and "no-pickle" in report.passed


# -- class labels: idx, npz, folders ------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray) -> None:
    """An MNIST-style idx file of uint8 data (magic 0x0803 for images, 0x0801 for labels)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def squares(labels: list[int], seed: int) -> np.ndarray:
    """Gray images whose class is where a white square sits (left, middle, right)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((len(labels), SIZE, SIZE), np.uint8)
    for i, label in enumerate(labels):
        y = int(rng.integers(0, SIZE - 5))
        out[i, y : y + 5, label * 5 : label * 5 + 5] = 255
    return out


def test_class_preservation_from_idx_labels_beside_a_folder_missing_a_class(
    tmp_path: Path,
) -> None:
    labels = [0, 1, 2] * 4
    a = tmp_path / "a-images-idx3-ubyte"
    write_idx(a, squares(labels, 0))
    write_idx(tmp_path / "a-labels-idx1-ubyte", np.array(labels))
    b = tmp_path / "B"
    for i, image in enumerate(squares([0, 1] * 5, 1)):  # B has no class 2
        (b / str(i % 2)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, "L").save(b / str(i % 2) / f"{i}.png")
    invoke(
        "train", "gan", *tiny("cyclegan", 2), "--data", a, "--target", b, "--out", tmp_path / "r"
    )
    metrics = invoke_json("evaluate", tmp_path / "r", "--data", a, "--target", b)["metrics"]
    # one class list for both (0, 1, 2), matched by name: both ways are scored
    for key in ("class_preservation_a2b", "class_preservation_b2a"):
        assert 0 <= metrics[key] <= 1, key


def test_class_preservation_from_npz_labels_of_unequal_ranges(tmp_path: Path) -> None:
    # labels_b stops at 1: classes from the highest label alone would be 0-1 against 0-2
    np.savez(tmp_path / "ab.npz", a=squares([0, 1, 2] * 4, 0), labels_a=[0, 1, 2] * 4,
             b=squares([0, 1] * 5, 1), labels_b=[0, 1] * 5)  # fmt: skip
    data = ("--data", tmp_path / "ab.npz")
    invoke("train", "gan", *tiny("cyclegan", 2), *data, "--out", tmp_path / "r")
    metrics = invoke_json("evaluate", tmp_path / "r", *data)["metrics"]
    assert "class_preservation_a2b" in metrics and "class_preservation_b2a" in metrics


# -- several processes (torchrun, gloo) ---------------------------------------------------------


def torchrun(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).with_name("torchrun")
    return subprocess.run(
        [command, "--nproc-per-node", "2", "-m", "gentool", *map(str, args)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip


def test_paired_two_processes_reach_the_weights_of_one(tmp_path: Path) -> None:
    a, b = silhouettes(tmp_path / "data", count=8)
    common = ["train", "gan", *tiny("paired", 4), "--data", a, "--target", b]
    invoke(*common, "--out", tmp_path / "one")
    two = torchrun(*common, "--out", tmp_path / "two")
    assert two.returncode == 0, two.stderr
    # the same translations; not the same weights: a convolution's bias in front of a
    # per-channel GroupNorm has a zero gradient up to rounding, which Adam scales up to lr
    for run in ("one", "two"):
        invoke("transform", tmp_path / run, a, "-o", tmp_path / f"out-{run}")
    for file in sorted((tmp_path / "out-one").iterdir()):
        with Image.open(file) as one, Image.open(tmp_path / "out-two" / file.name) as two_:
            diff = np.abs(np.asarray(one, np.int16) - np.asarray(two_, np.int16))
            assert diff.max() <= 1, file.name


def test_cyclegan_two_processes_resume_as_they_would_have_gone_on(tmp_path: Path) -> None:
    a, b = silhouettes(tmp_path / "data", count=8)
    # a constant rate (decay from the last step on), so that max_steps changes nothing else
    settings = tiny("cyclegan", 4, **{"train.pool_size": 2, "train.lr_schedule": "linear",
                                      "train.decay_from": 1.0, "train.min_lr": 2e-4,
                                      "train.checkpoint_every": 2})  # fmt: skip
    common = ["train", "gan", *settings, "--data", a, "--target", b]
    whole = torchrun(*common, "--out", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    cut = torchrun(*common, "--set", "train.max_steps=2", "--out", tmp_path / "cut")
    assert cut.returncode == 0, cut.stderr
    checkpoint = runs.checkpoints(tmp_path / "cut")[-1][1]
    assert (checkpoint / "random_states_1.pkl").is_file()
    resumed = torchrun("train", "--resume", "--out", tmp_path / "cut", "--override",
                       "--set", "train.max_steps=4")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(tmp_path / "whole", tmp_path / "cut", atol=1e-5)
