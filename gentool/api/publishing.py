"""Publishing a run: ``gentool push RUN ORG/NAME`` uploads it to the Hugging Face Hub.

What is uploaded is the run as a folder that needs nothing of this machine: its
checksummed files (no checkpoints), a gentool.json whose paths are file names only (the
sha256 of each file identifies it), config files without local ``_name_or_path``
values, and a model card with Hub metadata (YAML front matter: ``library_name:
gentool``, tags, datasets, ``model-index`` results, license). It loads with
``gentool generate hf:ORG/NAME`` (every kind) and, for the Hugging Face kinds, with
``AutoModelFor*.from_pretrained("ORG/NAME")``. ``dry_run`` writes that folder instead.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from gentool import runs
from gentool.errors import OutputError, RunError
from gentool.tasks import GENERATE_IMAGE, GENERATE_TEXT, RESTORE_IMAGE, TRANSLATE

# The Hub's pipeline tag of each task, for its widgets and search.
PIPELINE_TAGS = {
    TRANSLATE: "translation",
    GENERATE_TEXT: "text-generation",
    RESTORE_IMAGE: "image-to-image",
    GENERATE_IMAGE: "unconditional-image-generation",
}
# config files whose ``_name_or_path``-like keys may hold a local path
_NAME_KEYS = ("_name_or_path", "name_or_path")
_COUNTS = ("_tokens", "_pairs", "_seconds")  # sizes of the held-out data, not results


def push(
    run: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    license: str = "other",
    dry_run: str | Path | None = None,
    token: str | None = None,
) -> str:
    """Upload the run to the Hub as ``repo_id`` (ORG/NAME; created if new, ``private`` if
    asked; on branch ``revision`` if given) and return the model's URL; or, with
    ``dry_run``, write the folder that would be uploaded there and return its path. The
    token is ``token``, else ``HF_TOKEN`` or the one of ``hf auth login``."""
    run_dir = runs.RunDirectory(run)
    run_dir.verify()
    if "/" not in repo_id or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise RunError(f"'{repo_id}' is not a Hub model id; write ORG/NAME (your user or org)")
    if dry_run is not None:
        out = Path(dry_run)
        runs.check_output_folder(out, "--dry-run")
        if out.exists() and any(out.iterdir()):
            raise OutputError(f"--dry-run '{out}' is not empty; name a new or empty folder")
        out.mkdir(parents=True, exist_ok=True)
        write_folder(run_dir, repo_id, out, license)
        return str(out)
    from huggingface_hub import HfApi, get_token

    token = token or get_token()
    if not token:
        raise RunError(
            f"no Hugging Face token to push to '{repo_id}': log in (hf auth login) or set "
            "HF_TOKEN to a token with write access"
        )
    with tempfile.TemporaryDirectory(prefix="gentool-push-") as tmp:
        folder = Path(tmp)
        write_folder(run_dir, repo_id, folder, license)
        hub = HfApi(token=token)
        try:
            url = hub.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            if revision:
                hub.create_branch(repo_id, branch=revision, exist_ok=True)
            hub.upload_folder(
                repo_id=repo_id,
                folder_path=str(folder),
                revision=revision,
                commit_message=f"gentool push {run_dir.family} {run_dir.kind or ''}".strip(),
            )
        except Exception as err:  # noqa: BLE001 (HTTP errors, network errors: no common class)
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise RunError(
                f"the Hub refused the upload to '{repo_id}' ({first}); check the name and "
                "that your token (HF_TOKEN or hf auth login) may write there"
            ) from None
    return str(url)


def write_folder(run: runs.RunDirectory, repo_id: str, out: Path, license: str) -> None:
    """The folder ``push`` uploads, written into the empty folder ``out``."""
    meta = json.loads(json.dumps(run.meta))  # a deep copy
    files = dict(meta["files"])
    for name in files:
        if name == "README.md":
            continue
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run.path / name, target)
        if name.endswith(".json") and _scrub_names(target, repo_id):
            fingerprint = runs.fingerprint(target)
            files[name] = {"bytes": fingerprint["bytes"], "sha256": fingerprint["sha256"]}
    meta = _without_paths(meta)
    card = model_card(meta, repo_id, license)
    runs.write_text(out / "README.md", card)
    readme = runs.fingerprint(out / "README.md")
    files["README.md"] = {"bytes": readme["bytes"], "sha256": readme["sha256"]}
    meta["files"] = files
    meta["pushed_as"] = repo_id
    runs.write_json(out / runs.META_FILE, meta)


def _scrub_names(path: Path, repo_id: str) -> bool:
    """Replace local paths in a config's ``_name_or_path`` by the repo id; True if changed."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False
    if not isinstance(data, dict):
        return False
    changed = False
    base = data.get("base_model_name_or_path")  # a LoRA adapter's base: its Hub id or name
    if isinstance(base, str) and base:
        hub_id = base.removeprefix("hf:").partition("@")[0]
        named = hub_id if base.startswith("hf:") else _name(base)
        changed = named != base
        data["base_model_name_or_path"] = named
    for key in _NAME_KEYS:
        if isinstance(data.get(key), str) and data[key] and data[key] != repo_id:
            data[key] = repo_id
            changed = True
    if changed:
        runs.write_json(path, data)
    return changed


def _name(path: Any) -> Any:
    return Path(path).name if isinstance(path, str) and path else path


def _without_paths(meta: dict[str, Any]) -> dict[str, Any]:
    """gentool.json with every data path reduced to its file name (the sha256 beside it
    identifies the file) and a local parent named by its folder's name."""
    for value in (meta.get("data") or {}).values():
        for fp in value if isinstance(value, list) else [value]:
            if isinstance(fp, dict) and "path" in fp:
                fp["path"] = _name(fp["path"])
    table = (meta.get("recipe") or {}).get("data") or {}
    for key, value in table.items():
        table[key] = [_name(v) for v in value] if isinstance(value, list) else _name(value)
    model = (meta.get("recipe") or {}).get("model") or {}
    parent = meta.get("parent")
    while isinstance(parent, dict):
        source = parent.get("source")
        if isinstance(source, str) and not source.startswith("hf:"):
            parent["source"] = _name(source)
        parent = parent.get("parent")
    init = model.get("init")
    if isinstance(init, str) and init and not init.startswith("hf:"):
        model["init"] = _name(init)
    if "imported_from" in meta:
        meta["imported_from"]["path"] = _name(meta["imported_from"].get("path"))
    return meta


def model_card(meta: dict[str, Any], repo_id: str, license: str) -> str:
    """README.md for the Hub: YAML front matter (huggingface_hub's ModelCardData) and a
    body naming the data by name and sha256, the lineage, metrics and how to use it."""
    from huggingface_hub import EvalResult, ModelCardData

    family, kind = meta["family"], meta.get("kind") or meta["family"]
    tasks = meta.get("tasks") or []
    pipeline = next((PIPELINE_TAGS[t] for t in tasks if t in PIPELINE_TAGS), None)
    train = (meta.get("data") or {}).get("train") or []
    data = [{"name": d["path"], "sha256": d["sha256"]} for d in train if isinstance(d, dict)]
    dataset = data[0]["name"] if data else "none"
    task_type = pipeline or "other"
    results = [
        EvalResult(
            task_type=task_type,
            dataset_type="held-out split",
            dataset_name=f"{dataset} (held out)",
            metric_type=key.removeprefix("val_"),
            metric_value=value,
            metric_name=key,
        )
        for key, value in (meta.get("metrics") or {}).items()
        if key.startswith("val_")
        and not key.endswith(_COUNTS)
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    ]
    card = ModelCardData(
        library_name="gentool",
        license=license,
        tags=["gentool", f"gentool-{family}", f"gentool-{family}-{kind}", *tasks],
        pipeline_tag=pipeline,
        datasets=[d["name"] for d in data] or None,
        model_name=repo_id,
        eval_results=results or None,
        gentool_data=data or None,
        base_model=_base_model(meta.get("parent")),
    )
    lines = [
        "---",
        card.to_yaml(),
        "---",
        "",
        f"# {repo_id}",
        "",
        f"A gentool {family} {kind if kind != family else ''} model".replace("  ", " ") + ".",
        "",
        "## Use",
        "",
        "```bash",
        "pip install 'gentool[neural]'",
        f"gentool {'translate' if TRANSLATE in tasks else 'generate'} hf:{repo_id}"
        + (' "A sentence."' if TRANSLATE in tasks else ""),
        "```",
        "",
    ]
    if data:
        lines += ["## Data", ""]
        lines += [f"- `{d['name']}` (sha256 `{d['sha256']}`)" for d in data]
        lines.append("")
    if meta.get("parent"):
        lines += ["## Started from", "", "```json", json.dumps(meta["parent"], indent=2), "```"]
        lines.append("")
    if meta.get("metrics"):
        lines += ["## Metrics", ""]
        lines += [f"- {k}: {v}" for k, v in meta["metrics"].items()]
        lines.append("")
    lines += ["## Recipe", "", "```json", json.dumps(meta.get("recipe"), indent=2), "```", ""]
    lines += ["Published with `gentool push`; gentool.json holds the checksums of every file.", ""]
    return "\n".join(lines)


def _base_model(parent: Any) -> str | None:
    """The Hub id a run was fine-tuned from, for the Hub's model tree (None otherwise)."""
    if isinstance(parent, dict) and str(parent.get("source", "")).startswith("hf:"):
        return str(parent["source"]).removeprefix("hf:").partition("@")[0]
    return None


__all__ = ["model_card", "push", "write_folder"]
