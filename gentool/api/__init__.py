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
from gentool.api.comparing import compare
from gentool.api.plotting import curves, plot, plot_gradient_flow
from gentool.api.publishing import push
from gentool.api.training import ParallelPaths, import_model, model_card, plan, train
from gentool.api.using import (
    ENGINES,
    ImageOutputs,
    MusicOutputs,
    RunLike,
    class_index,
    evaluate,
    evaluate_music,
    export,
    generate,
    generate_images,
    generate_music,
    generate_stream,
    gradient_flow,
    info,
    kind_of,
    load,
    load_engine,
    require,
    restore,
    stdin_batches,
    transform,
    translate,
    translate_stream,
)
from gentool.threads import set_threads  # --threads N: torch's threads for what follows

__all__ = [
    "ENGINES",
    "ImageOutputs",
    "MusicOutputs",
    "evaluate_music",
    "generate_music",
    "ParallelPaths",
    "RunLike",
    "class_index",
    "compare",
    "curves",
    "evaluate",
    "export",
    "generate",
    "generate_images",
    "generate_stream",
    "gradient_flow",
    "import_model",
    "info",
    "kind_of",
    "load",
    "load_engine",
    "model_card",
    "models",
    "plan",
    "plot",
    "plot_gradient_flow",
    "plugins",
    "push",
    "recipes",
    "require",
    "restore",
    "set_threads",
    "stdin_batches",
    "train",
    "transform",
    "translate",
    "translate_stream",
]
