"""CTranslate2 for the transformer kinds: converting a loaded model (``gentool export
--format ct2``) and running the export (``--engine ct2``).

Conversion goes through CTranslate2's own loaders for transformers' architectures (GPT-2,
Llama, ... and OPUS-MT's Marian), given the model already loaded rather than a folder, so
a LoRA run converts with its adapter merged. One case needs a loader of its own: a Marian
model gentool built. CTranslate2's Marian loader follows OPUS-MT's conventions: the last
vocabulary entry is a ``<pad>`` that transformers adds, which it drops (with its embedding
row), and the decoder starts from a zero embedding. gentool's translator has neither: its
``<|endoftext|>`` (id 0) ends, pads and starts the decoder with a learnt embedding. Dropping
the last row gave "Source vocabulary 0 has size 1000 but the model expected 999", and
starting from zeros would change every translation; ``GentoolMarianLoader`` keeps the
vocabulary whole and starts the decoder from the model's own start token, so the export
translates exactly as the run does (greedy: the same tokens).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

from gentool import runs
from gentool.errors import PluginError, RecipeError, RunError
from gentool.neural.hf import context_length
from gentool.neural.weights import pretrained_tokenizer
from gentool.tasks import GenerationRequest, Translation, TranslationRequest

CT2_EXTRA = "pip install 'gentool[ct2]'"


def ctranslate2() -> Any:
    """The ctranslate2 module, or one Error line saying how to get it."""
    try:
        import ctranslate2
    except ImportError:
        raise PluginError(f"CTranslate2 is not installed: {CT2_EXTRA}") from None
    return ctranslate2


# -- conversion ------------------------------------------------------------------------------


def opus_conventions(model: Any, tokenizer: Any) -> bool:
    """Whether a Marian model follows OPUS-MT's vocabulary: ``<pad>`` last, and the pad that
    starts the decoder (CTranslate2's Marian loader assumes both)."""
    last = len(tokenizer) - 1
    return (
        tokenizer.convert_ids_to_tokens(last) == "<pad>"
        and model.config.pad_token_id == last
        and model.config.decoder_start_token_id == last
    )


def loader_for(model: Any, tokenizer: Any) -> Any:
    """The CTranslate2 loader that converts ``model``."""
    ctranslate2()
    from ctranslate2.converters import transformers as converters

    name = type(model.config).__name__
    if name == "MarianConfig" and not opus_conventions(model, tokenizer):
        return GentoolMarianLoader()
    loader = converters._MODEL_LOADERS.get(name)  # (its registry of architectures)
    if loader is None:
        raise PluginError(
            f"CTranslate2 cannot convert '{model.config.model_type}' models; export another "
            "architecture, or run this one without --engine ct2"
        )
    return loader


def _gentool_marian_loader() -> type:
    from ctranslate2.converters.transformers import BartLoader, MarianMTLoader

    class Loader(MarianMTLoader):  # type: ignore[misc]
        """MarianMTLoader without OPUS-MT's conventions (see the module docstring)."""

        def get_model_spec(self, model: Any) -> Any:
            model.config.normalize_before = False  # post-LN blocks
            model.config.normalize_embedding = False
            return BartLoader.get_model_spec(self, model)  # every vocabulary row kept

        def set_config(self, config: Any, model: Any, tokenizer: Any) -> None:
            BartLoader.set_config(self, config, model, tokenizer)  # the model's start token

        def set_decoder(self, spec: Any, decoder: Any) -> None:
            BartLoader.set_decoder(self, spec, decoder)  # from the start token's embedding

        def get_vocabulary(self, model: Any, tokenizer: Any) -> list[str]:
            return list(BartLoader.get_vocabulary(self, model, tokenizer))  # no <pad> popped

    return Loader


def GentoolMarianLoader() -> Any:  # noqa: N802 (a class, made when ctranslate2 is there)
    return _gentool_marian_loader()()


def convert(model: Any, tokenizer: Any, folder: Path, quantization: str | None) -> dict[str, Any]:
    """Write ``model`` (loaded, in memory) and its tokenizer as a CTranslate2 model into
    the new folder ``folder``; returns what ``--engine ct2`` needs to know of it."""
    ct2 = ctranslate2()
    from ctranslate2.converters import Converter

    loader = loader_for(model, tokenizer)

    class InMemory(Converter):  # type: ignore[misc]
        def _load(self) -> Any:
            with torch.no_grad():
                spec = loader(model, tokenizer)
            # CTranslate2 requires bos, eos and unk tokens by name; a tokenizer without one
            # (gentool's translator has no bos, a byte-level BPE no unk) names its eos.
            for name in ("bos_token", "eos_token", "unk_token"):
                if getattr(spec.config, name, "") is None:
                    setattr(spec.config, name, tokenizer.eos_token)
            return spec

    InMemory().convert(str(folder), quantization=quantization, force=True)
    tokenizer.save_pretrained(str(folder / "tokenizer"))  # (ct2's config.json is the model's)
    generation = getattr(model, "generation_config", None)
    return {
        "quantization": quantization or "float32",
        "ctranslate2": ct2.__version__,
        "context_length": context_length(model.config),
        "forced_eos": getattr(generation, "forced_eos_token_id", None) is not None,
        "decoder_start_token_id": getattr(model.config, "decoder_start_token_id", None),
    }


# -- running an export -----------------------------------------------------------------------


def threads() -> int:
    """The threads CTranslate2 computes with: those torch is given (--threads, GENTOOL_THREADS)."""
    from gentool import threads as gentool_threads

    gentool_threads.apply(torch)
    return torch.get_num_threads()


def load(kind: type, folder: Path) -> Any:
    """The export ``folder`` as ``kind`` (lm or translator) running on CTranslate2."""
    ct2 = ctranslate2()
    meta = json.loads((folder / runs.EXPORT_FILE).read_text(encoding="utf-8"))  # (api read it)
    if not (folder / "model.bin").is_file() or not (folder / "tokenizer").is_dir():
        raise RunError(
            f"CTranslate2 export '{folder}' is incomplete (model.bin or tokenizer/ missing); "
            "export it again with gentool export RUN --format ct2"
        )
    tokenizer = pretrained_tokenizer(folder / "tokenizer")
    translates = issubclass(kind, Translation)
    engine = ct2.Translator if translates else ct2.Generator
    try:
        network = engine(str(folder), device="cpu", intra_threads=threads())
    except (RuntimeError, ValueError) as err:
        raise RunError(f"CTranslate2 cannot load '{folder}': {err}") from None
    # The kind itself with CTranslate2 doing its task: a subclass made here, so that this
    # module imports neither kind's (they import it when asked to export).
    engine_side = Ct2Translation if translates else Ct2Generation
    made = type(f"Ct2{kind.__name__}", (engine_side, kind), {})
    model = made(None, tokenizer, kind.config_class())
    model.network = network
    model.setup(meta)
    return model


class Ct2Translation:
    """A translator's CTranslate2 export (``--engine ct2``): ``translate`` only."""

    network: Any
    tokenizer: Any

    def setup(self, meta: dict[str, Any]) -> None:
        self.limit = int(meta.get("context_length") or 512)
        self.forced_eos = bool(meta.get("forced_eos"))

    def translate(
        self, texts: Any, request: TranslationRequest, source_cap: bool = False
    ) -> list[str]:
        """As ``marian.translate`` does (the same cut of long sentences, the same length
        limit), with CTranslate2."""
        from gentool_transformer.marian import encode

        out = [""] * len(texts)
        todo = [i for i, text in enumerate(texts) if text.strip()]
        if not todo:
            return out
        limit, tok = self.limit, self.tokenizer
        ids = encode(tok, [texts[i].strip() for i in todo])
        if any(len(x) > limit for x in ids):
            sys.stderr.write(
                f"warning: sentences longer than the model's {limit} tokens were cut to fit\n"
            )
            ids = [x[: limit - 1] + x[-1:] if len(x) > limit else x for x in ids]
        max_new = min(request.max_tokens or limit, limit - 1)
        if source_cap:
            max_new = min(max_new, 2 * max(len(x) for x in ids) + 10)
        # transformers counts the eos it forces at the limit among the new tokens
        length = max_new - 1 if self.forced_eos else max_new
        results = self.network.translate_batch(
            [tok.convert_ids_to_tokens(x) for x in ids],
            beam_size=request.num_beams,
            length_penalty=request.length_penalty,
            max_decoding_length=max(1, length),
        )
        hypotheses = [tok.convert_tokens_to_ids(r.hypotheses[0]) for r in results]
        for i, text in zip(
            todo, tok.batch_decode(hypotheses, skip_special_tokens=True), strict=True
        ):
            out[i] = text.strip()
        return out

    def evaluate_translation(self, source: Path, target: Path) -> dict[str, Any]:
        raise PluginError("evaluate runs the run itself: give the run, not its ct2 export")


class Ct2Generation:
    """A language model's CTranslate2 export (``--engine ct2``): ``generate`` only. Its
    samples stay within the model's context (no sliding window past it)."""

    network: Any
    tokenizer: Any
    suppressed: Any
    generate: Any

    def setup(self, meta: dict[str, Any]) -> None:
        self.positions = int(meta.get("context_length") or 1024)

    @property
    def context(self) -> int:
        return self.positions

    def evaluate_text(self, paths: Any) -> dict[str, Any]:
        raise PluginError("evaluate runs the run itself: give the run, not its ct2 export")

    def generate_batch(self, requests: Any) -> list[list[str]]:
        return [list(self.generate(r)) for r in requests]

    def continue_ids(
        self,
        prompt: list[int],
        request: GenerationRequest,
        streamer: Any = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """``request.num_samples`` continuations of exactly ``max_tokens`` new ids each, as
        the run's ``continue_ids`` (its suppressed tokens, greedy, beams or sampling)."""
        if len(prompt) + request.max_tokens > self.positions:
            raise RecipeError(
                f"--engine ct2 generates within the model's {self.positions} positions: the "
                f"prompt's {len(prompt)} tokens and --max-tokens {request.max_tokens} do "
                "not fit; lower --max-tokens, or generate with the run itself"
            )
        tok = self.tokenizer
        start = tok.convert_ids_to_tokens(prompt)
        options: dict[str, Any] = {
            "max_length": request.max_tokens,
            "min_length": request.max_tokens,
            "include_prompt_in_result": False,
            "repetition_penalty": request.repetition_penalty,
            "suppress_sequences": [[t] for t in tok.convert_ids_to_tokens(self.suppressed())],
        }
        beams = request.num_beams > 1
        if beams:
            options.update(beam_size=request.num_beams, num_hypotheses=request.num_samples)
        elif request.temperature == 0:
            options.update(sampling_topk=1)
        else:
            options.update(
                sampling_topk=request.top_k or 0,
                sampling_topp=request.top_p or 1.0,
                sampling_temperature=request.temperature,
            )
            if request.seed is not None:
                ctranslate2().set_random_seed(request.seed)
        if streamer is not None and not beams:
            streamer.put(torch.tensor(prompt))
            made = []
            del options["include_prompt_in_result"]  # (what it streams is new tokens only)
            for step in self.network.generate_tokens(start, **options):
                made.append(step.token_id)
                streamer.put(torch.tensor([step.token_id]))
            streamer.end()
            return torch.tensor([made])
        if beams:
            result = self.network.generate_batch([start], **options)[0]
            rows = result.sequences_ids
        else:
            results = self.network.generate_batch([start] * request.num_samples, **options)
            rows = [r.sequences_ids[0] for r in results]
        return torch.tensor(rows)
