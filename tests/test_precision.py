"""Mixed precision on any CPU: ``auto`` picks bf16 only where the CPU has native bf16
(AVX512-BF16 or AMX), an explicit bf16 trains everywhere (the LSTM kernel oneDNN lacks
without AVX-512 runs in float32), and the run records what it trained in.

ONEDNN_MAX_CPU_ISA=AVX2 makes oneDNN behave as on an AVX2-only CPU: a subprocess under it
checks the non-native case on any machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import assert_error, invoke, run_gentool

torch = pytest.importorskip("torch")

from gentool.errors import RecipeError  # noqa: E402
from gentool.model import Runtime  # noqa: E402
from gentool.neural import devices  # noqa: E402
from gentool.neural.config import TrainConfig  # noqa: E402
from gentool.neural.devices import NATIVE_BF16  # noqa: E402

TINY_RNN = [
    "--set", "model.hidden_size=16", "--set", "model.embedding_size=8",
    "--set", "model.num_layers=2", "--set", "model.dropout=0.0",
    "--set", "train.batch_size=2", "--set", "train.seq_len=8",
    "--set", "train.max_steps=2", "--set", "train.warmup_steps=1",
    "--set", "train.checkpoint_every=0", "--set", "train.val_fraction=0.5",
]  # fmt: skip

needs_native_bf16 = pytest.mark.skipif(
    devices.native_bf16_cpu() is None,
    reason=f"needs a CPU with native bf16 ({NATIVE_BF16}) that oneDNN may use",
)


def metrics(run: Path) -> dict:
    return json.loads((run / "gentool.json").read_text())["metrics"]


@pytest.fixture
def cpu_without_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "native_bf16_cpu", lambda: None)


@pytest.fixture
def cpu_with_amx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "native_bf16_cpu", lambda: "AMX")


def test_auto_is_bf16_only_on_a_cpu_with_native_bf16(
    cpu_with_amx: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert devices.resolve_precision("auto", "cpu") == (
        "bf16",
        "mixed precision auto: bf16 autocast (this CPU has AMX)",
    )
    assert devices.resolve_precision("bf16", "cpu") == ("bf16", "")
    monkeypatch.setattr(devices, "native_bf16_cpu", lambda: None)
    precision, note = devices.resolve_precision("auto", "cpu")
    assert precision == "no" and f"float32 (this CPU has no {NATIVE_BF16})" in note
    precision, note = devices.resolve_precision("bf16", "cpu")
    assert precision == "bf16" and note.startswith("warning: ") and "--mixed-precision auto" in note
    assert devices.resolve_precision("no", "cpu") == ("no", "")


def test_fp16_on_a_cpu_is_refused_naming_auto() -> None:
    with pytest.raises(RecipeError, match="needs a GPU; on a CPU use --mixed-precision auto"):
        devices.check_setup(TrainConfig(mixed_precision="fp16"), Runtime(device="cpu"))
    result = invoke("train", "rnn", *TINY_RNN, "--mixed-precision", "fp16", ok=False)
    assert_error(result, "fp16 needs a GPU", "--mixed-precision auto")
    result = invoke("train", "rnn", "--mixed-precision", "fp8", ok=False)
    assert result.exit_code == 2 and "'no', 'auto', 'bf16', 'fp16'" in result.stderr


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_recurrent_layers_leave_bf16_autocast_on_a_cpu_without_native_bf16(
    cell: str, cpu_without_bf16: None
) -> None:
    """oneDNN has no bf16 LSTM there ("could not create a primitive descriptor"), and bf16
    GRU/RNN crawl: they run in float32; the layers around them stay in bf16."""
    from gentool_rnn.modeling import RnnConfig, RnnForCausalLM

    model = RnnForCausalLM(RnnConfig(vocab_size=11, cell=cell, embedding_size=8, hidden_size=8))
    ids = torch.randint(0, 11, (2, 5))
    with torch.autocast("cpu", torch.bfloat16):
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
    assert out.state.h.dtype == torch.float32  # the recurrence ran in float32
    assert out.logits.dtype == torch.bfloat16  # the output layer in bf16
    assert model.rnn.weight_hh_l0.grad is not None


@needs_native_bf16
def test_auto_trains_in_bf16_on_a_cpu_with_native_bf16(tmp_path: Path) -> None:
    result = invoke("train", "rnn", *TINY_RNN, "--mixed-precision", "auto", "--out", tmp_path / "r")
    assert f"bf16 autocast (this CPU has {devices.native_bf16_cpu()})" in result.stderr
    assert metrics(tmp_path / "r")["mixed_precision"] == "bf16"
    from gentool_rnn.modeling import RnnConfig, RnnForCausalLM

    model = RnnForCausalLM(RnnConfig(vocab_size=11, embedding_size=8, hidden_size=8))
    with torch.autocast("cpu", torch.bfloat16):  # oneDNN's bf16 LSTM kernel, natively
        assert model(input_ids=torch.randint(0, 11, (2, 5))).state.h.dtype == torch.bfloat16


def test_without_native_bf16_auto_is_float32_and_explicit_bf16_trains(tmp_path: Path) -> None:
    """On a CPU that oneDNN treats as AVX2-only, in a real process: auto trains in float32
    and says why; bf16 trains the LSTM (which oneDNN cannot run in bf16 there) with one
    warning; the run records what it trained in."""
    avx2 = {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    auto = run_gentool("train", "rnn", *TINY_RNN, "--mixed-precision", "auto",
                       "--out", tmp_path / "auto", env=avx2)  # fmt: skip
    assert auto.returncode == 0, auto.stderr
    assert f"mixed precision auto: float32 (this CPU has no {NATIVE_BF16})" in auto.stderr
    assert metrics(tmp_path / "auto")["mixed_precision"] == "no"
    recipe = json.loads((tmp_path / "auto" / "gentool.json").read_text())["recipe"]
    assert recipe["train"]["mixed_precision"] == "auto"  # repeats as auto on another machine

    bf16 = run_gentool("train", "rnn", *TINY_RNN, "--mixed-precision", "bf16",
                       "--out", tmp_path / "bf16", env=avx2)  # fmt: skip
    assert bf16.returncode == 0, bf16.stderr
    assert "Traceback" not in bf16.stderr and "Error" not in bf16.stderr
    warnings = [line for line in bf16.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and NATIVE_BF16 in warnings[0], bf16.stderr
    assert metrics(tmp_path / "bf16")["mixed_precision"] == "bf16"


def test_shipped_recipes_do_not_hard_code_bf16() -> None:
    from gentool import recipes

    for recipe in recipes.shipped_recipes():
        train = recipes.read_recipe_file(recipe.path).get("train", {})
        assert train.get("mixed_precision", "no") in ("no", "auto"), recipe.name
