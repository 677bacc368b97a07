"""Hostile input (issue 11): recipes, option values, data streams and bombs, ARPA numbers,
plugins that shadow or exit, stdout that is full or closed. Each case ends in one Error:
line (or a usage error), exit code 1 (2), no traceback and nothing written."""

from __future__ import annotations

import gzip
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import Result
from conftest import (
    assert_error,
    fake_distribution,
    invoke,
    invoke_json,
    run_gentool,
    strict_json,
)
from safetensors.numpy import load_file

from gentool import api, options
from gentool.data import files
from gentool.runs import dumps_json
from gentool.tasks import SAMPLE_BATCH, GenerationRequest, sample_batches


def assert_nothing_written(tmp_path: Path, *keep: str) -> None:
    """No run directory (nor a hidden partial one) appeared beside the inputs."""
    made = sorted(
        p.name
        for p in tmp_path.iterdir()
        if p.is_dir() and p.name not in keep and p.name not in ("site", "__pycache__")
    )
    assert made == []


def assert_usage_error(result: Result | subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit 2 (command-line misuse), one Error: line naming the option, no traceback."""
    code = result.exit_code if isinstance(result, Result) else result.returncode
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert code == 2, result.stderr
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.fixture
def ngram_run(corpus: Path, tmp_path: Path) -> Path:
    invoke("train", "ngram", "--data", corpus, "--out", "run")
    return tmp_path / "run"


# -- recipes ------------------------------------------------------------------------------


def test_binary_recipe_file(tmp_path: Path) -> None:
    (tmp_path / "bin.toml").write_bytes(bytes(range(256)) * 4)
    result = invoke("train", "--recipe", "bin.toml", ok=False)
    assert_error(result, "recipe 'bin.toml' is not a TOML text file", "offset 128")
    assert_nothing_written(tmp_path)


def test_endless_recipe_stream_is_read_bounded(tmp_path: Path) -> None:
    """/dev/zero as --recipe filled the memory (a MemoryError traceback under a limit); a
    recipe through a pipe still works. In a subprocess with 1 GB of address space, so that
    a regression fails here rather than filling the machine's memory."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    result = run_gentool("train", "--recipe", "/dev/zero", preexec_fn=limit, cwd=tmp_path)
    assert_error(result, "recipe '/dev/zero' is larger than 1 MB")
    assert_nothing_written(tmp_path)
    piped = run_gentool(
        "train", "--recipe", "/dev/stdin", "--out", "r", input='family = "ngram"', cwd=tmp_path
    )
    assert piped.returncode == 0, piped.stderr
    assert invoke_json("info", "r")["family"] == "ngram"


def test_directory_that_is_no_run_as_recipe(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    result = invoke("train", "--recipe", "folder", ok=False)
    assert_error(result, "'folder' is a directory, and not a gentool run", "run directory")
    assert_nothing_written(tmp_path, "folder")


def test_a_run_as_recipe_repeats_it(corpus: Path, tmp_path: Path) -> None:
    invoke(
        "train", "ngram", "--data", corpus, "--set", "model.order=2", "--seed", "5", "--out", "a"
    )
    invoke("train", "--recipe", "a", "--out", "b")
    first, again = invoke_json("info", "a"), invoke_json("info", "b")
    assert again["recipe"] == first["recipe"] and again["seed"] == 5
    assert again["data"] == first["data"]
    first_tensors = load_file(str(tmp_path / "a/model.safetensors"))
    again_tensors = load_file(str(tmp_path / "b/model.safetensors"))
    assert first_tensors.keys() == again_tensors.keys()
    assert all(np.array_equal(first_tensors[k], again_tensors[k]) for k in first_tensors)


def test_a_run_as_recipe_names_the_data_it_needs(corpus: Path, tmp_path: Path) -> None:
    data = tmp_path / "gone.txt"
    data.write_bytes(corpus.read_bytes())
    invoke("train", "ngram", "--data", "gone.txt", "--out", "a")
    sha = invoke_json("info", "a")["data"]["train"][0]["sha256"]
    data.unlink()
    result = invoke("train", "--recipe", "a", "--out", "b", ok=False)
    assert_error(result, "'a' was trained on data that is not here", "'gone.txt'", sha, "--data")
    assert_nothing_written(tmp_path, "a")
    # The same data given again (under any name) trains it.
    invoke("train", "--recipe", "a", "--out", "b", "--data", corpus)


def test_a_run_of_the_embedded_sample_repeats_from_another_installation(tmp_path: Path) -> None:
    invoke("train", "ngram", "--out", "a")
    meta_path = tmp_path / "a" / "gentool.json"
    meta = json.loads(meta_path.read_text())
    moved = "/elsewhere/gentool/embedded/shakespeare.txt"  # where another install kept it
    meta["recipe"]["data"]["train"] = [moved]
    meta["data"]["train"][0]["path"] = moved
    meta_path.write_text(json.dumps(meta))
    invoke("train", "--recipe", "a", "--out", "b")
    assert (
        invoke_json("info", "b")["data"]["train"][0]["sha256"]
        == (meta["data"]["train"][0]["sha256"])
    )


def test_an_imported_run_has_no_training_to_repeat(tmp_path: Path) -> None:
    (tmp_path / "m.arpa").write_text(ARPA)
    invoke("import", "ngram", "m.arpa", "--out", "imported")
    result = invoke("train", "--recipe", "imported", "--out", "b", ok=False)
    assert_error(result, "'imported' was imported from", "gentool import ngram")
    assert_nothing_written(tmp_path, "imported")


@pytest.mark.parametrize(
    ("family", "setting", "key"),
    [
        ("ngram", "model.k=nan", "model.k"),
        ("ngram", "model.k=inf", "model.k"),
        ("ngram", "model.alpha=-inf", "model.alpha"),
        ("ngram", "model.discount_fallback=[0.5, nan, 1.5]", "model.discount_fallback"),
        ("rnn", "train.lr=inf", "train.lr"),
        ("transformer", "model.dropout=nan", "model.dropout"),
        ("gan", "train.ema_decay=nan", "train.ema_decay"),
    ],
)
def test_every_float_in_a_recipe_is_finite(
    family: str, setting: str, key: str, tmp_path: Path
) -> None:
    result = invoke("train", family, "--set", setting, ok=False)
    assert_error(result, f"recipe key '{key}' must be a finite number")
    assert_nothing_written(tmp_path)


def test_float_in_a_toml_recipe_is_finite(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text('family = "ngram"\n[model]\nk = inf\n')
    assert_error(invoke("train", "--recipe", "r.toml", ok=False), "'model.k' must be a finite")


@pytest.mark.parametrize("fallback", ["[0.5, 1.0, 7.0]", "[-0.1, 1.0, 1.5]", "[0.5, 1.0]"])
def test_discount_fallback_out_of_range_is_the_recipe_check(fallback: str, tmp_path: Path) -> None:
    result = invoke("train", "ngram", "--set", f"model.discount_fallback={fallback}", ok=False)
    assert_error(result, "model.discount_fallback takes three discounts", "0 <= D3+ <= 3")
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_seed_out_of_range_in_a_recipe(seed: str, tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text(f'family = "ngram"\nseed = {seed}\n')
    result = invoke("train", "--recipe", "r.toml", ok=False)
    assert_error(result, "recipe key 'seed' must be an integer from 0 to 4294967295")


def test_recipes_show_whole_first_sentences() -> None:
    found = {r["name"]: r["description"] for r in invoke_json("recipes")}
    gpu = "dropout 0.3 (29,000 pairs: the base model overfits without it), bf16."
    assert found["transformer-multi30k-en-de-gpu"].endswith(gpu)
    dcgan = "(6,000 steps of 64: 3,000 discriminator and 3,000 generator updates)"
    assert found["gan-mnist-dcgan"].endswith(dcgan)
    assert found["gan-mnist-upscale"].endswith("about 4 minutes on 2 shared CPU cores.")
    lines = invoke("recipes").stdout.splitlines()  # into a pipe: one line per recipe
    assert len(lines) == 1 + len(found)


def test_tables_wrap_their_last_column_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setattr(options.shutil, "get_terminal_size", lambda: os.terminal_size((40, 24)))
    options.print_table([["a", "one two three four five six seven eight nine"]], ["k", "text"])
    assert capsys.readouterr().out.splitlines() == [
        "k  text",
        "a  one two three four five six seven",
        "   eight nine",
    ]


# -- option values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--temperature", "nan"),
        ("--temperature", "inf"),
        ("--top-p", "nan"),
        ("--repetition-penalty", "inf"),
        ("--seed", "-1"),
        ("--seed", str(2**32)),
    ],
)
def test_generate_options_are_checked_where_they_are_parsed(
    option: str, value: str, ngram_run: Path
) -> None:
    assert_usage_error(invoke("generate", ngram_run, option, value, ok=False), option)


def test_other_commands_check_their_numbers_too(tmp_path: Path) -> None:
    result = invoke("translate", "run", "--length-penalty", "nan", "x", ok=False)
    assert_usage_error(result, "--length-penalty", "not a finite number")
    assert_usage_error(invoke("train", "ngram", "--seed", "-1", ok=False), "--seed")
    assert_nothing_written(tmp_path)


# -- stdout: streamed, full, closed -------------------------------------------------------


def test_generate_json_is_the_same_bytes_as_before(ngram_run: Path) -> None:
    out = invoke("generate", "run", "-n", "4", "--seed", "3", "--json").stdout
    request = GenerationRequest(num_samples=4, seed=3)
    expected = {"run": "run", "samples": list(api.load(ngram_run).generate(request))}
    assert out == dumps_json(expected) + "\n"
    assert strict_json(out) == expected


@pytest.mark.parametrize("items", [[], ["one"], ["a", 'b "quoted"\n', "ünïcode"], [1, 2.5]])
def test_streamed_json_list_matches_print_json(
    items: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    options.print_json({"run": "r/x", "samples": items})
    whole = capsys.readouterr().out
    options.print_json_list({"run": "r/x"}, "samples", iter(items))
    assert capsys.readouterr().out == whole


def test_samples_are_batched_for_the_neural_families() -> None:
    assert sample_batches(GenerationRequest(num_samples=3)) == [3]
    assert sample_batches(GenerationRequest(num_samples=2 * SAMPLE_BATCH + 1)) == [
        SAMPLE_BATCH,
        SAMPLE_BATCH,
        1,
    ]
    assert sample_batches(GenerationRequest(num_samples=40, num_beams=40)) == [40]


NEURAL = {
    "rnn": ["model.hidden_size=16", "model.embedding_size=8", "model.num_layers=1"],
    "transformer": ["model.d_model=16", "model.num_layers=1", "model.num_heads=2",
                    "model.d_ff=32", "model.context_length=32"],
}  # fmt: skip


@pytest.mark.parametrize("family", sorted(NEURAL))
def test_neural_families_stream_in_batches_with_the_same_samples(
    family: str, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    settings = [*NEURAL[family], "train.max_steps=2", "train.batch_size=2", "train.seq_len=8",
                "train.warmup_steps=1", "train.eval_every=2", "train.eval_batches=1"]  # fmt: skip
    invoke("train", family, *[a for s in settings for a in ("--set", s)], "--out", "run")
    count = SAMPLE_BATCH + 1  # two batches
    args = ("generate", "run", "-n", str(count), "--max-tokens", "4", "--seed", "2")
    samples = strict_json(invoke(*args, "--json").stdout)["samples"]
    request = GenerationRequest(num_samples=count, max_tokens=4, seed=2)
    assert samples == list(api.load(tmp_path / "run").generate(request))
    assert len(samples) == count and len(set(samples)) > 1
    line, code, stderr = _first_line_then_close(*args[:3], "100000", *args[4:])
    assert line and code in (0, 141, -signal.SIGPIPE) and stderr == "", stderr
    # --stream prints the same sample token by token, past the context window (32) too.
    for given in (["--prompt", "The", "--max-tokens", "40", "--seed", "3"], ["--beams", "2"]):
        whole = invoke("generate", "run", *given).stdout
        assert invoke("generate", "run", "--stream", *given).stdout == whole
    model = api.load(tmp_path / "run")
    request = GenerationRequest(prompt="The", max_tokens=40, seed=3)
    pieces = list(model.stream(request))
    assert len(pieces) > 10 and "The" + "".join(pieces) == next(model.generate(request))
    stopped = model.stream(request)
    next(stopped)
    stopped.close()  # stops the generating thread


def _first_line_then_close(*args: str) -> tuple[str, int, str]:
    """Run gentool ARGS in a real process, read one line of its stdout and close the pipe,
    as `| head -1` does; return the line, the exit status and stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gentool", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    line = process.stdout.readline()
    process.stdout.close()
    try:
        # Ten million samples take hours: only stopping at the closed pipe ends it in time.
        code = process.wait(timeout=120)
    finally:
        process.kill()
    return line, code, process.stderr.read()


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_a_closed_pipe_ends_generate_at_once(json_flag: list[str], ngram_run: Path) -> None:
    line, code, stderr = _first_line_then_close("generate", "run", "-n", "10000000", *json_flag)
    assert line.strip()
    assert code in (0, 141, -signal.SIGPIPE), stderr
    assert stderr == ""  # no traceback, no "Exception ignored"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("args", [["generate", "run", "-n", "3"], ["models"], ["recipes"]])
def test_a_full_stdout_is_one_error(args: list[str], ngram_run: Path) -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "gentool", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert_error(result, "cannot write the output to stdout", "No space left on device")
    assert "Exception ignored" not in result.stderr


# -- data files -----------------------------------------------------------------------------


def test_a_device_as_data_is_refused(tmp_path: Path) -> None:
    result = run_gentool("train", "ngram", "--data", "/dev/zero", "--out", "r")
    assert_error(result, "'/dev/zero' is a character device, not a regular file", "> data.txt")
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize(
    "args",
    [
        ["train", "ngram", "--data", "fifo", "--out", "r"],
        ["train", "gan", "--data", "fifo", "--out", "r"],
        ["train", "ngram", "--val", "fifo", "--out", "r"],
        ["evaluate", "run", "--data", "fifo"],
    ],
)
def test_a_fifo_as_data_is_refused_without_waiting(
    args: list[str], ngram_run: Path, tmp_path: Path
) -> None:
    os.mkfifo(tmp_path / "fifo")  # nobody writes to it: reading it would wait forever
    assert_error(run_gentool(*args), "'fifo' is a pipe (FIFO), not a regular file")
    assert_nothing_written(tmp_path, "run")


def test_a_fifo_among_images_is_skipped(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        Image.new("L", (28, 28), color=i * 60).save(folder / f"{i}.png")
    os.mkfifo(folder / "stuck.png")
    from gentool.data.images import read_images

    found = read_images([folder], 28)
    assert len(found) == 4 and "pipe (FIFO)" in found.skipped[str(folder / "stuck.png")]


def test_a_gzip_bomb_is_refused_early(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "GZIP_FREE_BYTES", 1 << 20)  # small, so the test is
    (tmp_path / "bomb.txt.gz").write_bytes(gzip.compress(b"the cat sat\n" * 2_000_000))
    result = invoke("train", "ngram", "--data", "bomb.txt.gz", "--out", "r", ok=False)
    assert_error(result, "'bomb.txt.gz' expands more than 100-fold", "gunzip -k")
    assert_nothing_written(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(bytes(24_000_000)))
    result = invoke("train", "gan", "--data", "t10k-images-idx3-ubyte.gz", ok=False)
    assert_error(result, "expands more than 100-fold")
    assert_nothing_written(tmp_path)


def test_a_gzip_larger_than_memory_streams_where_text_is_read(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "available_memory", lambda: 200)
    (tmp_path / "c.txt.gz").write_bytes(gzip.compress(corpus.read_bytes() * 4))
    # Image data is read whole: past half the memory, it is refused before it is made.
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(bytes(1000)))
    result = invoke("train", "gan", "--data", "t10k-images-idx3-ubyte.gz", "--out", "g", ok=False)
    assert_error(result, "decompresses to more than 100 bytes, half the memory")
    assert_nothing_written(tmp_path)
    # Text streams: ngram counts it, rnn and the translator (through the token cache)
    # tokenize it in pieces, so memory does not bound them.
    invoke("train", "ngram", "--data", "c.txt.gz", "--out", "ng")
    pytest.importorskip("torch")
    small = ["train.seq_len=8", "train.batch_size=2", "train.max_steps=1", "model.hidden_size=8"]
    invoke(
        "train",
        "rnn",
        "--data",
        "c.txt.gz",
        "--out",
        "r",
        *[a for s in small for a in ("--set", s)],
    )
    tiny = [
        "model.d_model=16", "model.num_layers=1", "model.num_heads=2", "model.d_ff=32",
        "model.vocab_size=300", "train.batch_size=2", "train.max_steps=1", "train.bleu_pairs=0",
    ]  # fmt: skip
    pairs = ["--source", "c.txt.gz", "--target", "c.txt.gz"]
    invoke("train", "transformer", *pairs, "--out", "t", *[a for s in tiny for a in ("--set", s)])
    assert (tmp_path / "t" / "model.safetensors").is_file()


def test_absurdly_long_lines_are_warned_about(tmp_path: Path) -> None:
    (tmp_path / "flat.txt").write_text("the cat sat on the mat . " * 5000)  # no newline
    result = invoke("train", "ngram", "--data", "flat.txt", "--out", "r")
    assert "warning: line 1 of 'flat.txt' is 125,000 characters long" in result.stderr
    assert "one sentence (or paragraph) per line" in result.stderr


# -- ARPA import ----------------------------------------------------------------------------

ARPA = """\\data\\
ngram 1=4
ngram 2=2

\\1-grams:
-1.0\t<unk>\t0
-99\t<s>\t-0.3
-0.5\t</s>
-0.6\ta\t-0.2

\\2-grams:
-0.2\t<s> a
-0.4\ta </s>

\\end\\
"""


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ("-0.6\ta", "0.5\ta", 9, "log-probability 0.5 is above 0"),
        ("-0.6\ta", "inf\ta", 9, "log-probability inf is above 0"),
        ("-0.2\t<s> a", "1e-9\t<s> a", 12, "log-probability 1e-9 is above 0"),
        ("<s>\t-0.3", "<s>\t1e300", 7, "back-off 1e300 is above 99"),
        ("<s>\t-0.3", "<s>\tinf", 7, "back-off inf is above 99"),
    ],
)
def test_arpa_numbers_out_of_range_name_the_line(
    old: str, new: str, line: int, message: str, tmp_path: Path
) -> None:
    assert old in ARPA
    (tmp_path / "m.arpa").write_text(ARPA.replace(old, new))
    result = invoke("import", "ngram", "m.arpa", "--out", "r", ok=False)
    assert_error(result, f"m.arpa:{line}: {message}", "not a valid ARPA file")
    assert_nothing_written(tmp_path)


def test_arpa_impossible_back_off_is_read(tmp_path: Path) -> None:
    (tmp_path / "m.arpa").write_text(ARPA.replace("<s>\t-0.3", "<s>\t-inf"))
    invoke("import", "ngram", "m.arpa", "--out", "r")
    assert invoke("generate", "r", "--seed", "1").stdout.strip()


# -- plugins --------------------------------------------------------------------------------

BROKEN = """
raise RuntimeError("broken on purpose")
"""

EXITS = """
import sys
sys.exit(3)
"""

RAISES_BASE_EXCEPTION = """
class Odd(BaseException):
    pass

raise Odd("not an Exception")
"""

EXITS_IN_HOOK = """
import sys
import gentool

@gentool.hookimpl
def register_models(register):
    sys.exit(4)
"""

INTERRUPTED = """
raise KeyboardInterrupt
"""


def _site(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    return site, {"PYTHONPATH": path}


def test_a_broken_plugin_named_like_a_built_in_one_hides_nothing(tmp_path: Path) -> None:
    site, env = _site(tmp_path)
    fake_distribution(site, "gentool-evil", BROKEN, "ngram")
    result = run_gentool("train", "ngram", "--out", "r", env=env)
    assert result.returncode == 0, result.stderr
    warning = "plugin 'ngram' (gentool-evil) is skipped: the entry point name 'ngram' is taken"
    assert warning in result.stderr and "by 'gentool'" in result.stderr
    plugins = json.loads(run_gentool("plugins", "--json", env=env).stdout)
    ngram = [p for p in plugins if p["name"] == "ngram"]
    assert [p["distribution"] for p in ngram] == ["gentool", "gentool-evil"]
    assert ngram[0]["error"] is None and "taken by 'gentool'" in ngram[1]["error"]
    assert run_gentool("generate", "r", "--seed", "1", env=env).stdout.strip()


@pytest.mark.parametrize(
    ("source", "error"),
    [
        (EXITS, "SystemExit: 3 (it called sys.exit)"),
        (RAISES_BASE_EXCEPTION, "Odd: not an Exception"),
        (EXITS_IN_HOOK, "SystemExit: 4 (it called sys.exit)"),
    ],
)
def test_a_plugin_that_exits_is_a_load_error(source: str, error: str, tmp_path: Path) -> None:
    site, env = _site(tmp_path)
    fake_distribution(site, "gentool-quitter", source, "quitter")
    result = run_gentool("models", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert "ngram" in {m["family"] for m in json.loads(result.stdout)}
    assert "plugin 'quitter' (gentool-quitter)" in result.stderr and error in result.stderr
    plugins = {p["name"]: p for p in json.loads(run_gentool("plugins", "--json", env=env).stdout)}
    assert plugins["quitter"]["error"] == error


def test_keyboard_interrupt_in_a_plugin_still_interrupts(tmp_path: Path) -> None:
    site, env = _site(tmp_path)
    fake_distribution(site, "gentool-ctrlc", INTERRUPTED, "ctrlc")
    result = run_gentool("models", env=env)
    assert result.returncode == 130 and "Traceback" not in result.stderr, result.stderr


# -- misleading advice ------------------------------------------------------------------------


def test_an_ngram_run_killed_mid_training_is_not_told_to_resume(
    ngram_run: Path, tmp_path: Path
) -> None:
    """SIGKILL leaves training.json and no checkpoint (ngram writes none)."""
    cut = tmp_path / "cut"
    cut.mkdir()
    meta = json.loads((ngram_run / "gentool.json").read_text())
    record = {"family": "ngram", "recipe": meta["recipe"], "data": meta["data"]}
    (cut / "training.json").write_text(json.dumps(record))
    for args in (["generate", "cut"], ["train", "ngram", "--out", "cut"]):
        message = assert_error(invoke(*args, ok=False), "stopped before writing a checkpoint")
        assert "train it again, with --force" in message and "--resume --out" not in message
    result = invoke("train", "ngram", "--resume", "--out", "cut", ok=False)
    assert_error(result, "no checkpoint to resume from", "ngram trains in one pass")
    invoke("train", "ngram", "--out", "cut", "--force")
