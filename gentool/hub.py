"""Hugging Face models where a run is expected: a local model folder or a Hub id.

``resolve(spec)`` turns what the user typed into a local folder of a Hugging Face model
(config.json, safetensors weights, tokenizer files), checked for what gentool refuses to
run: pickled weights only, or a model whose architecture is its own Python code
(``auto_map``: ``trust_remote_code`` stays off). A Hub id is ``hf:ORG/NAME[@REVISION]``,
or a plain ``ORG/NAME`` where no such local path exists; it is fetched into (or, offline,
read from) huggingface_hub's cache with short timeouts, never pickle files.

torch-free: huggingface_hub is imported when a Hub id is resolved.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gentool import runs
from gentool.errors import RunError

PREFIX = "hf:"
# Files of a model gentool reads: never *.bin / *.pt / *.pth / *.h5 (pickle and others).
ALLOW_PATTERNS = [
    "*.json",
    "*.safetensors",
    "*.jsonl",
    "*.txt",
    "*.model",
    "*.spm",
    "*.tiktoken",
    "README.md",
]
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?(@[\w./-]+)?")
_TIMEOUT_SECONDS = "10"  # a dead network fails in seconds, not minutes


@dataclass(frozen=True)
class Pretrained:
    """A Hugging Face model folder, and where it came from (for a run's lineage)."""

    source: str  # as given
    path: Path  # the local folder: config.json, weights, tokenizer
    config: dict[str, Any] = field(repr=False)  # config.json
    repo_id: str | None = None  # a Hub model's id
    revision: str | None = None  # a Hub model's commit sha
    sha256: str | None = None  # a local folder's weights (model.safetensors)

    def lineage(self) -> dict[str, Any]:
        """What a run records of it (gentool.json ``parent``): no local path of a Hub model."""
        if self.repo_id is not None:
            return {"source": f"{PREFIX}{self.repo_id}", "revision": self.revision}
        return {"source": self.source, "sha256": self.sha256}


def is_run(path: Path) -> bool:
    return (path / runs.META_FILE).is_file()


def is_pretrained(spec: str | Path) -> bool:
    """Whether ``spec`` names a Hugging Face model rather than a gentool run: ``hf:...``,
    a folder with config.json and no gentool.json, or ``ORG/NAME`` that is no local path
    (and whose ORG is no local folder either)."""
    text = str(spec)
    if text.startswith(PREFIX):
        return True
    path = Path(text)
    if path.is_dir():
        return (path / "config.json").is_file() and not is_run(path)
    # ORG/NAME where ORG is a local folder (runs/typo) is a path that is missing, not an id
    return (
        "/" in text
        and _HUB_ID.fullmatch(text) is not None
        and not path.exists()
        and not path.parent.is_dir()
    )


def resolve(spec: str | Path) -> Pretrained:
    """The checked local folder of the Hugging Face model ``spec`` (see ``is_pretrained``);
    RunError naming the model and the fix when it cannot be had or would run code."""
    text = str(spec)
    path = Path(text)
    if not text.startswith(PREFIX) and path.is_dir():
        return _checked(text, path)
    return _from_hub(text.removeprefix(PREFIX))


@functools.cache
def _from_hub(name: str) -> Pretrained:
    """A Hub model, from the cache or the network (each id once per process)."""
    repo_id, _, revision = name.partition("@")
    if not _HUB_ID.fullmatch(repo_id):
        raise RunError(f"'{PREFIX}{name}' is not a Hub model id; write hf:ORG/NAME[@REVISION]")
    for variable in ("HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT"):
        os.environ.setdefault(variable, _TIMEOUT_SECONDS)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    label = f"'{PREFIX}{name}'"
    try:
        folder = snapshot_download(
            repo_id, revision=revision or None, allow_patterns=ALLOW_PATTERNS
        )
    except GatedRepoError:
        raise RunError(
            f"{label} is gated on the Hub; accept its terms on its page and log in "
            "(hf auth login, or set HF_TOKEN)"
        ) from None
    except RepositoryNotFoundError:
        raise RunError(
            f"{label} is not a model on the Hub (or is private); check the name, or log in "
            "(hf auth login, or set HF_TOKEN)"
        ) from None
    except RevisionNotFoundError:
        raise RunError(f"{label}: the Hub model has no revision '{revision}'") from None
    except LocalEntryNotFoundError:
        raise RunError(
            f"{label} is not in the Hugging Face cache and the Hub cannot be reached "
            "(offline: HF_HUB_OFFLINE=1, or no network); download it where there is a "
            f"network (hf download {repo_id}) or point HF_HOME at a cache that holds it"
        ) from None
    except (OSError, ValueError) as err:  # network errors, a damaged cache
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise RunError(f"{label} could not be fetched from the Hub ({first})") from None
    local = Path(folder)
    return _checked(f"{PREFIX}{name}", local, repo_id=repo_id, revision=local.name)


def _checked(
    source: str, path: Path, repo_id: str | None = None, revision: str | None = None
) -> Pretrained:
    if is_run(path) and not (path / "config.json").is_file():  # a gentool run of any kind
        return Pretrained(source, path, {}, repo_id, revision, None)
    if _export_format(path) == "ct2":  # (its config.json is CTranslate2's)
        raise RunError(
            f"'{source}' is a CTranslate2 export (gentool export --format ct2): run it with "
            f"gentool generate/translate {source} --engine ct2"
        )
    config_file = path / "config.json"
    if not config_file.is_file():
        raise RunError(f"'{source}' has no config.json: it is not a Hugging Face model")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise RunError(f"'{source}': config.json does not load ({err})") from None
    if not isinstance(config, dict):
        raise RunError(f"'{source}': config.json does not hold a JSON object")
    if config.get("auto_map"):
        raise RunError(
            f"'{source}' needs its own Python code to run (auto_map in config.json, "
            "trust_remote_code); gentool runs no code from a model: use a model of an "
            "architecture transformers has"
        )
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        pickled = [p.name for p in path.iterdir() if p.suffix in (".bin", ".pt", ".pth")]
        found = f" (it has {', '.join(sorted(pickled))})" if pickled else ""
        raise RunError(
            f"'{source}' has no safetensors weights{found}; gentool loads safetensors only "
            "(pickle files can run code): convert it, or use a model that has them"
        )
    sha256 = None
    if repo_id is None and (path / runs.TENSOR_FILE).is_file():
        sha256 = runs.sha256_file(path / runs.TENSOR_FILE)
    return Pretrained(source, path, config, repo_id, revision, sha256)


def _export_format(path: Path) -> str | None:
    """The format of a folder gentool export wrote (None: not one, or unreadable)."""
    try:
        record = json.loads((path / runs.EXPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record.get("format") if isinstance(record, dict) else None


__all__ = ["PREFIX", "Pretrained", "is_pretrained", "is_run", "resolve"]
