"""Greedy translation through gentool translate (transformers) against its CTranslate2
export (``--engine ct2``, float32 and int8): sentences/s and BLEU in one run; a table.

    OMP_NUM_THREADS=1 python benchmarks/ct2_translate.py RUN \\
        [--source ../shared/data/multi30k/test_2016_flickr.en.gz] [--sentences 1000]

RUN is a transformer translator run (the ``transformer-multi30k-en-de`` recipe's). The
script exports it with ``api.export(RUN, "ct2", ...)`` (float32, and ``--quantization
int8``) into a temporary folder, then translates the first ``--sentences`` sentences of
``--source`` with each engine through ``api.translate_stream``, the code path of ``gentool
translate [--engine ct2] < FILE`` (batches of 32 lines, greedy: ``--beam 1``). Timed is the
translation alone; loading the model is reported apart. BLEU is sacrebleu's corpus BLEU
(cased, 13a) against ``--target``; "same as transformers" counts identical outputs.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]
MULTI30K = REPO.parent / "shared" / "data" / "multi30k"

from engine import cpu_description  # noqa: E402  (benchmarks/engine.py)


def read_lines(path: Path, n: int) -> list[str]:
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line, _ in zip(f, range(n), strict=False)]


def translate(run: Any, engine: str, sources: list[str]) -> dict[str, Any]:
    from gentool import api
    from gentool.tasks import TranslationRequest

    started = time.perf_counter()
    model = api.load_engine(run, engine)
    loaded = time.perf_counter()
    stream = io.BytesIO(("\n".join(sources) + "\n").encode())
    request = TranslationRequest(num_beams=1)
    outputs = [out for _, out in api.translate_stream(model, stream, request, batch_size=32)]
    seconds = time.perf_counter() - loaded
    return {"outputs": outputs, "seconds": seconds, "load_s": loaded - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--source", type=Path, default=MULTI30K / "test_2016_flickr.en.gz")
    parser.add_argument("--target", type=Path, default=MULTI30K / "test_2016_flickr.de.gz")
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args()

    import ctranslate2
    import sacrebleu
    import torch

    from gentool import api, threads

    threads.apply(torch)
    model_name, flags = cpu_description()
    print(f"cpu: {model_name}, {os.cpu_count()} cores; torch {torch.__version__}, "
          f"ctranslate2 {ctranslate2.__version__}")  # fmt: skip
    print(f"lscpu flags: {flags}")
    print(f"threads: torch {torch.get_num_threads()} and CTranslate2's intra_threads the same "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); greedy, batches of "
          "32")  # fmt: skip
    sources = read_lines(args.source, args.sentences)
    targets = read_lines(args.target, args.sentences)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        exports = {"float32": Path(tmp) / "ct2", "int8": Path(tmp) / "ct2-int8"}
        for quantization, folder in exports.items():
            api.export(args.run, "ct2", folder, quantization=quantization)
        cases = [("transformers", "run", args.run)] + [
            (f"ct2 {q}", "ct2", folder) for q, folder in exports.items()
        ]
        reference: list[str] = []
        for name, engine, where in cases:
            found = translate(where, engine, sources)
            outputs = found["outputs"]
            reference = reference or outputs
            bleu = sacrebleu.metrics.BLEU().corpus_score(outputs, [targets]).score
            same = sum(a == b for a, b in zip(outputs, reference, strict=True))
            size = sum(p.stat().st_size for p in Path(where).glob("*.bin"))
            size = size or (Path(where) / "model.safetensors").stat().st_size
            rows.append({
                "engine": name,
                "sentences": len(outputs),
                "sentences_per_s": len(outputs) / found["seconds"],
                "seconds": found["seconds"],
                "load_s": found["load_s"],
                "bleu": bleu,
                "same_as_transformers": same,
                "model_mb": size / 1e6,
            })  # fmt: skip
    base = rows[0]["sentences_per_s"]
    print("| engine | sentences/s | speed-up | BLEU | same output as transformers | load s "
          "| model MB |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['engine']} | {row['sentences_per_s']:.1f} "
              f"| {row['sentences_per_s'] / base:.2f}x | {row['bleu']:.2f} "
              f"| {row['same_as_transformers']}/{row['sentences']} | {row['load_s']:.1f} "
              f"| {row['model_mb']:.1f} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"cpu": model_name, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
