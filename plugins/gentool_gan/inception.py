"""The Inception-v3 feature space of the published FID, from a local weights file.

``gentool evaluate --feature-space inception --feature-weights FILE`` (or
``GENTOOL_INCEPTION_WEIGHTS``): FID/KID in the 2048 pool features of the TensorFlow
Inception-v3 that FID was defined with, so figures compare with published ones. The network
and its preprocessing (a bilinear resize to 299 px that matches TensorFlow 1.x bit for bit)
are torch-fidelity's (``FeatureExtractorInceptionV3``); torch-fidelity rather than
clean-fid because its Inception module needs torch alone, while clean-fid's feature
extractor imports torchvision (cleanfid.utils) and builds its network from a downloaded
TorchScript file.

What this works around, and why:

- ``import torch_fidelity`` runs its package ``__init__``, which imports the CLIP, VGG16
  and DINOv2 extractors, and they import torchvision; torchvision is not installed beside
  the CPU torch build. The Inception module itself needs only torch, so it is imported as
  a submodule of a bare package (``_fidelity_module``), torchvision or not.
- torch-fidelity reads a weights file with ``torch.load(weights_only=False)`` (unpickling:
  a file can run code) and downloads when given none. gentool reads the file itself, as
  safetensors or as a tensors-only pickle (``weights_only=True``), and hands the state
  to the constructor in place of the download. Nothing is fetched.

The space's name holds the first 12 hex digits of the file's sha256
(``inception_<sha256[:12]>``): FIDs in the same name were computed with the same weights.
The weights torch-fidelity publishes (``weights-inception-2015-12-05-6726825d.pth``) are the
ones of published FIDs; install the library with ``pip install --no-deps
torch-fidelity==0.4.0`` (its declared dependencies include torchvision, which would pull
another torch build).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gentool.errors import DataError, RecipeError

ENV = "GENTOOL_INCEPTION_WEIGHTS"
MODULE = "torch_fidelity.feature_extractor_inceptionv3"
INSTALL = "pip install --no-deps torch-fidelity==0.4.0"
BATCH = 32


def weights_path(given: Path | None) -> Path:
    """``--feature-weights`` or, when not given, ``$GENTOOL_INCEPTION_WEIGHTS``."""
    path = given if given is not None else (Path(os.environ[ENV]) if os.environ.get(ENV) else None)
    if path is None:
        raise RecipeError(
            "--feature-space inception needs the Inception-v3 weights file: give "
            f"--feature-weights FILE or set {ENV} (torch-fidelity's "
            "weights-inception-2015-12-05-6726825d.pth gives the published FID's space)"
        )
    if not path.is_file():
        raise DataError(f"Inception weights '{path}' is not a file; check the path")
    return path


def requested(feature_space: str, feature_weights: Path | None) -> InceptionSpace | None:
    """The Inception space when ``feature_space`` is "inception", None for the classifier
    default (``gentool evaluate --feature-space``)."""
    if feature_space == "classifier":
        return None
    if feature_space != "inception":
        raise RecipeError(f"unknown feature space '{feature_space}'; valid: classifier, inception")
    return InceptionSpace(weights_path(feature_weights))


def _fidelity_module() -> Any:
    """torch-fidelity's Inception-v3 module, without its package's torchvision imports."""
    if MODULE in sys.modules:
        return sys.modules[MODULE]
    spec = importlib.util.find_spec("torch_fidelity")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"--feature-space inception computes features with torch-fidelity, which is not "
            f"installed: {INSTALL}"
        )
    if "torch_fidelity" not in sys.modules:
        # the package's __init__ would import torchvision (missing, or built for another
        # torch); the Inception module does not need it. Every environment takes this path.
        package = types.ModuleType("torch_fidelity")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["torch_fidelity"] = package
    return importlib.import_module(MODULE)


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """The weights as tensors: safetensors, or a torch file of tensors only (no code runs)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # (a corrupt or foreign file: pickle, zip and safetensors errors)
        raise DataError(
            f"Inception weights '{path}' are not readable as a state dict of tensors ({err})"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"Inception weights '{path}' do not hold a state dict of tensors")
    return state


class InceptionSpace:
    """A feature space like ``metrics.FeatureSpace``: uint8 images -> 2048 pool features
    (no classes: ``accuracy`` is None, so coverage and class preservation are not scored)."""

    accuracy = None
    classes: list[str] = []

    def __init__(self, path: Path) -> None:
        module = _fidelity_module()
        state = read_state(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        self.name = f"inception_{digest[:12]}"
        download = module.load_state_dict_from_url
        module.load_state_dict_from_url = lambda *args, **kwargs: state  # (read above)
        try:
            self.net = module.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
        except RuntimeError as err:  # load_state_dict: missing, unexpected or misshapen keys
            first = str(err).splitlines()[:2]
            raise DataError(
                f"Inception weights '{path}' do not fit torch-fidelity's Inception-v3 "
                f"({' '.join(first)}); give its weights-inception-2015-12-05 file"
            ) from None
        finally:
            module.load_state_dict_from_url = download

    @torch.no_grad()
    def __call__(self, images: np.ndarray | torch.Tensor) -> tuple[np.ndarray, None]:
        """uint8 images (N, C, S, S), C of 1, 3 or 4 -> features (N, 2048) float64. Gray is
        repeated over RGB; RGBA is laid on white (as the grids show it)."""
        tensor = torch.as_tensor(images)
        out = []
        for start in range(0, len(tensor), BATCH):
            out.append(self.net(rgb(tensor[start : start + BATCH]))[0].double())
        return torch.cat(out).numpy(), None


def rgb(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 1|3|4, H, W) -> uint8 (N, 3, H, W)."""
    if images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1).contiguous()
    if images.shape[1] == 4:
        alpha = images[:, 3:].float() / 255
        laid = images[:, :3].float() * alpha + 255 * (1 - alpha)
        return laid.round().clamp(0, 255).to(torch.uint8)
    return images
