"""The gentool command line: parse, call ``gentool.api``, print. Nothing else lives here.

Results go to stdout, progress and warnings to stderr. A ``GentoolError`` raised anywhere
becomes one ``Error: ...`` line and exit code 1, here and only here (``GentoolGroup``).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import click

from gentool import __version__, api
from gentool.errors import EXIT_INTERRUPTED, GentoolError
from gentool.family import GENERATE_TEXT, SCORE_TEXT, GenerationRequest
from gentool.options import (
    complete_families,
    complete_recipes,
    json_option,
    print_json,
    print_table,
    run_argument,
    sampling_options,
)
from gentool.runs import RunDirectory
from gentool.training import Runtime


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
            return super().invoke(ctx)
        except GentoolError as err:
            raise click.ClickException(str(err)) from err
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)


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
    from gentool.plugins import get_registry, plugin_infos

    get_registry()  # registering models can surface more errors
    infos = plugin_infos()
    if as_json:
        print_json([p.as_json() for p in infos])
        return
    rows = [
        [p.name, p.distribution, p.version, ",".join(p.hooks) or "-", p.error or "ok"]
        for p in infos
    ]
    print_table(rows, ["plugin", "distribution", "version", "hooks", "status"])


@cli.command()
@json_option
def models(as_json: bool) -> None:
    """List model families and the tasks they support.

    \b
    Example:
      gentool models
    """
    from gentool.plugins import get_registry

    registry = get_registry()
    found: list[dict[str, Any]] = [
        {
            "name": name,
            "description": family.description,
            "tasks": list(family.tasks),
            "export_formats": list(family.export_formats),
            "import_formats": list(family.import_formats),
            "plugin": registry.owners[name].name,
            "distribution": registry.owners[name].distribution,
        }
        for name, family in sorted(registry.families.items())
    ]
    if as_json:
        print_json(found)
        return
    print_table(
        [[f["name"], ",".join(f["tasks"]), f["description"]] for f in found],
        ["family", "tasks", "description"],
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
    from gentool.recipes import shipped_recipes

    found = shipped_recipes()
    if as_json:
        print_json(
            [
                {
                    "name": r.name,
                    "family": r.family,
                    "description": r.description,
                    "path": str(r.path),
                }
                for r in found
            ]
        )
        return
    print_table(
        [[r.name, r.family, r.description] for r in found], ["recipe", "family", "description"]
    )


# -- training -------------------------------------------------------------------------------


@cli.command()
@click.argument("family", required=False, shell_complete=complete_families)
@click.option(
    "--recipe",
    "-r",
    metavar="FILE|NAME",
    shell_complete=complete_recipes,
    help="A TOML recipe, or a shipped one's name.",
)
@click.option(
    "--data",
    "-d",
    multiple=True,
    metavar="PATH",
    help="Training data (repeatable); default: the family's embedded sample.",
)
@click.option("--val", metavar="PATH", help="Held-out data, evaluated after training.")
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
@click.option("--seed", type=int, help="Random seed [default: the recipe's, or 0].")
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
    type=click.Choice(["no", "bf16", "fp16"]),
    help="Neural families: autocast precision (bf16 works on CPU) [default: the recipe's].",
)
@click.option(
    "--log-with",
    multiple=True,
    metavar="TRACKER",
    help="Also log metrics to an accelerate tracker, e.g. tensorboard (repeatable).",
)
@json_option
def train(
    family: str | None,
    recipe: str | None,
    data: tuple[str, ...],
    val: str | None,
    overrides: tuple[str, ...],
    out: Path | None,
    force: bool,
    seed: int | None,
    resume: bool,
    override: bool,
    device: str,
    mixed_precision: str | None,
    log_with: tuple[str, ...],
    as_json: bool,
) -> None:
    """Train a model of FAMILY (or the recipe's) and write a run directory.

    Neural families train with accelerate and write checkpoints to RUN/checkpoints; the
    same command trains on several processes under torchrun or accelerate launch.
    Ctrl-C writes a checkpoint and exits 130; --resume continues it.

    \b
    Examples:
      gentool train ngram
      gentool train ngram --data corpus.txt --set model.order=5 --out runs/ng5
      gentool train --recipe recipes/ngram-shakespeare-word3.toml --data input.txt
      gentool train rnn --data input.txt --set train.max_steps=2000 --mixed-precision bf16
      gentool train --resume --out runs/rnn
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
        runtime=Runtime(device=device, log_with=log_with),  # type: ignore[arg-type]
        log=log,
    )
    if run is None:  # not the main process of a multi-process run: it writes nothing
        return
    if as_json:
        print_json(
            {"run": str(run.path), "family": run.family, "metrics": run.meta.get("metrics", {})}
        )
    else:
        log(f"wrote {run.path}; try: gentool generate {run.path}")
        click.echo(str(run.path))


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
        print_json({"run": str(run.path), "family": run.family})
    else:
        click.echo(str(run.path))


# -- using a run ------------------------------------------------------------------------------


@cli.command()
@run_argument
@sampling_options
@json_option
def generate(
    run: str,
    prompt: str,
    num_samples: int,
    max_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    num_beams: int,
    seed: int | None,
    as_json: bool,
) -> None:
    """Sample from the model in RUN.

    \b
    Examples:
      gentool generate runs/ngram --seed 1
      gentool generate runs/ngram --prompt "I would" -n 5 --temperature 0.8 --top-k 40
      gentool generate runs/rnn --prompt "ROMEO:" --beams 4 --max-tokens 60
    """
    model = api.load(run)
    api.require(model, GENERATE_TEXT, "generate text")
    request = GenerationRequest(
        prompt=prompt,
        num_samples=num_samples,
        max_tokens=max_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
        num_beams=num_beams,
    )
    samples = model.generate(request)
    if as_json:
        print_json({"run": run, "samples": samples})
    else:
        for sample in samples:
            click.echo(sample)


@cli.command()
@run_argument
@click.option(
    "--data",
    "-d",
    multiple=True,
    required=True,
    metavar="PATH",
    help="Held-out data to score (repeatable).",
)
@json_option
def evaluate(run: str, data: tuple[str, ...], as_json: bool) -> None:
    """Score held-out data with the model in RUN (perplexity, bits per token).

    \b
    Example:
      gentool evaluate runs/ngram --data test.txt --json
    """
    model = api.load(run)
    api.require(model, SCORE_TEXT, "be evaluated on text")
    metrics = model.evaluate([Path(p) for p in data])
    if as_json:
        print_json({"run": run, "data": list(data), "metrics": metrics})
    else:
        print_table([[k, _fmt(v)] for k, v in metrics.items()], ["metric", "value"])


@cli.command()
@run_argument
@json_option
def info(run: str, as_json: bool) -> None:
    """Show what RUN is: family, recipe, data, versions, metrics and model statistics.

    \b
    Example:
      gentool info runs/ngram
    """
    run_dir = RunDirectory(run)
    model = api.load(run_dir)
    meta = run_dir.meta
    details = {
        "run": run,
        **{k: v for k, v in meta.items() if k != "files"},
        "model": model.describe(),
    }
    if as_json:
        print_json(details)
        return
    for key, value in details.items():
        if isinstance(value, dict):
            click.echo(f"{key}:")
            for k, v in value.items():
                click.echo(f"  {k}: {_fmt(v)}")
        else:
            click.echo(f"{key}: {_fmt(value)}")


@cli.command()
@run_argument
@click.option("--format", "fmt", required=True, help="Output format, e.g. arpa.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="File to write.",
)
def export(run: str, fmt: str, output: Path) -> None:
    """Write the model in RUN in another tool's format.

    \b
    Example (an n-gram model for KenLM):
      gentool export runs/ngram --format arpa -o model.arpa
    """
    api.export(run, fmt, output)
    log(f"wrote {output}")


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
    """Create NAME/, a ready plugin distribution with the family NAME.

    It holds pyproject.toml (with the gentool entry point), the package gentool_NAME (the
    hook and a small but real family, a character bigram model, to make your own), a
    README, and tests that pass as generated (gentool.testing's conformance kit among them).

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


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    # SIGTERM (a scheduler, `kill`, torchrun) ends a command the way Ctrl-C does: cleanly,
    # with exit code 130 and no half-written run directory.
    signal.signal(signal.SIGTERM, _interrupt)
    cli(prog_name="gentool")
