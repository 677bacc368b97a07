"""``gentool export`` for the transformer kinds (lm and translator), and ``--engine ct2``.

Two formats, each a folder:

- ``ct2``: a CTranslate2 model (model.bin, its config.json and vocabulary) with the run's
  tokenizer files and ``gentool-export.json`` (the kind, the context length: what the
  engine needs to tokenize and decode as the run does). ``gentool translate DIR --engine
  ct2`` and ``gentool generate DIR --engine ct2`` run it (``ct2.Ct2Translator``,
  ``ct2.Ct2LanguageModel``); greedy and beam search give the run's own outputs.
- ``merged``: a LoRA run's adapter merged into its base model (peft's merge_and_unload,
  done when the run loads), saved as a plain Hugging Face folder: it loads with
  ``AutoModelFor*.from_pretrained`` and wherever gentool takes a Hugging Face model.

This module imports neither torch nor ctranslate2 at its top (a kind's module must not).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from gentool import runs
from gentool.errors import PluginError
from gentool.model import Exportable

if TYPE_CHECKING:
    from gentool.model import Model


class TransformerExports(Exportable):
    """The export formats of the transformer lm and translator (mixed into the kinds)."""

    export_formats: ClassVar[tuple[str, ...]] = ("ct2", "merged")
    folder_formats: ClassVar[tuple[str, ...]] = ("ct2", "merged")
    quantized_formats: ClassVar[tuple[str, ...]] = ("ct2",)
    engine_formats: ClassVar[tuple[str, ...]] = ("ct2",)

    # (set by HFModel: the network, its tokenizer, whether it was a LoRA adapter)
    model: Any
    tokenizer: Any
    config: Any
    adapter: bool

    def export(self, fmt: str, path: Path, quantization: str | None = None) -> None:
        if fmt == "merged":
            if not self.adapter:
                raise PluginError(
                    "--format merged is for a LoRA run (train.lora_rank): this run holds a "
                    "whole model already, whose folder loads with from_pretrained as it is"
                )
            self.model.save_pretrained(str(path))
            self.tokenizer.save_pretrained(str(path))
            record: dict[str, Any] = {}
        else:
            from gentool_transformer.ct2 import convert

            record = convert(self.model, self.tokenizer, path, quantization)
        family, kind = type(self).family, type(self).kind_name()  # type: ignore[attr-defined]
        runs.write_json(
            path / runs.EXPORT_FILE,
            {"format": fmt, "family": family, "kind": kind, "base": self.config.init or None,
             **record},
        )  # fmt: skip

    @classmethod
    def load_export(cls, fmt: str, folder: Path) -> Model:
        from gentool_transformer.ct2 import load

        return load(cls, folder)
