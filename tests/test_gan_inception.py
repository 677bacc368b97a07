"""``gentool evaluate --feature-space inception``: FID/KID in torch-fidelity's Inception-v3
from a local weights file, here one of the right shapes with random weights made at test
time (the real file is never downloaded); the file's sha256 names the space."""

from __future__ import annotations

import hashlib
import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_error, invoke, invoke_json

torch = pytest.importorskip("torch")
if importlib.util.find_spec("torch_fidelity") is None:
    pytest.skip(
        "torch-fidelity is not installed (pip install --no-deps torch-fidelity==0.4.0)",
        allow_module_level=True,
    )

from test_gan_translate import silhouettes, tiny  # noqa: E402

from gentool_gan import inception  # noqa: E402


def random_state() -> dict[str, torch.Tensor]:
    """torch-fidelity's Inception-v3 as constructed, with torch's random initialisation in
    place of its weights (it would download them)."""
    module = inception._fidelity_module()
    network = module.FeatureExtractorInceptionV3
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "load_state_dict_from_url", lambda *args, **kwargs: {})
        patch.setattr(network, "load_state_dict", lambda self, *args, **kwargs: None)
        torch.manual_seed(0)
        made = network("test", ["2048"])
    return {k: v.contiguous() for k, v in made.state_dict().items()}


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("weights") / "inception.safetensors"
    save_file(random_state(), str(path))
    return path


@pytest.fixture(scope="module")
def paired(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("paired")
    a, b = silhouettes(root, count=6)
    invoke("train", "gan", *tiny("paired", 2), "--data", a, "--target", b, "--out", root / "r")
    return root / "r", a, b


def sha12(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def test_paired_fid_in_the_inception_space_named_by_the_weights(
    paired: tuple[Path, Path, Path], weights: Path
) -> None:
    run, a, b = paired
    args = ("evaluate", run, "--data", a, "--target", b, "--feature-space", "inception")
    metrics = invoke_json(*args, "--feature-weights", weights)["metrics"]
    name = f"inception_{sha12(weights)}"
    assert metrics["feature_space_b"] == name
    assert np.isfinite(metrics[f"fid_a2b_{name}"]) and metrics[f"fid_a2b_{name}"] >= 0
    assert np.isfinite(metrics[f"kid_a2b_{name}"])
    assert np.isfinite(metrics["psnr"])  # the pixel scores are the same as ever
    # the default stays the offline space
    default = invoke_json("evaluate", run, "--data", a, "--target", b)["metrics"]
    assert default["feature_space_b"] == "randcnn_16px"


def test_cyclegan_weights_from_the_environment_as_a_torch_file(
    tmp_path: Path, weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = silhouettes(tmp_path / "data", count=6, classes=True)
    settings = tiny("cyclegan", 2)
    invoke("train", "gan", *settings, "--data", a, "--target", b, "--out", tmp_path / "r")
    from safetensors.torch import load_file

    pth = tmp_path / "weights.pth"
    torch.save(load_file(str(weights)), pth)  # a tensors-only pickle: read with weights_only
    monkeypatch.setenv("GENTOOL_INCEPTION_WEIGHTS", str(pth))
    args = ("evaluate", tmp_path / "r", "--data", a, "--target", b)
    metrics = invoke_json(*args, "--feature-space", "inception")["metrics"]
    name = f"inception_{sha12(pth)}"
    assert metrics["feature_space_a"] == metrics["feature_space_b"] == name
    assert np.isfinite(metrics[f"fid_b2a_{name}"])
    # no classifier in this space: class preservation is not claimed
    assert "class_preservation_a2b" not in metrics
    # the variable alone does not change the default space
    plain = invoke_json(*args)["metrics"]
    assert plain["feature_space_b"].startswith("classifier_")


class Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("unpickled: code ran",))


def test_bad_weights_are_one_error(
    paired: tuple[Path, Path, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from safetensors.torch import save_file

    run, a, b = paired
    args = ("evaluate", run, "--data", a, "--target", b, "--feature-space", "inception")
    assert_error(invoke(*args, ok=False), "--feature-weights", "GENTOOL_INCEPTION_WEIGHTS")
    assert_error(
        invoke(*args, "--feature-weights", tmp_path / "none.pth", ok=False), "is not a file"
    )
    wrong = tmp_path / "wrong.safetensors"
    save_file({"fc.weight": torch.zeros(3, 3)}, str(wrong))
    assert_error(invoke(*args, "--feature-weights", wrong, ok=False), "do not fit", "Inception")
    code = tmp_path / "code.pth"
    code.write_bytes(pickle.dumps({"x": Boom()}, protocol=2))
    assert_error(invoke(*args, "--feature-weights", code, ok=False), "not readable")
    assert "code ran" not in capfd.readouterr().out
    result = invoke("evaluate", run, "--data", a, "--target", b, "--feature-weights", code,
                    ok=False)  # fmt: skip
    assert result.exit_code == 2 and "--feature-space inception" in result.stderr
