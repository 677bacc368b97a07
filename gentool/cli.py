"""The gentool command line: parse, call ``gentool.api``, print. Nothing else lives here.

Results go to stdout, progress and warnings to stderr. A ``GentoolError`` raised anywhere
becomes one ``Error: ...`` line and exit code 1, here and only here (``GentoolGroup``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import signal
import sys
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from gentool import __version__, api
from gentool.errors import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, GentoolError
from gentool.model import DEFAULT_MEMORY, Runtime
from gentool.options import (
    SEED,
    ByteSize,
    FiniteFloatRange,
    checked_stdout,
    complete_families,
    complete_recipes,
    complete_runs,
    engine_option,
    format_size,
    json_option,
    print_json,
    print_json_list,
    print_table,
    run_argument,
    sampling_options,
    threads_option,
)
from gentool.output import files
from gentool.runs import RunDirectory, dumps_json
from gentool.tasks import (
    GENERATE_IMAGE,
    RESTORE_IMAGE,
    TRANSLATE,
    TRANSLATE_IMAGE,
    GenerationRequest,
    ImageGeneration,
    MusicGeneration,
    MusicRequest,
    TranslationRequest,
)


def log(message: str) -> None:
    click.echo(message, err=True)


class GentoolGroup(click.Group):
    """The top-level group: adds plugin commands lazily and converts errors at one place."""

    _plugins_added = False

    def _add_plugin_commands(self) -> None:
        if not self._plugins_added:
            self._plugins_added = True
            from gentool.plugins import add_plugin_commands

            add_plugin_commands(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            self._add_plugin_commands()
            command = super().get_command(ctx, cmd_name)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with checked_stdout():
                return super().invoke(ctx)
        except GentoolError as err:
            raise click.ClickException(str(err)) from err
        except BrokenPipeError:
            # stdout's reader has gone (`gentool generate ... | head -1`): stop now, quietly,
            # with the status a shell reports for any tool that SIGPIPE ended.
            ctx.exit(EXIT_BROKEN_PIPE)
        except OSError as err:
            if err.errno not in _MACHINE_ERRORS:
                raise
            raise click.ClickException(_machine_error(err)) from err
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)


# The machine's refusals, wherever they strike (a metrics line on a full disk, a data file
# another user owns): said in one line, never a traceback. Each write gentool makes turns
# them into a GentoolError of its own, with what was kept; this is the net under them.
_MACHINE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _machine_error(err: OSError) -> str:
    name = f"'{err.filename}'" if err.filename else "a file"
    if err.errno in (errno.EACCES, errno.EPERM):
        return f"cannot use {name}: permission denied; check its permissions (ls -l)"
    return f"cannot write {name}: {files.reason(err)}; {files.remedy(err)}"


@click.group(cls=GentoolGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gentool")
def cli() -> None:
    """Train and sample generative models from the shell.

    \b
    Quick start:
      gentool train ngram                  # trains on the embedded sample text
      gentool generate runs/ngram -n 3 --seed 1

    Exit codes: 0 success, 1 an error explained in one 'Error:' line,
    2 command-line misuse, 130 interrupted.
    """


# -- what is installed --------------------------------------------------------------------


@cli.command()
@json_option
def plugins(as_json: bool) -> None:
    """List installed plugins, their hooks, and load errors.

    \b
    Example:
      gentool plugins --json
    """
    infos = api.plugins()
    if as_json:
        print_json(infos)
        return
    rows = [
        [p["name"], p["distribution"], p["version"], ",".join(p["hooks"]) or "-", _status(p)]
        for p in infos
    ]
    print_table(rows, ["plugin", "distribution", "version", "hooks", "status"])


def _status(plugin: dict[str, Any]) -> str:
    if plugin["error"]:
        return str(plugin["error"])
    refused = len(plugin["refused"])
    return f"ok ({refused} kind{'s' if refused > 1 else ''} refused)" if refused else "ok"


@cli.command()
@json_option
def models(as_json: bool) -> None:
    """List the kinds of model of each family, and the tasks each can do.

    A family (what you type: gentool train transformer) may have several kinds of model
    (transformer: lm and translator); the data and the recipe choose one (see
    docs/plugins.md, "How a kind is chosen").

    \b
    Example:
      gentool models
      gentool models --json
    """
    found = api.models()
    if as_json:
        print_json(found)
        return
    print_table(
        [[f["family"], f["kind"], ",".join(f["tasks"]), f["description"]] for f in found],
        ["family", "kind", "tasks", "description"],
    )


@cli.command("recipes")
@json_option
def list_recipes(as_json: bool) -> None:
    """List the recipes shipped with gentool.

    \b
    Example:
      gentool recipes
      gentool train --recipe ngram-shakespeare-word3 --data input.txt
    """
    found = api.recipes()
    if as_json:
        print_json(found)
        return
    print_table(
        [[r["name"], r["family"], r["description"]] for r in found],
        ["recipe", "family", "description"],
    )


# -- training -------------------------------------------------------------------------------


@cli.command()
@click.argument("family", required=False, shell_complete=complete_families)
@click.option(
    "--recipe",
    "-r",
    metavar="FILE|NAME|RUN",
    shell_complete=complete_recipes,
    help="A TOML recipe, a shipped one's name, or a run directory to train again.",
)
@click.option(
    "--data",
    "-d",
    multiple=True,
    metavar="PATH",
    help=(
        "Training data (repeatable): text (.txt, .gz), a table (.jsonl, .parquet, .csv; "
        "field: --set data.text_field=NAME), a save_to_disk folder or hf:NAME[:CONFIG][:SPLIT]; "
        "default: the family's embedded sample."
    ),
)
@click.option("--val", metavar="PATH", help="Held-out data, evaluated after training.")
@click.option("--source", metavar="PATH", help="Parallel data: source sentences, one per line.")
@click.option(
    "--target",
    metavar="PATH",
    help="Parallel data: their translations, aligned; image translators: the B images.",
)
@click.option("--val-source", metavar="PATH", help="Held-out parallel data: source side.")
@click.option("--val-target", metavar="PATH", help="Held-out parallel data: target side.")
@click.option(
    "--init",
    metavar="SOURCE",
    help="Start from a pretrained model: a run of the same kind, a Hugging Face model "
    "folder, or a Hub id (hf:ORG/NAME[@REVISION]); its sizes and tokenizer are kept.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="Override a recipe value, e.g. --set model.order=5 (repeatable).",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    help="Run directory to write [default: runs/FAMILY].",
)
@click.option("--force", is_flag=True, help="Replace an existing run directory.")
@click.option("--seed", type=SEED, help="Random seed [default: the recipe's, or 0].")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the latest checkpoint of the run at --out (or runs/FAMILY).",
)
@click.option(
    "--override", is_flag=True, help="With --resume: accept changes to the recorded recipe."
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda", "mps"]),
    default="auto",
    show_default=True,
    help="Where neural families train (auto: the best present).",
)
@click.option(
    "--mixed-precision",
    type=click.Choice(["no", "auto", "bf16", "fp16"]),
    help="Neural families: autocast precision; auto: bf16 on a GPU or CPU with native bf16 "
    "(AVX512-BF16, AMX), else float32 [default: the recipe's].",
)
@click.option(
    "--log-with",
    multiple=True,
    metavar="TRACKER",
    help="Also log metrics to an accelerate tracker, e.g. tensorboard (repeatable).",
)
@click.option(
    "--memory",
    type=ByteSize(),
    default=format_size(DEFAULT_MEMORY),
    show_default=True,
    help="Working memory for counting n-grams (K, M, G); more data is sorted on disk.",
)
@threads_option
@json_option
def train(
    family: str | None,
    recipe: str | None,
    data: tuple[str, ...],
    val: str | None,
    source: str | None,
    target: str | None,
    val_source: str | None,
    val_target: str | None,
    init: str | None,
    overrides: tuple[str, ...],
    out: Path | None,
    force: bool,
    seed: int | None,
    resume: bool,
    override: bool,
    device: str,
    mixed_precision: str | None,
    log_with: tuple[str, ...],
    memory: int,
    as_json: bool,
) -> None:
    """Train a model of FAMILY (or the recipe's) and write a run directory.

    Neural families train with accelerate and write checkpoints to RUN/checkpoints; the
    same command trains on several processes under torchrun or accelerate launch.
    Ctrl-C writes a checkpoint and exits 130; --resume continues it. ngram trains in one
    pass, without checkpoints: Ctrl-C leaves nothing, and it is trained again. Off a
    terminal, progress is a plain line every 30 seconds.

    After the last step: the loss over the whole validation split, then (a translator)
    validation BLEU with beam search over the first train.bleu_pairs pairs (200; 0 skips
    it), then the run is saved with its model card (text families generate its samples).

    --recipe also takes a run directory: its recorded recipe and data, to train it again.

    \b
    Examples:
      gentool train ngram
      gentool train ngram --data corpus.txt --set model.order=5 --out runs/ng5
      gentool train ngram --data big.txt.gz --set model.tokens=whitespace --memory 4G
      gentool train rnn --data hf:NAME:CONFIG:train --set data.text_field=text
      gentool train --recipe recipes/ngram-shakespeare-word3.toml --data input.txt
      gentool train rnn --data input.txt --set train.max_steps=2000 --mixed-precision auto
      gentool train transformer --source train.en.gz --target train.de.gz \
          --val-source val.en.gz --val-target val.de.gz
      gentool train gan --data mnist/t10k-images-idx3-ubyte.gz
      gentool train gan --set model.task=paired --data silhouettes/ --target colour/
      gentool train --resume --out runs/rnn
      gentool train --recipe runs/rnn --out runs/rnn-again
      gentool train transformer --init hf:openai-community/gpt2 --data input.txt
      gentool train transformer --init hf:Helsinki-NLP/opus-mt-en-de \
          --source train.en --target train.de --out runs/en-de-tuned
      torchrun --nproc-per-node 2 -m gentool train rnn --data input.txt
    """
    if mixed_precision is not None:
        overrides = (*overrides, f"train.mixed_precision={mixed_precision}")
    run = api.train(
        family,
        recipe=recipe,
        overrides=overrides,
        data=data,
        val=val,
        seed=seed,
        out=out,
        force=force,
        resume=resume,
        override=override,
        runtime=Runtime(device=device, log_with=log_with, memory=memory),  # type: ignore[arg-type]
        log=log,
        parallel=api.ParallelPaths(source, target, val_source, val_target),
        init=init,
    )
    if run is None:  # not the main process of a multi-process run: it writes nothing
        return
    if as_json:
        print_json(
            {
                "run": str(run.path),
                "family": run.family,
                "kind": run.kind,
                "metrics": run.meta.get("metrics", {}),
            }
        )
    else:
        log(f"wrote {run.path}; try: {_next_command(run)}")
        click.echo(str(run.path))


def _next_command(run: RunDirectory) -> str:
    """What to try with a new run, by what its model does."""
    tasks = run.meta.get("tasks", [])
    if TRANSLATE in tasks:
        return f'gentool translate {run.path} "A sentence to translate."'
    if RESTORE_IMAGE in tasks:
        return f"gentool restore {run.path} IMAGE -o OUTPUT.png"
    if TRANSLATE_IMAGE in tasks:
        return f"gentool transform {run.path} IMAGE -o OUTPUT.png"
    if GENERATE_IMAGE in tasks:
        return f"gentool generate {run.path} -n 16 --grid samples.png"
    return f"gentool generate {run.path}"


@cli.command("import")
@click.argument("family")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--format", "fmt", help="The file's format [default: from its suffix].")
@click.option(
    "--out", "-o", type=click.Path(path_type=Path), required=True, help="Run directory to write."
)
@click.option("--force", is_flag=True, help="Replace an existing run directory.")
@json_option
def import_(
    family: str, path: Path, fmt: str | None, out: Path, force: bool, as_json: bool
) -> None:
    """Make a run directory from a model in another tool's format.

    \b
    Example (sample from a KenLM model):
      gentool import ngram model.arpa --out runs/kenlm
      gentool generate runs/kenlm --seed 1
    """
    run = api.import_model(family, path, fmt or path.suffix.lstrip("."), out, force)
    if as_json:
        print_json({"run": str(run.path), "family": run.family, "kind": run.kind})
    else:
        click.echo(str(run.path))


# -- using a run ------------------------------------------------------------------------------


@cli.command()
@run_argument
@sampling_options
@click.option(
    "--repetition-penalty",
    type=FiniteFloatRange(min=0.0, min_open=True),
    default=1.0,
    show_default=True,
    help="Above 1 discourages repeating tokens (families that support it).",
)
@click.option(
    "--class",
    "class_label",
    metavar="LABEL",
    help="Conditional image models: the class to draw (its name or number).",
)
@click.option(
    "--grid",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Image models: write the samples as one grid image (PNG).",
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Image models: one PNG per sample; music models: one .mid per piece, in this folder.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Music models: write the piece to this MIDI file (.mid).",
)
@click.option(
    "--bars",
    type=click.IntRange(min=1),
    help="Music models: pieces of N bars (after the prompt's) instead of --max-tokens.",
)
@click.option(
    "--prompt-bars",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Music models: how many bars of the --prompt MIDI file each piece continues.",
)
@click.option(
    "--pianoroll",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Music models: also draw the (first) piece as a piano roll (PNG).",
)
@click.option(
    "--wav",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Music models: also render the (first) piece as audio (FluidSynth).",
)
@click.option(
    "--interpolate",
    type=click.IntRange(min=2),
    help="Image models: each sample becomes a latent walk of N frames (a grid row).",
)
@click.option("--force", is_flag=True, help="Replace existing output files (images, music).")
@threads_option
@engine_option
@click.option("--stream", is_flag=True, help="Text: print one sample as it is made.")
@click.option(
    "--interactive",
    "-i",
    is_flag=True,
    help="Text: keep the model loaded and answer each line typed (Ctrl-D ends).",
)
@json_option
@click.pass_context
def generate(
    ctx: click.Context,
    run: str,
    prompt: str,
    num_samples: int,
    max_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    num_beams: int,
    seed: int | None,
    repetition_penalty: float,
    class_label: str | None,
    grid: Path | None,
    out_dir: Path | None,
    interpolate: int | None,
    output: Path | None,
    bars: int | None,
    prompt_bars: int,
    pianoroll: Path | None,
    wav: Path | None,
    force: bool,
    engine: str,
    stream: bool,
    interactive: bool,
    as_json: bool,
) -> None:
    """Sample from the model in RUN: text, images (--grid / --out-dir), or music (-o /
    --out-dir; --prompt is then a MIDI file whose first --prompt-bars bars it continues).
    The gan's music model draws phrases from noise instead: --temperature scales the noise,
    and it continues no --prompt.

    RUN may also be a Hugging Face model: hf:ORG/NAME[@REVISION], ORG/NAME, or a local
    model folder (safetensors only; see docs/cli.md).

    Images are never written into a run directory, and replace existing files only with
    --force.

    \b
    Examples:
      gentool generate runs/ngram --seed 1
      gentool generate runs/ngram --prompt "I would" -n 5 --temperature 0.8 --top-k 40
      gentool generate runs/rnn --prompt "ROMEO:" --beams 4 --max-tokens 60
      gentool generate runs/transformer --prompt "ROMEO:" --repetition-penalty 1.2
      gentool generate runs/ngram --prompt "The" --stream --max-tokens 40
      gentool generate runs/transformer --interactive --max-tokens 80
      gentool generate runs/gan -n 64 --grid grid.png --seed 1
      gentool generate runs/gan --class 3 -n 8 --out-dir threes/
      gentool generate runs/gan -n 4 --interpolate 8 --grid walk.png
      gentool generate runs/gan -n 64 --grid grid.png --seed 2 --force
      gentool generate runs/chorales -o piece.mid --bars 8 --seed 1 --pianoroll piece.png
      gentool generate runs/chorales -n 4 --out-dir pieces/ --temperature 0.9 --top-p 0.95
      gentool generate runs/chorales --prompt bwv10.7.mid --bars 8 -o more.mid --wav more.wav
      gentool generate runs/chorales-gan -n 4 --out-dir phrases/ --bars 8 --temperature 0.8
      gentool generate hf:openai-community/gpt2 --prompt "Hello," --seed 1
      gentool generate lm-ct2 --engine ct2 --prompt "ROMEO:" --temperature 0

    With --engine ct2, RUN is the folder `gentool export RUN --format ct2 -o DIR` wrote
    (greedy and beam search give the run's own samples; a sample stays within the
    model's context length).
    """
    outputs = api.ImageOutputs(grid, out_dir, force) if grid or out_dir else None
    if outputs is not None:
        outputs.check()  # before loading: fail at once
    model = api.load_engine(run, engine)
    if isinstance(model, MusicGeneration):
        _refuse(run, "generates music", ("--grid", grid), ("--interpolate", interpolate))
        _print_music(ctx, model, run)
        return
    _refuse(run, "does not make music", ("-o", output), ("--bars", bars),
            ("--pianoroll", pianoroll), ("--wav", wav))  # fmt: skip
    request = GenerationRequest(
        prompt=prompt,
        num_samples=num_samples,
        max_tokens=max_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
        num_beams=num_beams,
        repetition_penalty=repetition_penalty,
        class_label=api.class_index(model, class_label),
        interpolate=interpolate or 0,
    )
    if isinstance(model, ImageGeneration):
        if outputs is None:
            raise click.UsageError(
                "image models write files: pass --grid FILE.png or --out-dir DIR"
            )
        images, written = api.generate_images(model, request, outputs)
        if as_json:
            print_json({"run": run, "images": len(images), "files": [str(p) for p in written]})
        for path in [] if as_json else written:
            click.echo(str(path))
        return
    _refuse(run, "generates text", ("--grid", grid), ("--out-dir", out_dir),
            ("--interpolate", interpolate))  # fmt: skip
    _print_text(model, run, request, stream, interactive, as_json)


def _refuse(run: str, does: str, *options: tuple[str, Any]) -> None:
    """A usage error for the first option given that this kind of model has no use for."""
    for flag, value in options:
        if value is not None:
            kind = "music" if flag in ("-o", "--bars", "--pianoroll", "--wav") else "image"
            raise click.UsageError(f"{flag} is for {kind} models; '{run}' {does}")


def _print_music(ctx: click.Context, model: Any, run: str) -> None:
    """``generate`` for a music model: pieces to MIDI files, a piano roll, audio."""
    o = ctx.params
    default_length = ctx.get_parameter_source("max_tokens") == ParameterSource.DEFAULT
    music = MusicRequest(
        num_samples=o["num_samples"],
        max_tokens=MusicRequest.max_tokens if default_length else o["max_tokens"],
        bars=o["bars"],
        temperature=o["temperature"],
        top_k=o["top_k"],
        top_p=o["top_p"],
        seed=o["seed"],
        prompt=Path(o["prompt"]) if o["prompt"] else None,
        prompt_bars=o["prompt_bars"],
    )
    files = api.MusicOutputs(o["output"], o["out_dir"], o["pianoroll"], o["wav"], o["force"])
    pieces = []
    for piece, path in api.generate_music(model, music, files):
        pieces.append({"file": str(path), "notes": piece.notes, "bars": piece.bars,
                       "repaired": piece.problems})  # fmt: skip
        if not o["as_json"]:
            click.echo(str(path))
    extra = [str(p) for p in (o["pianoroll"], o["wav"]) if p is not None]
    if o["as_json"]:
        print_json({"run": run, "pieces": pieces, "files": extra})
    for name in [] if o["as_json"] else extra:
        click.echo(name)


def _print_text(
    model: Any, run: str, request: GenerationRequest, stream: bool, interactive: bool, as_json: bool
) -> None:
    """``generate`` for a text model: each sample printed as it is made, or streamed."""
    if stream or interactive:
        flag = "--interactive" if interactive else "--stream"
        if request.num_samples != 1 or as_json:
            raise click.UsageError(f"{flag} prints one sample as it is made; drop -n / --json")
        if interactive:
            _interactive(model, request)
        else:
            click.echo(request.prompt, nl=False)
            _print_stream(api.generate_stream(model, request))
        return
    samples = api.generate(model, request)
    if as_json:
        print_json_list({"run": run}, "samples", samples)
    else:
        for sample in samples:
            click.echo(sample)


def _print_stream(pieces: Any) -> None:
    for piece in pieces:
        click.echo(piece, nl=False)
        sys.stdout.flush()
    click.echo()


def _interactive(model: Any, request: GenerationRequest) -> None:
    """Each line typed is a prompt; its answer streams. Ctrl-C stops the answer (or clears
    the line typed), Ctrl-D ends. readline gives history and editing where it exists."""
    import dataclasses

    with contextlib.suppress(ImportError):  # not on Windows; input() still works
        import readline  # noqa: F401 (importing it gives input() history and editing)
    log("Each line is a prompt; Ctrl-C stops an answer, Ctrl-D ends.")
    while True:
        try:
            line = input("> ")
        except EOFError:
            click.echo()
            return
        except KeyboardInterrupt:
            click.echo()
            continue
        try:
            click.echo(line, nl=False)
            _print_stream(api.generate_stream(model, dataclasses.replace(request, prompt=line)))
        except KeyboardInterrupt:
            click.echo(" [stopped]")


@cli.command()
@run_argument
@click.argument("texts", nargs=-1, metavar="[TEXT]...")
@click.option(
    "--beam",
    "num_beams",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Beam width (1: greedy).",
)
@click.option(
    "--length-penalty",
    type=FiniteFloatRange(),
    default=1.0,
    show_default=True,
    help="Beam scores are divided by length**P: above 1 favours longer translations.",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    default=None,
    help="Most tokens per translation [default: the model's limit].",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Sentences translated together (stdin is read in batches of this size).",
)
@threads_option
@engine_option
@json_option
def translate(
    run: str,
    texts: tuple[str, ...],
    num_beams: int,
    length_penalty: float,
    max_tokens: int | None,
    batch_size: int,
    engine: str,
    as_json: bool,
) -> None:
    """Translate TEXT arguments, or stdin line by line when there are none.

    One output line per input line, in order, so it works in a pipe; with --json, one
    JSON object per line ({"source": ..., "translation": ...}).

    \b
    Examples:
      gentool translate runs/transformer "A man is riding a bike."
      gentool translate runs/transformer --beam 5 < test.en > test.hyp.de
      gentool translate Helsinki-NLP/opus-mt-en-de "A dog runs."
      gentool translate mt-ct2 --engine ct2 --beam 1 < test.en > test.hyp.de

    With --engine ct2, RUN is the folder `gentool export RUN --format ct2 -o DIR` wrote
    (CTranslate2: several times faster on a CPU; greedy translations are the run's own).
    """
    request = TranslationRequest(
        num_beams=num_beams, length_penalty=length_penalty, max_tokens=max_tokens
    )
    model = api.load_engine(run, engine)
    if texts:
        pairs: Any = zip(texts, api.translate(model, texts, request), strict=True)
    else:
        pairs = api.translate_stream(model, sys.stdin.buffer, request, batch_size)
    for source, output in pairs:
        if as_json:
            click.echo(dumps_json({"source": source, "translation": output}, indent=None))
        else:
            click.echo(output)
        sys.stdout.flush()


@cli.command()
@run_argument
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    help="Image to write (a folder when SOURCE is a folder).",
)
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@threads_option
@json_option
def restore(run: str, source: Path, output: Path, force: bool, as_json: bool) -> None:
    """Restore SOURCE (an image, or a folder of them) with the model in RUN.

    What it does depends on the run. colorize: any image in, RGB out at the same size.
    inpaint: fills the transparent pixels (alpha 0) of an RGBA image, or the centre square
    (model.mask_size of the short side) of an image without alpha. upscale: the output is
    model.upscale_factor times larger. A folder gives a folder with the same relative
    names (as PNG). Nothing is written into a run directory, and existing files are
    replaced only with --force.

    \b
    Examples:
      gentool restore runs/colorize old-photo.png -o colour.png
      gentool restore runs/upscale small/ -o large/
    """
    written = []
    for path in api.restore(run, source, output, force):
        written.append(str(path))
        if not as_json:
            click.echo(str(path))
    if as_json:
        print_json({"run": run, "files": written})


@cli.command()
@run_argument
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    help="Image to write (a folder when SOURCE is a folder).",
)
@click.option("--reverse", is_flag=True, help="Translate B to A (a cyclegan run).")
@click.option("--grid", is_flag=True, help="Write each input and its translation side by side.")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@json_option
def transform(
    run: str, source: Path, output: Path, reverse: bool, grid: bool, force: bool, as_json: bool
) -> None:
    """Translate SOURCE (an image of domain A, or a folder of them) to domain B with the
    image translator in RUN (gan model.task=paired or cyclegan).

    The model works at its model.image_size; the result is resized back to the input's
    size. --reverse translates B to A (cyclegan runs go both ways; a paired run one way).
    A folder gives a folder with the same relative names (as PNG). Nothing is written
    into a run directory, and existing files are replaced only with --force.

    \b
    Examples:
      gentool transform runs/emoji silhouette.png -o colour.png
      gentool transform runs/digits printed/ -o handwritten/ --grid
      gentool transform runs/digits hand.png -o printed.png --reverse
    """
    written = []
    for path in api.transform(run, source, output, force, reverse, grid):
        written.append(str(path))
        if not as_json:
            click.echo(str(path))
    if as_json:
        print_json({"run": run, "files": written})


@cli.command()
@run_argument
@click.option(
    "--data",
    "-d",
    multiple=True,
    metavar="PATH",
    help="Held-out data to score: text files, or real images (repeatable).",
)
@click.option("--source", type=click.Path(path_type=Path), help="Translation: source sentences.")
@click.option(
    "--target",
    type=click.Path(path_type=Path),
    help="Translation: references; image translators: the B images (beside --data A).",
)
@click.option(
    "--num-samples",
    "-n",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Music models: pieces generated to compare with the held-out ones.",
)
@click.option(
    "--bars",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Music models: bars of each generated piece.",
)
@click.option(
    "--seed", type=SEED, default=0, show_default=True, help="Music models: seed of the pieces."
)
@click.option(
    "--feature-space",
    type=click.Choice(["classifier", "inception"]),
    default="classifier",
    show_default=True,
    help="Image models: where FID/KID are computed. classifier: a small CNN trained on the "
    "real images (offline); inception: the published FID's Inception-v3 (needs "
    "--feature-weights and torch-fidelity).",
)
@click.option(
    "--feature-weights",
    type=click.Path(path_type=Path),
    envvar="GENTOOL_INCEPTION_WEIGHTS",
    metavar="FILE",
    help="--feature-space inception: the Inception-v3 weights (torch-fidelity's "
    "weights-inception-2015-12-05-6726825d.pth, or safetensors); default "
    "$GENTOOL_INCEPTION_WEIGHTS. Its sha256 is in the metric names.",
)
@click.option(
    "--gradient-flow",
    is_flag=True,
    help="Language models: the gradient of the loss at t w.r.t. the input at t-k, against k "
    "(--data, or the text the run held out).",
)
@click.option(
    "--max-distance",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="--gradient-flow: the largest k.",
)
@click.option(
    "--windows",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="--gradient-flow: held-out windows averaged over.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="--gradient-flow: also draw the curve into this .png or .svg file.",
)
@click.option("--force", is_flag=True, help="Replace an existing --output file.")
@threads_option
@json_option
def evaluate(
    run: str,
    data: tuple[str, ...],
    source: Path | None,
    target: Path | None,
    num_samples: int,
    bars: int,
    seed: int,
    feature_space: str,
    feature_weights: Path | None,
    gradient_flow: bool,
    max_distance: int,
    windows: int,
    output: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Score the model in RUN on held-out data, with the metrics of its task.

    RUN may also be a Hugging Face model: hf:ORG/NAME[@REVISION], ORG/NAME, or a local
    model folder (safetensors only; see docs/cli.md).

    Language models: perplexity and bits per token (--data). Music models (--data MIDI
    folder): the perplexity of its tokens, and statistics of -n generated pieces (pitch
    classes, range, polyphony, notes per bar, in key, empty bars, copying) beside the
    held-out pieces' own. Translators: BLEU and chrF
    (sacrebleu, with its signature) and the loss (--source/--target). Image models: FID
    and KID in a named feature space, coverage, memorisation; restorers: PSNR and SSIM
    (--data real images); image translators (--data A --target B): paired, PSNR, SSIM and
    L1 against the true B; cyclegan, cycle reconstruction, FID/KID each way and class
    preservation.

    \b
    Examples:
      gentool evaluate runs/ngram --data test.txt --json
      gentool evaluate runs/transformer --source test.en --target test.de
      gentool evaluate runs/gan --data mnist/t10k-images-idx3-ubyte.gz
      gentool evaluate runs/chorales --data chorales/val/ -n 16 --json
      gentool evaluate hf:openai-community/gpt2 --data test.txt
      gentool evaluate runs/emoji --data held/silhouette --target held/color
      gentool evaluate runs/gan --data real/ --feature-space inception \\
          --feature-weights weights-inception-2015-12-05-6726825d.pth
      gentool evaluate runs/rnn --gradient-flow -o grad.png
      gentool evaluate runs/rnn --gradient-flow --data test.txt --max-distance 32 --json

    --gradient-flow (rnn, transformer language models): how much the loss at position t
    depends on the input k steps earlier, the norm of its gradient with respect to the
    input embedding at t-k averaged over held-out windows, for k = 0 .. --max-distance;
    a tanh RNN's falls fast with k (vanishing gradients), an LSTM's slower.
    """
    if gradient_flow:
        _gradient_flow(run, data, source, target, max_distance, windows, output, force, as_json)
        return
    if output is not None:
        raise click.UsageError("--output draws --gradient-flow; give --gradient-flow")
    if not data and source is None and target is None:
        raise click.UsageError("give --data PATH (or --source/--target for a translator)")
    if (source is None) != (target is None) and not (data and source is None):
        raise click.UsageError("translation is scored on --source and --target together")
    if feature_weights is not None and feature_space != "inception":
        source_of = click.get_current_context().get_parameter_source("feature_weights")
        if source_of == click.core.ParameterSource.COMMANDLINE:
            raise click.UsageError("--feature-weights goes with --feature-space inception")
        feature_weights = None  # (from $GENTOOL_INCEPTION_WEIGHTS: used with inception only)
    metrics = api.evaluate(
        run, data, source, target, num_samples, seed, bars, feature_space, feature_weights
    )
    record: dict[str, Any] = {"run": run}
    if source is not None:
        record.update(source=str(source), target=str(target))
    else:
        record["data"] = list(data)
        if target is not None:
            record["target"] = str(target)
    if as_json:
        print_json({**record, "metrics": metrics})
    else:
        print_table([[k, _fmt(v)] for k, v in metrics.items()], ["metric", "value"])


def _gradient_flow(
    run: str,
    data: tuple[str, ...],
    source: Path | None,
    target: Path | None,
    max_distance: int,
    windows: int,
    output: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """evaluate --gradient-flow: the series as JSON, or a table of roughly doubling k."""
    if source is not None or target is not None:
        raise click.UsageError("--gradient-flow reads held-out text (--data), not translations")
    found = api.gradient_flow(run, data, max_distance, windows, output=output, force=force)
    found["run"] = run
    if as_json:
        print_json({**found, "files": [str(output)] if output is not None else []})
        return
    shown = sorted({0, max_distance} | {k for k in GRADIENT_ROWS if k < max_distance})
    rows = [
        [str(k), f"{found['gradient_norm'][k]:.3g}", f"{found['relative'][k]:.3g}"] for k in shown
    ]
    print_table(rows, ["k", "gradient norm", "relative to k=0"])
    if output is not None:
        log(f"wrote {output}")


# The distances evaluate --gradient-flow prints (--json has every k): about doubling.
GRADIENT_ROWS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


@cli.command()
@click.argument(
    "run",
    required=False,
    type=click.Path(file_okay=False, path_type=str),
    metavar="[RUN]",
    shell_complete=complete_runs,
)
@click.option(
    "--data",
    "-d",
    multiple=True,
    metavar="PATH",
    help="ngram: held-out text; shows how many of its n-grams the model never saw.",
)
@click.option(
    "--system",
    is_flag=True,
    help="Show this machine instead: the threads --threads/GENTOOL_THREADS give torch, "
    "numpy's BLAS and the tokenizers, torch and numpy versions, the CPU and its features "
    "(avx2, avx512, bf16, amx), the devices and the cache folder.",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="ngram: draw the growth of the n-grams with the order (and --data's unseen share) "
    "into this .png or .svg file.",
)
@click.option("--force", is_flag=True, help="Replace an existing --plot file.")
@threads_option
@json_option
def info(
    run: str | None,
    data: tuple[str, ...],
    system: bool,
    plot: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Show what RUN is: family, recipe, data, versions, metrics and model statistics.

    RUN may also be a Hugging Face model: hf:ORG/NAME[@REVISION], ORG/NAME, or a local
    model folder (safetensors only; see docs/cli.md).

    For an n-gram model, a table of the distinct n-grams of each order against the V^n
    possible, and with --data the share of held-out n-grams never seen in training (why
    higher orders need smoothing).

    With --system (and no RUN), what this machine computes with.

    \b
    Examples:
      gentool info runs/ngram
      gentool info hf:openai-community/gpt2
      gentool info runs/ngram --data test.txt
      gentool info runs/ngram --data test.txt --plot growth.png
      gentool info --system --threads 4

    For a GAN run, whether D(x) and D(G(z)) settled, oscillate or diverged over training,
    and whether the diversity of its samples collapsed (rules: docs/cli.md).
    """
    if system:
        if run is not None or data or plot is not None:
            raise click.UsageError(
                "--system describes this machine; give it without RUN, --data or --plot"
            )
        _print_system(as_json)
        return
    if run is None:
        raise click.UsageError("give a RUN to describe, or --system for this machine")
    details = {**api.info(run, data, plot=plot, force=force), "run": run}
    if as_json:
        print_json(details)
        return
    for key, value in details.items():
        if key == "equilibrium":
            continue  # its own table, below
        if isinstance(value, dict):
            click.echo(f"{key}:")
            for k, v in value.items():
                click.echo(f"  {k}: {_fmt(v)}")
        else:
            click.echo(f"{key}: {_fmt(value)}")
    if isinstance(details["model"].get("ngrams"), list):
        click.echo("")
        _ngram_table(details["model"]["ngrams"], details.get("heldout", {}).get("ngrams"))
    if "equilibrium" in details:
        click.echo("")
        _equilibrium_table(details["equilibrium"])
    if plot is not None:
        log(f"wrote {plot}")


def _print_system(as_json: bool) -> None:
    from gentool import system

    details = system.describe()
    if as_json:
        print_json(details)
        return
    cpu, counts, numpy, torch = (details[k] for k in ("cpu", "threads", "numpy", "torch"))
    asked = counts["requested"]
    lines = [
        ("gentool", details["gentool"]),
        ("python", f"{details['python']} ({details['platform']})"),
        ("cpu", f"{cpu['model']}, {cpu['usable_cores']} of {cpu['cores']} cores usable"),
        ("cpu flags", " ".join(cpu["flags"]) or "-"),
        ("threads asked", f"{asked} ({counts['source']})" if asked else "none (defaults)"),
        ("torch", "not installed" if torch is None else torch["version"]),
    ]
    if torch is not None:
        lines += [
            ("torch threads", f"{torch['threads']} intra-op, {torch['interop_threads']} inter-op"),
            ("torch kernels", f"{torch['cpu_capability']} (oneDNN: {torch['mkldnn']})"),
            ("devices", ", ".join(f"{d['device']} ({d['name']})" for d in torch["devices"])),
        ]
    lines.append(("numpy", numpy["version"]))
    for pool in numpy["blas"]:
        lines.append(
            (
                "numpy BLAS",
                f"{pool['library']} {pool['version']} ({pool['architecture']}), "
                f"{pool['threads']} threads",
            )
        )
    lines += [("tokenizer threads", counts["tokenizers"]), ("cache", details["cache"])]
    print_table([[k, _fmt(v)] for k, v in lines], ["", "value"])


def _ngram_table(seen: list[dict[str, Any]], heldout: list[dict[str, Any]] | None) -> None:
    """Distinct n-grams per order against V^n, and the held-out ones never seen."""
    header = ["order", "distinct", "possible (V^n)", "fraction seen"]
    if heldout:
        header.append("held-out unseen")
    rows = []
    for i, order in enumerate(seen):
        row = [
            str(order["order"]),
            f"{order['distinct']:,}",
            f"{order['possible']:.3g}",
            f"{order['fraction_seen']:.3g}",
        ]
        if heldout:
            share = heldout[i]["unseen_fraction"]
            row.append("-" if share is None else f"{share:.1%}")
        rows.append(row)
    print_table(rows, header)


def _equilibrium_table(found: dict[str, Any]) -> None:
    """A GAN's D(x), D(G(z)) and diversity: the first third of training against the last."""
    click.echo("GAN equilibrium (the last third of the logged values against the first):")
    rows = []
    for key, name in (("d_real", "D(x)"), ("d_fake", "D(G(z))")):
        judged = found[key] or {"verdict": None, "early": None, "late": None}
        early, late = judged["early"] or {}, judged["late"] or {}
        rows.append(
            [
                name,
                judged["verdict"] or "-",
                *(_short(third.get(k)) for third in (early, late) for k in ("mean", "std")),
                _short(late.get("trend")),
            ]
        )
    header = ["series", "verdict", "early mean", "early std", "late mean", "late std", "drift"]
    print_table(rows, header)
    diversity = found["diversity"]
    if diversity is not None:
        said = "collapsed" if diversity["collapsed"] else "did not collapse"
        click.echo(
            f"diversity {said}: early {diversity['early']:.3g}, highest {diversity['peak']:.3g}, "
            f"late {diversity['late']:.3g} (1: as varied as the data)"
        )
    click.echo(f"verdict: {found['verdict'] or 'unknown'} ({found['reason']})")


@cli.command()
@click.argument("run_paths", nargs=-1, required=True, metavar="RUN...")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The figure to write: a .png or .svg file (never inside a run directory).",
)
@click.option("--svg", is_flag=True, help="With a .png --output: also write the figure as SVG.")
@click.option("--force", is_flag=True, help="Replace existing output files.")
@json_option
def plot(
    run_paths: tuple[str, ...], output: Path | None, svg: bool, force: bool, as_json: bool
) -> None:
    """Draw the learning curves of one or more runs, overlaid, one colour per run.

    Panels: training and validation loss against steps and against wall time, learning
    rate, throughput; for GANs D(x) and D(G(z)), both losses, gradient norms and the
    diversity of the samples (oscillation and mode collapse show there). --json prints
    the plotted series (and needs no plotting library); drawing needs matplotlib
    (pip install 'gentool[plot]'). A run still training is drawn as far as it has got.

    \b
    Examples:
      gentool plot runs/rnn -o curves.png
      gentool plot runs/rnn runs/transformer -o compare.png --svg
      gentool plot runs/gan -o gan.png --force
      gentool plot runs/rnn --json
    """
    if output is None and not as_json:
        raise click.UsageError("give --output FILE.png (or --json for the series)")
    written: list[Path] = []
    if output is None:
        found = api.curves(run_paths)
    else:
        found, written = api.plot(run_paths, output, force=force, svg=svg)
    if as_json:
        print_json({"runs": found, "files": [str(p) for p in written]})
    else:
        for path in written:
            click.echo(str(path))


@cli.command()
@click.argument("run_paths", nargs=-1, required=True, metavar="RUN...")
@click.option(
    "--data",
    "-d",
    multiple=True,
    metavar="PATH",
    help="Held-out data every run is scored on: text files, or real images (repeatable).",
)
@click.option("--source", type=click.Path(path_type=Path), help="Translators: source sentences.")
@click.option("--target", type=click.Path(path_type=Path), help="Translators: references.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the table as a .png or .svg file (needs matplotlib).",
)
@click.option("--force", is_flag=True, help="Replace an existing --output file.")
@json_option
def compare(
    run_paths: tuple[str, ...],
    data: tuple[str, ...],
    source: Path | None,
    target: Path | None,
    output: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Score several runs on the same held-out data, in one table.

    Language models: tokens scored, cross-entropy (nats per token), perplexity, bits per
    token; translators: BLEU and chrF; image generators: FID and KID in one named feature
    space. Every row also has the parameters, training time and size on disk. Figures of
    different units never share a column: a word model's perplexity against a character
    model's, FID in two feature spaces, are refused with the reason.

    \b
    Examples:
      gentool compare runs/ngram-char runs/rnn --data test.txt
      gentool compare runs/en-de runs/en-de-big --source test.en --target test.de
      gentool compare runs/gan runs/gan-wide --data mnist/t10k-images-idx3-ubyte.gz --json
      gentool compare runs/ngram-char runs/rnn --data test.txt -o table.png
    """
    if not data and source is None and target is None:
        raise click.UsageError("give --data PATH (or --source/--target for translators)")
    if (source is None) != (target is None):
        raise click.UsageError("translation is scored on --source and --target together")
    table = api.compare(run_paths, data, source, target, output=output, force=force)
    if as_json:
        print_json(table)
        return
    rows = [[_fmt(row[c]) for c in table["columns"]] for row in table["rows"]]
    print_table(rows, table["columns"])
    if output is not None:
        log(f"wrote {output}")


@cli.command()
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0: every interface; see docs/serving.md).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port to listen on (0: any free port, printed at start).",
)
@click.option(
    "--api-key",
    envvar="GENTOOL_API_KEY",
    metavar="KEY",
    help="Require 'Authorization: Bearer KEY' [env: GENTOOL_API_KEY].",
)
@click.option(
    "--timeout",
    type=FiniteFloatRange(min=0.01),
    default=60.0,
    show_default=True,
    help="Seconds a request may take, its wait for the model included.",
)
@click.option(
    "--queue-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Requests that may wait for each model; more get 503 + Retry-After.",
)
@click.option(
    "--batch-window",
    type=FiniteFloatRange(min=0.0),
    default=5.0,
    show_default=True,
    help="Milliseconds a completion waits for others to run in one batch (0: off).",
)
@click.option(
    "--max-batch",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Most completion prompts run together.",
)
@click.option(
    "--max-body",
    type=click.IntRange(min=1024),
    default=8 << 20,
    show_default=True,
    help="Largest request body, in bytes.",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    default=512,
    show_default=True,
    help="Largest max_tokens a request may ask for.",
)
@click.option(
    "--max-n",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Most samples (n, times the prompts) or images one request may ask for.",
)
@click.option(
    "--max-image-pixels",
    type=click.IntRange(min=1),
    default=1 << 22,
    show_default=True,
    help="Largest image to restore, in pixels.",
)
def serve(
    runs: tuple[str, ...],
    host: str,
    port: int,
    api_key: str | None,
    timeout: float,
    queue_size: int,
    batch_window: float,
    max_batch: int,
    max_body: int,
    max_tokens: int,
    max_n: int,
    max_image_pixels: int,
) -> None:
    """Serve the models of RUNs over HTTP (OpenAI-compatible where an API exists).

    Each run is served under its folder's name, or NAME=RUN. Endpoints, by what the
    model can do: /v1/completions (stream: true for server-sent events), /v1/score,
    /v1/translations, /v1/images/generations, /v1/images/restorations; and /v1/models,
    /health, /metrics. SIGTERM (or Ctrl-C) stops after the requests in flight.
    Needs the serve extra: pip install 'gentool[serve]'.

    \b
    Examples:
      gentool serve runs/ngram runs/transformer
      GENTOOL_API_KEY="$(cat key.txt)" gentool serve lm=runs/transformer --port 9000
      curl -s localhost:8000/v1/completions -H 'Content-Type: application/json' \\
           -d '{"model": "ngram", "prompt": "The", "max_tokens": 20}'
    """
    from gentool.serve import serve as run_server
    from gentool.serve.schema import Limits, Settings

    settings = Settings(
        api_key=api_key or None,
        timeout=timeout,
        queue_size=queue_size,
        batch_window=batch_window / 1000,
        max_batch=max_batch,
        max_body=max_body,
        limits=Limits(max_tokens=max_tokens, max_n=max_n, max_image_pixels=max_image_pixels),
    )
    sys.exit(run_server(runs, host, port, settings, log))


@cli.command()
@run_argument
@click.option("--format", "fmt", required=True, help="Output format: arpa, ct2, merged.")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    help="File (arpa) or folder (ct2, merged) to write, never inside a run directory.",
)
@click.option(
    "--quantization",
    type=click.Choice(
        [
            "int8",
            "int8_float32",
            "int8_float16",
            "int8_bfloat16",
            "int16",
            "float16",
            "bfloat16",
            "float32",
        ]
    ),  # fmt: skip
    help="ct2: the weights' type [default: as trained, float32].",
)
@click.option("--force", is_flag=True, help="Replace an existing output (file, or export folder).")
def export(run: str, fmt: str, output: Path, quantization: str | None, force: bool) -> None:
    """Write the model in RUN in another tool's format.

    \b
    Formats:
      arpa    ngram: the ARPA file KenLM and SRILM read
      ct2     transformer lm and translator: a CTranslate2 model folder, for fast
              inference (pip install 'gentool[ct2]'); run it with
              gentool generate/translate DIR --engine ct2
      merged  a LoRA run (train.lora_rank): its adapter merged into the base model, a
              plain Hugging Face folder (AutoModel*.from_pretrained, gentool RUN)

    The output is written whole or not at all; an existing one is replaced only with
    --force (a folder only if gentool export wrote it).

    \b
    Examples:
      gentool export runs/ngram --format arpa -o model.arpa
      gentool export runs/ngram --format arpa -o model.arpa --force
      gentool export runs/mt-en-de --format ct2 --quantization int8 -o mt-ct2
      gentool translate mt-ct2 --engine ct2 "A dog runs."
      gentool export runs/lora --format merged -o merged/
    """
    api.export(run, fmt, output, force, quantization)
    log(f"wrote {output}")


@cli.command()
@run_argument
@click.argument("repo_id", metavar="ORG/NAME")
@click.option("--private", is_flag=True, help="Create the Hub repository as private.")
@click.option("--revision", metavar="BRANCH", help="Push to this branch (made if new).")
@click.option(
    "--license",
    "license_",
    default="other",
    show_default=True,
    metavar="ID",
    help="The license in the model card (a Hub license id, e.g. mit, apache-2.0).",
)
@click.option(
    "--dry-run",
    "dry_run",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Upload nothing: write the exact folder that would be uploaded into DIR.",
)
def push(
    run: str,
    repo_id: str,
    private: bool,
    revision: str | None,
    license_: str,
    dry_run: Path | None,
) -> None:
    """Publish RUN on the Hugging Face Hub as ORG/NAME.

    The upload is the run's checksummed files (no checkpoints) with a model card holding
    Hub metadata (library, tags, data by name and sha256, results, license) and no path
    of this machine. It loads with `gentool generate hf:ORG/NAME` (every kind) and, for
    the transformer kinds, with transformers' `AutoModelFor*.from_pretrained`. The token
    is HF_TOKEN's, or that of `hf auth login`.

    \b
    Examples:
      gentool push runs/transformer my-user/tiny-shakespeare --dry-run upload/
      gentool push runs/en-de my-org/en-de-multi30k --license mit --private
    """
    where = api.push(
        run, repo_id, private=private, revision=revision, license=license_, dry_run=dry_run
    )
    log(f"wrote {where}" if dry_run is not None else f"pushed {run} to {where}")
    click.echo(where)


# -- for plugin authors -----------------------------------------------------------------------


@cli.group()
def plugin() -> None:
    """Tools for plugin authors (see docs/plugins.md).

    \b
    Example:
      gentool plugin new bigram
    """


@plugin.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "parent",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    help="Create NAME/ in this folder [default: the current one].",
)
@json_option
def plugin_new(name: str, parent: Path, as_json: bool) -> None:
    """Create NAME/, a ready plugin distribution with the model family NAME.

    It holds pyproject.toml (with the gentool entry point), the package gentool_NAME (the
    hook and a small but real kind of model, a character bigram model, to make your own),
    a README, and tests that pass as generated (gentool.testing's conformance kit among
    them).

    \b
    Example:
      gentool plugin new bigram
      pip install -e ./bigram && pytest ./bigram && gentool models
    """
    from gentool.scaffold import PluginNames, new_plugin

    path, files = new_plugin(name, parent)
    names = PluginNames.of(name)
    if as_json:
        print_json(
            {
                "path": str(path),
                "family": names.name,
                "distribution": names.distribution,
                "package": names.package,
                "files": [str(f.relative_to(path)) for f in files],
            }
        )
        return
    log(f"created the distribution {names.distribution}; next: pip install -e {path}")
    click.echo(str(path))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _short(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    # SIGTERM (a scheduler, `kill`, torchrun) ends a command the way Ctrl-C does: cleanly,
    # with exit code 130 and no half-written run directory.
    signal.signal(signal.SIGTERM, _interrupt)
    cli(prog_name="gentool")
