"""Using a run: load it, and each task's command (generate, translate, restore, transform, evaluate,
info, export) as a function. Every function takes a run directory or an already loaded
model (``RunLike``), so that a caller answering many requests (a server) loads it once."""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from gentool import hub, recipes, runs
from gentool.api import equilibrium, plotting
from gentool.data.text import read_corpus
from gentool.errors import DataError, OutputError, PluginError, RecipeError, RunError
from gentool.kinds import route_record
from gentool.model import Exportable, FromPretrained, GradientFlow, Model
from gentool.plugins import get_registry
from gentool.tasks import (
    Capability,
    GenerationRequest,
    ImageGeneration,
    ImageRestoration,
    ImageScoring,
    ImageTranslation,
    MusicGeneration,
    MusicRequest,
    MusicScoring,
    TextGeneration,
    TextScoring,
    Translation,
    TranslationRequest,
)

RunLike = str | Path | runs.RunDirectory | Model
C = TypeVar("C", bound=Capability)


# -- loading ---------------------------------------------------------------------------------


def load(run: RunLike) -> Model:
    """Open a run directory, verify its files, and load its model with its kind; or load a
    Hugging Face model gentool did not train (``hf:ORG/NAME[@REV]``, a plain ``ORG/NAME``
    that is no local path, or a local model folder: ``gentool.hub``) with the kind that
    runs its architecture (a causal LM generates and scores, a seq2seq model translates)."""
    if isinstance(run, Model):
        return run
    if not isinstance(run, runs.RunDirectory) and hub.is_pretrained(run):
        pretrained = hub.resolve(run)
        if hub.is_run(pretrained.path):  # a run pushed to the Hub: checksums verified
            return load(runs.RunDirectory(pretrained.path))
        return pretrained_kind(pretrained).from_pretrained(pretrained.path, pretrained.source)
    path = run.path if isinstance(run, runs.RunDirectory) else Path(run)
    try:
        run_dir = run if isinstance(run, runs.RunDirectory) else runs.RunDirectory(run)
        kind, raw = kind_of(run_dir)
        run_dir.verify()
        try:
            resolved = recipes.resolve(raw, kind.config_class, kind.train_config_class)
        except RecipeError as err:
            raise _recipe_mismatch(run_dir, err) from None
        model = kind.load(run_dir.path, resolved.model)
        if isinstance(model, TextScoring):  # held-out tables are read as the training rows
            model.text_field = resolved.data.text_field
        return model
    except PermissionError as err:  # a run of another user, not shared with this one
        raise runs.unreadable(Path(err.filename or path), path, err) from None


def kind_of(run: runs.RunDirectory) -> tuple[type[Model], dict[str, Any]]:
    """The kind of model in ``run``, and its recorded recipe ready to resolve. A run of
    format 1 (gentool 0.1) recorded no kind: it is routed as its training was, and keys
    its kind's config no longer has (those of another kind of its family) are dropped."""
    try:
        return route_record(get_registry(), run.meta)
    except (RecipeError, PluginError) as err:
        owners = [k.family for k in get_registry().all_kinds() if k.kind_name() == run.kind]
        if owners and run.family not in owners:
            raise runs.damaged(
                run.path,
                f"{runs.META_FILE} says family '{run.family}' but its recipe is for family "
                f"'{owners[0]}' (a family mismatch)",
            ) from None
        raise runs.damaged(run.path, f"its recipe names no kind of model here ({err})") from None


def pretrained_kind(pretrained: hub.Pretrained) -> type[FromPretrained]:
    """The kind that runs the Hugging Face model ``pretrained``; a PluginError when none
    does (or none is installed: the transformer family needs gentool's neural extra)."""
    for kind in get_registry().all_kinds():
        if issubclass(kind, FromPretrained) and kind.accepts_pretrained(pretrained.config):
            return kind
    model_type = pretrained.config.get("model_type", "unknown")
    raise PluginError(
        f"'{pretrained.source}' is a '{model_type}' model, which no installed kind runs; "
        "gentool runs causal language models (AutoModelForCausalLM) and sequence-to-sequence "
        "models (AutoModelForSeq2SeqLM)"
    )


def _recipe_mismatch(run: runs.RunDirectory, err: RecipeError) -> RunError:
    """A run whose recorded recipe does not fit its kind: say so, and whether it fits
    another family (gentool.json's family was changed: a family mismatch)."""
    for other in get_registry().all_kinds():
        if other.family == run.family:
            continue
        with contextlib.suppress(RecipeError):
            recipes.resolve(run.recipe, other.config_class, other.train_config_class)
            return runs.damaged(
                run.path,
                f"{runs.META_FILE} says family '{run.family}' but its recipe is for family "
                f"'{other.family}' (a family mismatch)",
            )
    return runs.damaged(
        run.path, f"the recipe in its {runs.META_FILE} does not fit family '{run.family}' ({err})"
    )


def require(model: Model, capability: type[C], command: str) -> C:
    """``model`` as a ``capability``, or a PluginError saying what it can do instead."""
    if not isinstance(model, capability):
        can = ", ".join(model.tasks()) or "nothing"
        kind = model.kind_name()
        name = model.family if kind == model.family else f"{model.family} {kind}"
        raise PluginError(f"'{name}' models cannot {command}; they support: {can}")
    return model


# -- generate ---------------------------------------------------------------------------------


def generate(run: RunLike, request: GenerationRequest) -> Iterator[str]:
    """Text samples, each yielded as soon as it is made."""
    return require(load(run), TextGeneration, "generate text").generate(request)


def generate_stream(run: RunLike, request: GenerationRequest) -> Iterator[str]:
    """One text sample in pieces, each yielded as soon as the model makes it (token by
    token for the kinds that can; else the continuation at once): ``request.prompt``
    followed by the pieces is the sample. The run is loaded and checked when this is
    called."""
    return require(load(run), TextGeneration, "generate text").stream(request)


@dataclass(frozen=True)
class ImageOutputs:
    """Where ``generate_images`` writes: one grid, and/or one PNG per sample in a folder."""

    grid: Path | None = None
    out_dir: Path | None = None
    force: bool = False  # replace existing files

    def check(self) -> None:
        """Refuse places that cannot or may not be written, before any work."""
        from gentool.output.images import check_image_name

        if self.grid is not None:
            check_image_name(self.grid)
            runs.check_output_file(self.grid, "--grid", self.force)
        if self.out_dir is not None:
            _check_out_dir(self.out_dir, "sample-*.png", "samples", self.force)


def _check_out_dir(folder: Path, pattern: str, what: str, force: bool) -> None:
    """``--out-dir``: a folder that may be written, and holds no earlier ``pattern`` files
    (``what``: "samples", "pieces") unless ``force``."""
    runs.check_output_folder(folder, "--out-dir")
    existing = sorted(folder.glob(pattern)) if folder.is_dir() else []
    if existing and not force:
        raise OutputError(
            f"'{folder}' already holds {what} ({existing[0].name}); pass --force "
            "to replace them, or choose another --out-dir"
        )


def generate_images(
    run: RunLike, request: GenerationRequest, outputs: ImageOutputs | None = None
) -> tuple[list[Any], list[Path]]:
    """Images as PIL images, and the files written for ``outputs`` (if given)."""
    from gentool.output.images import make_grid, save_image

    if outputs is not None:
        outputs.check()  # before loading: fail at once
    model = require(load(run), ImageGeneration, "generate images")
    images = model.generate_images(request)
    written: list[Path] = []
    if outputs is None:
        return images, written
    with runs.output_files() as files:
        if outputs.grid is not None:
            picture = make_grid(images, columns=request.interpolate or None)
            files.write(outputs.grid, functools.partial(save_image, picture), "--grid")
            written.append(outputs.grid)
        if outputs.out_dir is not None:
            for i, image in enumerate(images):
                path = outputs.out_dir / f"sample-{i:04d}.png"
                files.write(path, functools.partial(save_image, image), "--out-dir")
                written.append(path)
    return images, written


def class_index(run: RunLike, label: str | None) -> int | None:
    """``--class``: a class name the model draws, or a class number; None when not given."""
    if label is None:
        return None
    model = load(run)
    names = model.classes() if isinstance(model, ImageGeneration) else []
    if not names:
        raise PluginError(f"the model in this run is not class-conditional; drop --class {label}")
    if label in names:
        return names.index(label)
    if label.isdigit() and int(label) < len(names):
        return int(label)
    raise PluginError(f"unknown class '{label}'; this model draws: {', '.join(names)}")


@dataclass(frozen=True)
class MusicOutputs:
    """Where ``generate_music`` writes: one ``.mid`` (``output``, one piece) or one per piece
    in ``out_dir``; a piano roll (PNG) and audio (WAV, FluidSynth) of the first piece."""

    output: Path | None = None
    out_dir: Path | None = None
    pianoroll: Path | None = None
    wav: Path | None = None
    force: bool = False

    def check(self, num_samples: int) -> None:
        """Refuse what cannot be written (or rendered), before any work."""
        from gentool.data.music import MUSIC_SUFFIXES
        from gentool.output.images import check_image_name

        if (self.output is None) == (self.out_dir is None):
            raise OutputError("music is written to files: pass -o PIECE.mid or --out-dir DIR")
        if self.output is not None:
            if num_samples > 1:
                raise OutputError(
                    f"-o writes one piece; for -n {num_samples} pass --out-dir DIR instead"
                )
            if not self.output.name.lower().endswith(MUSIC_SUFFIXES):
                raise OutputError(f"'{self.output}' has no MIDI suffix; name it e.g. piece.mid")
            runs.check_output_file(self.output, "--output", self.force)
        if self.out_dir is not None:
            _check_out_dir(self.out_dir, "piece-*.mid", "pieces", self.force)
        if self.pianoroll is not None:
            check_image_name(self.pianoroll)
            runs.check_output_file(self.pianoroll, "--pianoroll", self.force)
        if self.wav is not None:
            from gentool.music.audio import find_synth

            if self.wav.suffix.lower() != ".wav":
                raise OutputError(f"'{self.wav}' has no .wav suffix; name it e.g. piece.wav")
            runs.check_output_file(self.wav, "--wav", self.force)
            find_synth()  # FluidSynth and a soundfont, or how to install them

    def paths(self, count: int) -> list[Path]:
        if self.output is not None:
            return [self.output]
        assert self.out_dir is not None
        return [self.out_dir / f"piece-{i:04d}.mid" for i in range(count)]


def generate_music(
    run: RunLike, request: MusicRequest, outputs: MusicOutputs | None = None
) -> Iterator[tuple[Any, Path | None]]:
    """Pieces (``gentool.data.music.Decoded``: the score, its tokens, what was repaired),
    each with the MIDI file written for it when ``outputs`` are given, as soon as it is made.
    The piano roll and the audio show the first piece."""
    from gentool.data.music import write_midi

    if outputs is not None:
        outputs.check(request.num_samples)  # before loading: fail at once
    model = require(load(run), MusicGeneration, "generate music")
    if request.prompt is not None and not Path(request.prompt).is_file():
        raise DataError(f"--prompt '{request.prompt}' is not a file; give a MIDI file")
    paths = outputs.paths(request.num_samples) if outputs is not None else []
    with runs.output_files() as files:
        for i, piece in enumerate(model.generate_music(request)):
            if outputs is None:
                yield piece, None
                continue
            files.write(paths[i], functools.partial(write_midi, piece.score), "--output")
            if i == 0 and outputs.pianoroll is not None:
                from gentool.music.pianoroll import save_pianoroll

                draw = functools.partial(save_pianoroll, piece.score, title=paths[0].stem)
                files.write(outputs.pianoroll, draw, "--pianoroll")
            if i == 0 and outputs.wav is not None:
                from gentool.music.audio import render_wav

                files.write(outputs.wav, functools.partial(render_wav, piece.score), "--wav")
            yield piece, paths[i]


# -- translate --------------------------------------------------------------------------------


def translate(run: RunLike, texts: Sequence[str], request: TranslationRequest) -> list[str]:
    """One translation per text, in order."""
    return require(load(run), Translation, "translate").translate(list(texts), request)


def translate_stream(
    run: RunLike, stream: IO[bytes], request: TranslationRequest, batch_size: int = 32
) -> Iterator[tuple[str, str]]:
    """(source, translation) for each line of the byte stream ``stream``, in order, as soon
    as each batch is done: a file is translated ``batch_size`` lines at a time, while a slow
    pipe is answered line by line. The run is loaded and checked when this is called, not
    when the first line is asked for."""
    model = require(load(run), Translation, "translate")
    return _translate_batches(model, stdin_batches(stream, batch_size), request)


def _translate_batches(
    model: Translation, batches: Iterator[list[str]], request: TranslationRequest
) -> Iterator[tuple[str, str]]:
    for batch in batches:
        yield from zip(batch, model.translate(batch, request), strict=True)


def stdin_batches(stream: Any, size: int) -> Iterator[list[str]]:
    """Lines of ``stream`` in batches of what is ready at once (at most ``size``)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # an in-memory stream: all of it is ready
        read = iter([stream.read(), b""])
        fd = None
    pending, number = b"", 0
    while chunk := (os.read(fd, 1 << 16) if fd is not None else next(read)):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for start in range(0, len(complete), size):
            yield [_decode(line, number := number + 1) for line in complete[start : start + size]]
    if pending:
        yield [_decode(pending, number + 1)]


def _decode(line: bytes, number: int) -> str:
    try:
        return line.decode("utf-8").removesuffix("\r")
    except UnicodeDecodeError as err:
        raise DataError(
            f"stdin line {number} is not UTF-8 text (byte 0x{line[err.start]:02x}); "
            "convert it, e.g. iconv -f latin1 -t utf-8"
        ) from err


# -- restore ---------------------------------------------------------------------------------


def restore(run: RunLike, source: Path, output: Path, force: bool = False) -> Iterator[Path]:
    """Restore the image ``source`` into ``output``, or every image of the folder ``source``
    into the folder ``output`` (same relative names, as PNG); the iterator writes a file per
    step and yields its path. Every check (and the load) happens when this is called.
    Nothing is written into a run; existing files are replaced only with ``force``."""
    inputs, outputs = _image_outputs(Path(source), Path(output), force)
    model = require(load(run), ImageRestoration, "restore images")
    return _restore_files(model.restore, inputs, outputs, False)


def transform(
    run: RunLike,
    source: Path,
    output: Path,
    force: bool = False,
    reverse: bool = False,
    grid: bool = False,
) -> Iterator[Path]:
    """Translate the image ``source`` (domain A; B with ``reverse``) into ``output``, or a
    folder into a folder, as ``restore`` does; ``grid`` writes each input and its
    translation side by side. Every check (and the load) happens when this is called."""
    inputs, outputs = _image_outputs(Path(source), Path(output), force)
    model = require(load(run), ImageTranslation, "translate images")
    if reverse:  # (refused before any file is written, by the model's own message)
        model.transform([], reverse=True)
    return _restore_files(
        functools.partial(model.transform, reverse=reverse), inputs, outputs, grid
    )


def _image_outputs(source: Path, output: Path, force: bool) -> tuple[list[Path], list[Path]]:
    """The images to read and the files to write for ``restore``/``transform``, checked."""
    from gentool.data.images import image_files
    from gentool.output.images import check_image_name

    if not source.exists():
        raise DataError(f"'{source}' does not exist; give an image or a folder of them")
    if source.is_dir():
        inputs = image_files(source)
        if not inputs:
            raise DataError(f"'{source}' holds no image files; give a folder of PNG/JPEG")
        runs.check_output_folder(output, "--output")
        outputs = [output / p.relative_to(source).with_suffix(".png") for p in inputs]
        for out in outputs:  # a subfolder of the output may link into a run
            runs.check_outside_runs(out, "--output")
    else:
        check_image_name(output)
        runs.check_output_file(output, "--output", force)
        inputs, outputs = [source], [output]
    existing = [p for p in outputs if p.exists() or p.is_symlink()]
    if existing and not force:
        raise OutputError(f"'{existing[0]}' exists; pass --force to overwrite it")
    return inputs, outputs


def _restore_files(
    convert: Callable[[list[Any]], list[Any]], inputs: list[Path], outputs: list[Path],
    grid: bool,
) -> Iterator[Path]:  # fmt: skip
    from gentool.data.images import open_image
    from gentool.output.images import make_grid, save_image

    with runs.output_files() as written:
        for path, out in zip(inputs, outputs, strict=True):
            image = open_image(path)
            (result,) = convert([image])
            if grid:  # input | output, in one mode that holds both
                mode = "RGBA" if "A" in image.mode + result.mode else "RGB"
                result = make_grid([image.convert(mode), result.convert(mode)], columns=2)
            written.write(out, functools.partial(save_image, result), "--output")
            yield out


# -- evaluate, info, export --------------------------------------------------------------------


def evaluate(
    run: RunLike,
    data: Iterable[str | Path] = (),
    source: str | Path | None = None,
    target: str | Path | None = None,
    num_samples: int = 16,
    seed: int = 0,
    bars: int = 16,
    feature_space: str = "classifier",
    feature_weights: str | Path | None = None,
) -> dict[str, Any]:
    """The metrics of the model's task on held-out data: a translator on ``source`` and
    ``target``; an image model, a music model or a language model on ``data`` (a music
    model also generates ``num_samples`` pieces of ``bars`` bars with ``seed``, to compare
    their statistics with the held-out pieces'). Image models compute FID/KID in
    ``feature_space``: "classifier" (the offline default) or "inception" (weights from
    ``feature_weights`` or $GENTOOL_INCEPTION_WEIGHTS)."""
    model = load(run)
    paths = [Path(p) for p in data]
    # the feature space goes only to models asked for it: plugins written before it keep working
    features: dict[str, Any] = {}
    if feature_space != "classifier" or feature_weights is not None:
        if not isinstance(model, ImageTranslation | ImageScoring):
            raise RecipeError(
                "--feature-space and --feature-weights apply to image models (FID/KID); "
                f"this is a {model.kind_name()}: drop them"
            )
        weights = Path(feature_weights) if feature_weights is not None else None
        features = {"feature_space": feature_space, "feature_weights": weights}
    if isinstance(model, ImageTranslation) and source is None and paths:
        target_path = Path(target) if target is not None else None
        return model.evaluate_domains(paths, target_path, **features)
    if source is not None or target is not None:
        if source is None or target is None:
            raise RecipeError("translation is scored on --source and --target together")
        translator = require(model, Translation, "be evaluated on translations")
        return translator.evaluate_translation(Path(source), Path(target))
    if not paths:
        what = "--source and --target" if isinstance(model, Translation) else "--data PATH"
        raise DataError(f"nothing to evaluate on: give {what}")
    if isinstance(model, ImageScoring):
        return model.evaluate_images(paths, **features)
    if isinstance(model, MusicGeneration):
        return evaluate_music(model, paths, num_samples, seed, bars, run)
    return require(model, TextScoring, "be evaluated on text").evaluate_text(paths)


def gradient_flow(
    run: RunLike,
    data: Sequence[str | Path] = (),
    max_distance: int = 64,
    windows: int = 64,
    output: str | Path | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """``gentool evaluate --gradient-flow``: how much the loss at a position depends on the
    input ``k`` steps before it, k = 0 .. ``max_distance`` (``GradientFlow``), averaged
    over ``windows`` windows of held-out text: ``data``, else the text the run held out in
    training (``--val``, or the last ``train.val_fraction`` of its training files). Raises
    ``PluginError`` for a kind without input embeddings (ngram, gan). With ``output`` (a
    .png or .svg, checked before any work) the curve is drawn there too
    (``plot_gradient_flow``; several runs overlaid: call that with each result)."""
    if output is not None:
        plotting.check_figure_output(Path(output), force)
    model = load(run)
    if not isinstance(model, GradientFlow):
        kind = model.kind_name()
        name = model.family if kind == model.family else f"{model.family} {kind}"
        raise PluginError(
            f"'{name}' models have no gradient flow to measure: --gradient-flow "
            "differentiates a text language model's loss with respect to its input "
            "embeddings (the rnn and transformer language models)"
        )
    if data:
        held_out, text, tail = [str(p) for p in data], read_corpus(list(data)), 1.0
    else:
        held_out, text, tail = _held_out_text(run)
    found = model.gradient_flow(text, tail, max_distance, windows)
    where = run.path if isinstance(run, runs.RunDirectory) else run
    result = {
        "run": None if isinstance(where, Model) else str(where),
        "family": model.family,
        "kind": model.kind_name(),
        "cell": model.describe().get("cell"),  # the rnn's: lstm, gru or rnn (tanh)
        "data": held_out,
        **found,
    }
    if output is not None:
        plotting.plot_gradient_flow([result], output, force=True)  # (checked above)
    return result


def _held_out_text(run: RunLike) -> tuple[Any, str, float]:
    """The text a run held out in training, as (what it is, text, the share at its end)."""
    if isinstance(run, Model) or (
        not isinstance(run, runs.RunDirectory) and hub.is_pretrained(run)
    ):
        raise DataError("this model records no held-out text: give held-out text with --data")
    run_dir = run if isinstance(run, runs.RunDirectory) else runs.RunDirectory(run)
    recipe = run_dir.recipe
    data, train = recipe.get("data", {}), recipe.get("train", {})
    field = data.get("text_field")
    paths = [Path(data["val"])] if data.get("val") else [Path(p) for p in data.get("train", [])]
    tail = 1.0 if data.get("val") else float(train.get("val_fraction", 0.0))
    if not paths or tail <= 0:
        raise DataError(
            f"'{run_dir.path}' held out no text in training (train.val_fraction = 0); "
            "give held-out text with --data"
        )
    for path in paths:
        if not path.is_file():
            raise DataError(
                f"the run's held-out text is in '{path}', which is no longer there; "
                "give held-out text with --data"
            )
    held_out = {"files": [str(p) for p in paths], "tail": tail}
    return held_out, read_corpus(paths, field), tail


def evaluate_music(
    run: RunLike,
    paths: Sequence[Path],
    num_samples: int = 16,
    seed: int = 0,
    bars: int = 16,
    record: RunLike | None = None,
) -> dict[str, Any]:
    """A music model on held-out MIDI: the cross-entropy and perplexity of their tokens
    (kinds that score music), and the statistics of ``num_samples`` generated pieces of
    ``bars`` bars against theirs (gentool.music.compose.compare); copying is measured
    against the run's training pieces when they are still where the run recorded them
    (``record``: the run directory, when ``run`` is a loaded model)."""
    from gentool.music.compose import compare, read_pieces

    model = require(load(run), MusicGeneration, "generate music")
    tokenizer = model.music_tokenizer()
    held_out = read_pieces(paths, tokenizer)
    metrics: dict[str, Any] = {}
    if isinstance(model, MusicScoring):
        metrics.update(model.evaluate_music(paths))
    request = MusicRequest(num_samples=num_samples, seed=seed, bars=bars)
    generated = list(model.generate_music(request))
    training = None
    record = record if record is not None else run  # (the run's directory: its training data)
    if not isinstance(record, Model):
        directory = record if isinstance(record, runs.RunDirectory) else runs.RunDirectory(record)
        train = [Path(p) for p in directory.recipe.get("data", {}).get("train", [])]
        if train and all(p.exists() for p in train):
            training = read_pieces(train, tokenizer)
    metrics.update(compare(generated, held_out, training))
    return metrics


def info(
    run: str | Path | runs.RunDirectory,
    data: Sequence[str | Path] = (),
    plot: str | Path | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """What the run is: gentool.json (without the file list) and the model's own facts;
    for a Hugging Face model, where it comes from (``source``, ``revision`` or ``sha256``);
    with ``data``, what the model says of held-out data under ``"heldout"``; for a GAN,
    whether its training settled under ``"equilibrium"`` (gentool.api.equilibrium).
    ``plot`` (a .png or .svg, checked first): an ngram run's growth drawn there
    (``plotting.plot_ngram_growth``); any other kind is a PluginError."""
    if plot is not None:
        plotting.check_figure_output(Path(plot), force)
        found = info(run, data)
        if not isinstance(found.get("model", {}).get("ngrams"), list):
            raise PluginError(
                f"'{found['family']}' models have no n-gram table to draw; "
                "--plot draws an ngram run's growth with the order"
            )
        plotting.plot_ngram_growth(found, plot, force=True)  # (checked above)
        return found
    if not isinstance(run, runs.RunDirectory) and hub.is_pretrained(run):
        pretrained = hub.resolve(run)
        if hub.is_run(pretrained.path):
            return {**info(runs.RunDirectory(pretrained.path)), "run": str(run)}
        model = pretrained_kind(pretrained).from_pretrained(pretrained.path, pretrained.source)
        return {
            "run": str(run),
            "family": model.family,
            "kind": model.kind_name(),
            "tasks": list(model.tasks()),
            "pretrained": pretrained.lineage(),
            "model": model.describe(),
        }
    run_dir = run if isinstance(run, runs.RunDirectory) else runs.RunDirectory(run)
    model = load(run_dir)
    details = {k: v for k, v in run_dir.meta.items() if k != "files"}
    facts = model.describe()
    if isinstance(model, MusicGeneration):  # what its tokens are, for every music kind
        from gentool.music.compose import music_facts

        facts["music_tokenizer"] = music_facts(model.music_tokenizer())
    found = {"run": str(run_dir.path), **details, "model": facts}
    logged = plotting.read_run(run_dir.path)["series"]
    if "d_real" in logged:  # a GAN: did D(x) and D(G(z)) settle, did diversity collapse?
        loss = run_dir.recipe.get("model", {}).get("loss", "nonsaturating")
        found["equilibrium"] = equilibrium.summary(logged, probabilities=loss == "nonsaturating")
    if data:
        paths = [Path(p) for p in data]
        found["heldout"] = {"data": [str(p) for p in paths], **model.describe_heldout(paths)}
    return found


def export(
    run: RunLike,
    fmt: str,
    output: str | Path,
    force: bool = False,
    quantization: str | None = None,
) -> Path:
    """Write the model in ``run`` in a foreign format to ``output``: a file (ARPA) or a
    folder (a CTranslate2 model, a merged Hugging Face model); never into a run directory,
    an existing file or export folder only with ``force``, atomically (a failure leaves the
    old output, or none). ``quantization``: the weight type of a format that takes one
    (CTranslate2's int8, float16 ...)."""
    output = Path(output)
    with contextlib.suppress(RunError, RecipeError, PluginError, OSError):  # (load says why)
        if isinstance(run, Model):
            known: type = type(run)
        else:
            known = kind_of(run if isinstance(run, runs.RunDirectory) else runs.RunDirectory(run))[
                0
            ]
        _check_export_output(known, fmt, output, force)  # before loading: fail at once
    model = load(run)
    formats = model.export_formats if isinstance(model, Exportable) else ()
    if fmt not in formats:
        valid = ", ".join(formats) or "none"
        raise PluginError(f"'{model.family}' models cannot export '{fmt}'; they export: {valid}")
    assert isinstance(model, Exportable)
    if quantization is not None and fmt not in model.quantized_formats:
        takes = ", ".join(model.quantized_formats) or "no format"
        raise RecipeError(
            f"--quantization is for {takes} ('{model.family}' models); drop it for '{fmt}'"
        )
    _check_export_output(type(model), fmt, output, force)
    with runs.output_files() as written:
        if fmt in model.folder_formats:
            write = functools.partial(model.export, fmt, quantization=quantization)
            written.write_folder(output, write, "--output")
        else:
            written.write(output, lambda path: model.export(fmt, path), "--output")
    return output


def _check_export_output(kind: type, fmt: str, output: Path, force: bool) -> None:
    """``output`` may be written: a folder for the kind's folder formats, else a file."""
    if fmt in getattr(kind, "folder_formats", ()):
        runs.check_output_export(output, "--output", force)
    else:
        runs.check_output_file(output, "--output", force)


ENGINES = ("run", "ct2")  # --engine: the run's own model, or its CTranslate2 export


def load_engine(run: RunLike, engine: str = "run") -> Model:
    """``load(run)``, or with another ``engine`` (ct2) the export folder ``run`` that
    ``gentool export --format ENGINE`` wrote, loaded by the kind it came from."""
    if engine == "run" or isinstance(run, Model):
        return load(run)
    folder = run.path if isinstance(run, runs.RunDirectory) else Path(run)
    record = folder / runs.EXPORT_FILE
    make = f"make one with 'gentool export RUN --format {engine} -o DIR' and pass DIR"
    if runs.is_run_directory(folder):
        raise RunError(f"'{folder}' is a run, not a {engine} export: {make}")
    try:
        meta = json.loads(record.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(
            f"'{folder}' is not a {engine} export (it has no {runs.EXPORT_FILE}): {make}"
        ) from None
    except (OSError, ValueError) as err:
        raise RunError(f"'{record}' cannot be read ({err}): {make} again") from None
    fmt = meta.get("format") if isinstance(meta, dict) else None
    if fmt != engine:
        raise RunError(f"'{folder}' is an export in format '{fmt}', not {engine}: {make}")
    try:
        named = {"family": str(meta.get("family")), "kind": str(meta.get("kind"))}
        kind, _ = route_record(get_registry(), named)
    except (PluginError, RecipeError) as err:
        raise RunError(f"export '{folder}': {err}") from None
    if not issubclass(kind, Exportable) or engine not in kind.engine_formats:
        raise PluginError(f"'{kind.kind_name()}' models do not run with --engine {engine}")
    return kind.load_export(engine, folder)


__all__ = [
    "ImageOutputs",
    "MusicOutputs",
    "evaluate_music",
    "generate_music",
    "RunLike",
    "class_index",
    "evaluate",
    "ENGINES",
    "export",
    "generate",
    "generate_images",
    "generate_stream",
    "gradient_flow",
    "info",
    "kind_of",
    "load",
    "load_engine",
    "pretrained_kind",
    "require",
    "restore",
    "transform",
    "stdin_batches",
    "translate",
    "translate_stream",
]
