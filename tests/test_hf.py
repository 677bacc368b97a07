"""Hugging Face models gentool did not train, where a run is expected: local model folders
and Hub ids (from a local Hugging Face cache, offline), built tiny at test time (GPT-2,
Llama, T5, Marian); what gentool refuses (remote code, pickle only, not cached)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    assert_error,
    assert_same_weights,
    interrupt_at,
    invoke,
    invoke_json,
    run_gentool,
)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

TEXT = ["the cat sat on the mat.", "a dog runs in the park.", "the bird sings a song."] * 8
SHA = "0123456789abcdef0123456789abcdef01234567"


def _tokenizer(specials: list[str], **named: str) -> Any:
    """A byte-level BPE tokenizer of ~300 tokens, ``specials`` first."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(TEXT, trainer)
    if "eos_token" in named and named.get("seq2seq"):
        eos = named["eos_token"]
        backend.post_processor = processors.TemplateProcessing(
            single=f"$A {eos}", special_tokens=[(eos, backend.token_to_id(eos))]
        )
    named.pop("seq2seq", None)
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend, **named)


def save_causal(folder: Path, arch: str = "gpt2") -> Path:
    """A tiny causal LM of architecture ``arch`` (gpt2, llama) with its tokenizer."""
    tok = _tokenizer(["<|endoftext|>"], bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    torch.manual_seed(0)
    if arch == "gpt2":
        config: Any = transformers.GPT2Config(
            vocab_size=len(tok), n_positions=64, n_embd=16, n_layer=1, n_head=2,
            bos_token_id=0, eos_token_id=0,
        )  # fmt: skip
    else:
        config = transformers.LlamaConfig(
            vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
            bos_token_id=0, eos_token_id=0,
        )  # fmt: skip
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def save_seq2seq(folder: Path, arch: str = "t5") -> Path:
    """A tiny encoder-decoder (t5, marian) with a tokenizer that appends its eos."""
    tok = _tokenizer(
        ["<pad>", "</s>", "<unk>"],
        pad_token="<pad>", eos_token="</s>", unk_token="<unk>", seq2seq="yes",
    )  # fmt: skip
    torch.manual_seed(0)
    if arch == "t5":
        config: Any = transformers.T5Config(
            vocab_size=len(tok), d_model=16, d_ff=32, d_kv=8, num_layers=1, num_heads=2,
            pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
        )  # fmt: skip
    else:
        config = transformers.MarianConfig(
            vocab_size=len(tok), d_model=16, encoder_layers=1, decoder_layers=1,
            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
            decoder_ffn_dim=32, max_position_embeddings=64, pad_token_id=0, eos_token_id=1,
            decoder_start_token_id=0, forced_eos_token_id=1,
        )  # fmt: skip
    model = transformers.AutoModelForSeq2SeqLM.from_config(config)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def cache_model(cache: Path, repo_id: str, folder: Path, sha: str = SHA) -> None:
    """Put ``folder`` into the Hugging Face cache ``cache`` as ``repo_id``'s main revision:
    models--ORG--NAME/{refs/main, snapshots/SHA/...}, huggingface_hub's documented layout."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    shutil.copytree(folder, repo / "snapshots" / sha)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An offline Hugging Face cache (HF_HUB_CACHE) holding tiny-org/gpt and tiny-org/t5."""
    from gentool import hub as gentool_hub

    cache = tmp_path / "hf-cache"
    cache_model(cache, "tiny-org/gpt", save_causal(tmp_path / "src-gpt"))
    cache_model(cache, "tiny-org/t5", save_seq2seq(tmp_path / "src-t5"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    gentool_hub._from_hub.cache_clear()
    return cache


@pytest.fixture
def text(tmp_path: Path) -> Path:
    path = tmp_path / "test.txt"
    path.write_text("\n".join(TEXT) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_local_causal_lm_generates_scores_and_describes(
    arch: str, tmp_path: Path, text: Path
) -> None:
    folder = save_causal(tmp_path / arch, arch)
    samples = invoke_json("generate", folder, "--prompt", "the cat", "-n", "2", "--seed", "1",
                          "--max-tokens", "6")["samples"]  # fmt: skip
    assert len(samples) == 2 and all(s.startswith("the cat") for s in samples)
    metrics = invoke_json("evaluate", folder, "--data", text)["metrics"]
    assert metrics["tokens"] > 10 and metrics["perplexity"] > 1
    assert metrics["bits_per_token"] == pytest.approx(metrics["cross_entropy"] / 0.6931471805599453)
    details = invoke_json("info", folder)
    assert details["kind"] == "lm" and details["model"]["model_type"] == arch
    assert details["pretrained"]["sha256"] and details["tasks"] == ["generate-text", "score-text"]
    invoke("attention", folder, "the cat", "-o", tmp_path / "attention.png")
    assert (tmp_path / "attention.png").is_file()


@pytest.mark.parametrize("arch", ["t5", "marian"])
def test_local_seq2seq_translates_and_evaluates(arch: str, tmp_path: Path) -> None:
    folder = save_seq2seq(tmp_path / arch, arch)
    out = invoke("translate", folder, "the cat sat.", "a dog runs.", "--json").stdout
    assert [json.loads(line)["source"] for line in out.split("\n") if line] == [
        "the cat sat.",
        "a dog runs.",
    ]
    (tmp_path / "s.txt").write_text("the cat sat.\na dog runs.\n")
    (tmp_path / "t.txt").write_text("the mat.\nthe park.\n")
    metrics = invoke_json("evaluate", folder, "--source", "s.txt", "--target", "t.txt")
    assert "bleu" in metrics["metrics"] and metrics["metrics"]["loss"] > 0
    assert invoke_json("info", folder)["kind"] == "translator"
    invoke("attention", folder, "the cat sat.", "-o", tmp_path / "attention.png")
    assert (tmp_path / "attention.png").is_file()


def test_hub_ids_from_the_cache_offline(hub: Path, text: Path) -> None:
    for spec in ("hf:tiny-org/gpt", "tiny-org/gpt", f"hf:tiny-org/gpt@{SHA}"):
        assert invoke("generate", spec, "--max-tokens", "3", "--seed", "0").stdout.strip()
    details = invoke_json("info", "hf:tiny-org/gpt")
    assert details["pretrained"] == {"source": "hf:tiny-org/gpt", "revision": SHA}
    assert invoke_json("evaluate", "tiny-org/gpt", "--data", text)["metrics"]["perplexity"] > 1
    assert invoke("translate", "hf:tiny-org/t5", "the cat sat.").stdout.strip() is not None


def test_hub_model_not_cached_offline_is_one_error_line(hub: Path) -> None:
    result = run_gentool(
        "generate", "hf:tiny-org/absent", env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub)}
    )
    assert_error(result, "'hf:tiny-org/absent'", "not in the Hugging Face cache", "hf download")
    assert_error(invoke("info", "tiny-org/absent", ok=False), "HF_HUB_OFFLINE")


def test_remote_code_pickle_only_and_wrong_kind_are_refused(tmp_path: Path) -> None:
    remote = save_causal(tmp_path / "remote")
    config = json.loads((remote / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_x.XModel"}
    (remote / "config.json").write_text(json.dumps(config))
    assert_error(invoke("generate", remote, ok=False), "own Python code", "trust_remote_code")

    pickled = save_causal(tmp_path / "pickled")
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    assert_error(invoke("generate", pickled, ok=False), "no safetensors", "pytorch_model.bin")

    seq2seq = save_seq2seq(tmp_path / "t5")
    assert_error(invoke("generate", seq2seq, ok=False), "cannot generate text", "translate")
    causal = save_causal(tmp_path / "gpt")
    assert_error(invoke("translate", causal, "hi", ok=False), "cannot translate")

    vision = tmp_path / "vit"
    transformers.ViTModel(
        transformers.ViTConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=8, image_size=8, patch_size=4)
    ).save_pretrained(vision)  # fmt: skip
    assert_error(invoke("info", vision, ok=False), "'vit' model", "no installed kind")


# -- gentool train transformer --init ----------------------------------------------------------

STEPS = ["--set", "train.max_steps=12", "--set", "train.batch_size=4",
         "--set", "train.lr=0.01", "--set", "train.warmup_steps=0",
         "--set", "train.checkpoint_every=4", "--set", "train.eval_every=0"]  # fmt: skip
FINE_TUNE = [*STEPS, "--set", "train.seq_len=16"]  # a language model's


def losses(run: Path) -> list[float]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [row["loss"] for row in map(json.loads, lines) if "loss" in row]


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_fine_tune_a_causal_lm_keeps_its_tokenizer_and_records_its_parent(
    arch: str, tmp_path: Path, text: Path
) -> None:
    base = save_causal(tmp_path / arch, arch)
    out = tmp_path / "tuned"
    invoke("train", "transformer", "--init", base, "--data", text, *FINE_TUNE,
           "--set", "train.log_every=1", "--out", out)  # fmt: skip
    curve = losses(out)
    assert curve[-1] < curve[0]  # it learns the tiny text
    assert (out / "tokenizer.json").read_bytes() == (base / "tokenizer.json").read_bytes()
    details = invoke_json("info", out)
    assert details["parent"] == {"source": str(base), "sha256": details["parent"]["sha256"]}
    assert details["model"]["model_type"] == arch
    tuned = transformers.AutoModelForCausalLM.from_pretrained(out)  # a plain HF model still
    assert type(tuned).__name__.lower().startswith(arch[:4])
    assert invoke_json("evaluate", out, "--data", text)["metrics"]["perplexity"] > 1

    # a run of the same kind starts another: the lineage goes on
    again = tmp_path / "again"
    invoke("train", "transformer", "--init", out, "--data", text, *FINE_TUNE, "--out", again)
    parent = invoke_json("info", again)["parent"]
    assert parent["kind"] == "lm" and parent["data"] == [
        {"name": "test.txt", "sha256": details["data"]["train"][0]["sha256"]}
    ]
    assert parent["parent"] == details["parent"]


def test_fine_tune_resume_equals_uninterrupted(
    tmp_path: Path, text: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gentool_transformer.gpt2 import WindowTask

    base = save_causal(tmp_path / "gpt")
    settings = ["transformer", "--init", base, "--data", text, *FINE_TUNE]
    invoke("train", *settings, "--out", tmp_path / "whole")
    interrupt_at(monkeypatch, WindowTask, 6)
    result = invoke("train", *settings, "--out", tmp_path / "cut", ok=False)
    assert result.exit_code == 130
    monkeypatch.undo()
    invoke("train", "--resume", "--out", tmp_path / "cut")
    assert_same_weights(tmp_path / "whole", tmp_path / "cut", atol=1e-6)


def test_fine_tune_a_seq2seq_model_from_the_hub_cache(hub: Path, tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("\n".join(TEXT) + "\n")
    (tmp_path / "t.txt").write_text("\n".join(reversed(TEXT)) + "\n")
    out = tmp_path / "mt"
    invoke("train", "transformer", "--init", "hf:tiny-org/t5", "--source", "s.txt",
           "--target", "t.txt", *STEPS, "--set", "train.log_every=1",
           "--set", "train.bleu_pairs=2", "--out", out)  # fmt: skip
    curve = losses(out)
    assert curve[-1] < curve[0]
    details = invoke_json("info", out)
    assert details["kind"] == "translator"
    assert details["parent"] == {"source": "hf:tiny-org/t5", "revision": SHA}
    assert invoke("translate", out, "the cat sat.").exit_code == 0


def test_fine_tune_refuses_fixed_keys_and_the_wrong_model(hub: Path, text: Path) -> None:
    result = invoke("train", "transformer", "--init", "hf:tiny-org/gpt", "--data", text,
                    "--set", "model.d_model=64", ok=False)  # fmt: skip
    assert_error(result, "model.d_model is fixed by the pretrained model", "drop")
    result = invoke("train", "transformer", "--init", "hf:tiny-org/t5", "--data", text, ok=False)
    assert_error(result, "'t5' model", "transformer lm does not start from")
    result = invoke("train", "transformer", "--init", "hf:tiny-org/gpt", "--data", text,
                    "--set", "train.seq_len=100", ok=False)  # fmt: skip
    assert_error(result, "train.seq_len=100", "64 positions")
    result = invoke("train", "ngram", "--init", "hf:tiny-org/gpt", "--data", text, ok=False)
    assert_error(result, "the ngram cannot start from a pretrained model", "transformer lm")
    assert_error(invoke("train", "transformer", "--init", "hf:tiny-org/absent", ok=False),
                 "not in the Hugging Face cache")  # fmt: skip
    assert not Path("runs").exists()


# -- gentool push ------------------------------------------------------------------------------


def _no_local_paths(folder: Path, *paths: Path) -> None:
    markers = {str(p) for p in paths} | {str(Path.home()), "/tmp/", "/work/"}
    for file in folder.rglob("*"):
        if file.is_file() and file.suffix in (".json", ".md", ".jsonl", ".txt"):
            text = file.read_text(encoding="utf-8")
            found = [m for m in markers if m in text]
            assert not found, f"{file.name} holds {found}"


def test_push_dry_run_writes_a_folder_that_loads_everywhere(
    tmp_path: Path, text: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import ModelCard

    from gentool import hub as gentool_hub

    base = save_causal(tmp_path / "gpt")
    run = tmp_path / "runs" / "tuned"
    invoke("train", "transformer", "--init", base, "--data", text, *FINE_TUNE, "--out", run)
    up = tmp_path / "upload"
    result = invoke("push", run, "me/tiny-lm", "--dry-run", up, "--license", "mit")
    assert result.stdout.strip() == str(up)
    assert not (up / "checkpoints").exists()
    _no_local_paths(up, tmp_path, run, base, text)

    card = ModelCard.load(up / "README.md")
    assert card.data.library_name == "gentool" and card.data.license == "mit"
    assert "gentool-transformer" in card.data.tags and card.data.pipeline_tag == "text-generation"
    assert card.data.datasets == ["test.txt"]
    sha = json.loads((run / "gentool.json").read_text())["data"]["train"][0]["sha256"]
    assert card.data.to_dict()["gentool_data"] == [{"name": "test.txt", "sha256": sha}]
    results = card.data.to_dict()["model-index"][0]["results"][0]["metrics"]
    assert {m["type"] for m in results} == {"loss", "bits_per_token"}

    transformers.AutoModelForCausalLM.from_pretrained(up)  # no gentool code needed
    assert invoke("generate", up, "--max-tokens", "3").exit_code == 0  # a verified run

    # as a Hub model (here: the cache, offline), with every kind: ngram too
    invoke("train", "ngram", "--out", tmp_path / "ng")
    invoke("push", tmp_path / "ng", "me/ng", "--dry-run", tmp_path / "ng-up")
    cache = tmp_path / "cache"
    cache_model(cache, "me/tiny-lm", up)
    cache_model(cache, "me/ng", tmp_path / "ng-up")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    gentool_hub._from_hub.cache_clear()
    for repo in ("hf:me/tiny-lm", "hf:me/ng"):
        assert invoke("generate", repo, "--seed", "1").stdout.strip()
    assert invoke_json("info", "hf:me/ng")["family"] == "ngram"


def test_push_uploads_with_the_token_or_says_why_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    run = tmp_path / "ng"
    invoke("train", "ngram", "--out", run)
    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(
        huggingface_hub.HfApi,
        "create_repo",
        lambda self, repo_id, **kw: (
            calls.append(("create", (repo_id, kw["private"])))
            or f"https://huggingface.co/{repo_id}"
        ),
    )

    def upload_folder(self: Any, **kw: Any) -> None:
        folder = Path(kw["folder_path"])
        calls.append(("upload", sorted(p.name for p in folder.iterdir())))
        assert self.token == "hf_fake"

    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("HF_TOKEN", "hf_fake")
    result = invoke("push", run, "me/ng", "--private")
    assert result.stdout.strip() == "https://huggingface.co/me/ng"
    assert calls[0] == ("create", ("me/ng", True))
    assert "gentool.json" in calls[1][1] and "README.md" in calls[1][1]

    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-login"))
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert_error(invoke("push", run, "me/ng", ok=False), "no Hugging Face token", "HF_TOKEN")

    # a Hub that refuses (here: nothing listens at the endpoint), in a real process
    env = {"HF_TOKEN": "hf_fake", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0"}
    refused = run_gentool("push", run, "me/ng", env=env)
    assert_error(refused, "the Hub refused the upload to 'me/ng'")
    assert_error(invoke("push", run, "not-an-id", ok=False), "ORG/NAME")


# -- LoRA (peft) -------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_lora_trains_an_adapter_that_loads_transparently(
    arch: str, tmp_path: Path, text: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("peft")
    if arch == "gpt2":
        from gentool_transformer.gpt2 import WindowTask as Task

        base = save_causal(tmp_path / arch)
        data = ["--data", text, *FINE_TUNE]
    else:
        from gentool_transformer.marian import PairTask as Task

        base = save_seq2seq(tmp_path / arch)
        (tmp_path / "s.txt").write_text("\n".join(TEXT) + "\n")
        (tmp_path / "t.txt").write_text("\n".join(reversed(TEXT)) + "\n")
        data = [
            "--source",
            tmp_path / "s.txt",
            "--target",
            tmp_path / "t.txt",
            *STEPS,
            "--set",
            "train.bleu_pairs=0",
        ]  # fmt: skip  (absolute: undo() leaves tmp_path)
    settings = ["transformer", "--init", base, *data, "--set", "train.lora_rank=4",
                "--set", "train.log_every=1"]  # fmt: skip
    whole = tmp_path / "whole"
    invoke("train", *settings, "--out", whole)
    assert (whole / "adapter_model.safetensors").is_file()
    assert not (whole / "model.safetensors").exists()  # only the adapter is the run's
    adapter = json.loads((whole / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(base) and adapter["r"] == 4
    curve = losses(whole)
    assert curve[-1] < curve[0]
    if arch == "gpt2":
        assert invoke_json("generate", whole, "--max-tokens", "3")["samples"]
    else:
        assert invoke("translate", whole, "the cat sat.").exit_code == 0

    interrupt_at(monkeypatch, Task, 6)
    assert invoke("train", *settings, "--out", tmp_path / "cut", ok=False).exit_code == 130
    monkeypatch.undo()
    invoke("train", "--resume", "--out", tmp_path / "cut")
    assert_same_weights_named(whole, tmp_path / "cut", "adapter_model.safetensors")


def assert_same_weights_named(a: Path, b: Path, name: str) -> None:
    from safetensors.torch import load_file

    first, second = load_file(str(a / name)), load_file(str(b / name))
    assert first.keys() == second.keys()
    for key in first:
        assert torch.allclose(first[key], second[key], atol=1e-6, rtol=0), key


def test_lora_needs_a_pretrained_model(text: Path) -> None:
    result = invoke("train", "transformer", "--data", text, "--set", "train.lora_rank=4", ok=False)
    assert_error(result, "train.lora_rank=4", "--init")
