"""Build a run's model only once its config is known to agree with its weights file.

A run may be edited, synced or downloaded, and its config.json may lie: claim a
vocabulary of 10^12 or a million layers while model.safetensors holds a tiny model.
Building that model would allocate without bound before anything compared it with the
file. So a family first builds its model on torch's ``meta`` device (shapes, no storage)
under a budget taken from the file's header, and compares every name, shape and dtype
with the header (``check_weights``); only a model that fits is built for real and loaded.
Nothing but the header is read, so a lying run is refused in well under a second.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gentool import runs
from gentool.errors import GentoolError

if TYPE_CHECKING:
    import torch

# safetensors' names of torch's dtypes.
_DTYPES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
}


class _OverBudget(Exception):
    pass


@contextlib.contextmanager
def _budget(max_tensors: int, max_elements: int) -> Iterator[None]:
    """Stop the build (``_OverBudget``) once the modules being built register more tensors
    or elements than the budget: a config claiming a million layers is caught after a few
    hundred, not after building them all (on ``meta`` that costs time and Python memory)."""
    from torch.nn.modules import module

    count, elements = 0, 0

    def hook(owner: Any, name: str, tensor: Any) -> None:
        nonlocal count, elements
        if tensor is None:
            return
        count += 1
        elements += tensor.numel()
        if count > max_tensors or elements > max_elements:
            raise _OverBudget

    handles = [
        module.register_module_parameter_registration_hook(hook),
        module.register_module_buffer_registration_hook(hook),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def check_weights(
    build: Callable[[], torch.nn.Module], path: Path, config: str = "config.json"
) -> None:
    """Raise RunError unless the model ``build()`` makes from the run's ``config`` has
    exactly the tensors of the safetensors file ``path`` (names, shapes, dtypes).

    ``build`` runs on the ``meta`` device: nothing is allocated, and it is stopped once it
    registers far more than the file holds. A tensor tied to another (the same parameter
    under two names) may be saved once; a Hugging Face model's ``_keys_to_ignore_on_save``
    (recomputed on load, like sinusoidal positions) may be absent.
    """
    import torch

    header = runs.tensor_header(path)
    stored = sum(math.prod(shape) for _, shape in header.values())
    run = path.parent
    try:
        # A tied matrix is registered under each of its names, and again when tied: a
        # Marian translator whose shared vocabulary dominates (8,000 x 256, the Multi30k
        # recipe's) registers 3.1x the numbers its file holds; 6x still stops a config that
        # claims a million layers after a few of them.
        with torch.device("meta"), _budget(4 * len(header) + 64, 6 * stored + (1 << 22)):
            model = build()
    except _OverBudget:
        raise runs.damaged(
            run,
            f"{config} describes a model far larger than '{path.name}' ({len(header)} tensors, "
            f"{stored:,} numbers)",
        ) from None
    except Exception as err:  # noqa: BLE001
        # Whatever a constructor raises on settings it cannot build (a family's own
        # GentoolError worded for a recipe, an assertion, a division by zero heads ...):
        # nothing was allocated, and the config is what is wrong.
        raise runs.damaged(
            run, f"{config} does not describe a model ({_first_line(err)})"
        ) from None
    state = model.state_dict(keep_vars=True)
    expected = {
        name: (_DTYPES.get(str(t.dtype).removeprefix("torch."), str(t.dtype)), tuple(t.shape))
        for name, t in state.items()
    }
    names_of: dict[int, list[str]] = {}  # a tied tensor appears under each of its names
    for name, tensor in state.items():
        names_of.setdefault(id(tensor), []).append(name)
    optional = {
        name
        for names in names_of.values()
        if len(names) > 1 and any(n in header for n in names)
        for name in names
    }
    recomputed = getattr(model, "_keys_to_ignore_on_save", None) or ()
    optional |= {name for name in state if any(re.search(p, name) for p in recomputed)}
    runs.check_tensors(path, expected, optional, config, header=header)


def load_pretrained(
    auto_class: Any,
    directory: Path,
    model_type: str | None,
    tokens: Sequence[str],
    tokenizer_loader: Callable[[], Any] | None = None,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """``auto_class.from_pretrained(directory)`` (an ``AutoModelFor*``) from safetensors only,
    once config.json is known to describe a ``model_type`` model (the family's) that agrees
    with model.safetensors (``check_weights``), and the run's tokenizer, checked against
    the model (``tokens``: the special tokens the family uses, e.g. ``bos_token``), or the
    one ``tokenizer_loader()`` reads (a music tokenizer: only its size is checked). Returns
    (model, tokenizer). Nothing but safetensors and JSON is read: ``use_safetensors=True``
    (transformers never falls back to a ``pytorch_model.bin``), and the tokenizer is the
    fast one of tokenizer.json, whatever class tokenizer_config.json names.

    ``model_type`` None takes any architecture (a Hugging Face model gentool did not train:
    ``gentool.hub`` checked it runs no code of its own); its weights may be sharded
    (checked then by transformers alone), and a tokenizer without tokenizer.json (a
    sentencepiece model) loads with ``AutoTokenizer``, never with remote code. Its weights
    are not compared with its config: transformers' own classes save tensors they ignore
    on load (Marian's ``final_logits_bias``), and shards are common."""
    import torch
    from transformers import AutoConfig

    raw = _read(
        directory,
        "config.json",
        lambda: json.loads((directory / "config.json").read_text(encoding="utf-8")),
    )
    if not isinstance(raw, dict):
        raise runs.damaged(directory, "config.json does not hold a JSON object")
    config = _read(
        directory,
        "config.json",
        lambda: AutoConfig.from_pretrained(str(directory), trust_remote_code=False),
    )
    if model_type is not None and config.model_type != model_type:
        raise runs.damaged(
            directory,
            f"config.json describes a '{config.model_type}' model, not '{model_type}' "
            "(a family mismatch)",
        )
    dtype = getattr(config, "dtype", None)
    options = {"dtype": dtype} if isinstance(dtype, torch.dtype) else {}
    if model_type is not None:  # (a foreign model may hold tensors its class ignores)
        check_weights(
            lambda: auto_class.from_config(config, **options), directory / runs.TENSOR_FILE
        )
    model = _read(
        directory,
        "the model (config.json, generation_config.json, model.safetensors)",
        lambda: auto_class.from_pretrained(
            str(directory), config=config, use_safetensors=True, trust_remote_code=False, **kwargs
        ),
    )
    tokenizer = _read(
        directory,
        "the tokenizer (tokenizer.json, tokenizer_config.json)"
        if tokenizer_loader is None
        else "the tokenizer",
        tokenizer_loader or (lambda: pretrained_tokenizer(directory, foreign=model_type is None)),
    )
    _check_settings(directory, model, tokenizer, tokens)
    return model.eval(), tokenizer


def pretrained_tokenizer(directory: Path, foreign: bool = True) -> Any:
    """The tokenizer of a model folder: tokenizer.json's fast one; a ``foreign`` model's
    without tokenizer.json (sentencepiece) with ``AutoTokenizer``, no remote code."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if foreign and not (directory / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False)
    return PreTrainedTokenizerFast.from_pretrained(str(directory))


def _check_settings(directory: Path, model: Any, tokenizer: Any, tokens: Sequence[str]) -> None:
    """The tokenizer works and fits the model (``tokens`` are tokens of its vocabulary), the
    token ids config.json and generation_config.json name are ids of the model's, and
    their other settings have their defaults' types (counts positive): a damaged value
    would only show up later, as an IndexError or TypeError deep inside generation."""
    from transformers import GenerationConfig

    vocab = model.get_input_embeddings().num_embeddings
    problem = None
    try:
        if hasattr(tokenizer, "backend_tokenizer"):  # (a Hugging Face one, not music's)
            ids = tokenizer("Aa 1.")["input_ids"]  # encodes and decodes, as every task will
            tokenizer.decode(ids)
        if len(tokenizer) > vocab:
            problem = f"the tokenizer has {len(tokenizer)} tokens, the model {vocab}"
        for name in tokens:
            token = getattr(tokenizer, name, None)
            if (
                not isinstance(token, str)
                or not 0 <= tokenizer.convert_tokens_to_ids(token) < vocab
            ):
                problem = f"the tokenizer's {name} is {token!r}, not a token of its vocabulary"
    except Exception as err:  # noqa: BLE001 (the tokenizers library raises plain Exception)
        problem = f"the tokenizer does not work ({_first_line(err)})"
    # A setting's type is its default's: the generation default, else the model config's.
    defaults = type(model.config)().to_dict()
    generation = GenerationConfig().to_dict()
    defaults_of = {
        "config.json": defaults,
        "generation_config.json": defaults | {k: v for k, v in generation.items() if v is not None},
    }
    settings = [
        ("config.json", model.config.to_dict()),
        ("generation_config.json", model.generation_config.to_dict()),
    ]
    for file, values in settings:
        for key, value in values.items():
            default = defaults_of[file].get(key)
            if key.endswith("_token_id"):
                named = value if isinstance(value, list) else [value]
                if not all(i is None or (isinstance(i, int) and 0 <= i < vocab) for i in named):
                    problem = f"{file} '{key}' is {value!r}, not a token id of the model"
            elif value is None:
                continue
            elif not _same_kind(value, default):
                problem = f"{file} '{key}' is {value!r}, not {type(default).__name__}"
            elif file == "config.json" and _is_count(default) and not value > 0:
                # A size or count not in the weights' shapes (attention heads) is positive.
                problem = f"{file} '{key}' is {value!r}, not a positive number"
    if problem is not None:
        raise runs.damaged(directory, problem)


def _same_kind(value: Any, default: Any) -> bool:
    """Whether a setting's value has the JSON type of its default (bool, int, number)."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True


def _is_count(default: Any) -> bool:
    return isinstance(default, int) and not isinstance(default, bool) and default > 0


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def _read(directory: Path, name: str, read: Callable[[], Any]) -> Any:
    """``read()``, a Hugging Face loader, with whatever it raises on a damaged file (its
    errors have no common class: OSError, ValueError, the tokenizers' Exception) as one
    RunError naming the file."""
    try:
        return read()
    except GentoolError:
        raise
    except Exception as err:  # noqa: BLE001 (see above; a bug still shows its type)
        raise runs.damaged(
            directory, f"{name} does not load ({type(err).__name__}: {_first_line(err)})"
        ) from None
