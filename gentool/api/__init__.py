"""The Python API: every command of the ``gentool`` command line is one function here, and
the CLI only parses its options and prints the result (docs/api.md)::

    from gentool import api
    from gentool.tasks import GenerationRequest

    run = api.train("ngram", overrides=["model.order=4"], out="runs/ng4")
    for sample in api.generate(run.path, GenerationRequest(num_samples=2, seed=1)):
        print(sample)

Functions that use a run take a run directory or a model ``api.load`` returned, so that a
caller answering many requests (a server) loads each model once.
"""

from gentool.api.catalog import models, plugins, recipes
from gentool.api.training import ParallelPaths, import_model, model_card, plan, train
from gentool.api.using import (
    ImageOutputs,
    RunLike,
    class_index,
    evaluate,
    export,
    generate,
    generate_images,
    info,
    kind_of,
    load,
    require,
    restore,
    stdin_batches,
    transform,
    translate,
    translate_stream,
)

__all__ = [
    "ImageOutputs",
    "ParallelPaths",
    "RunLike",
    "class_index",
    "evaluate",
    "export",
    "generate",
    "generate_images",
    "import_model",
    "info",
    "kind_of",
    "load",
    "model_card",
    "models",
    "plan",
    "plugins",
    "recipes",
    "require",
    "restore",
    "stdin_batches",
    "train",
    "transform",
    "translate",
    "translate_stream",
]
