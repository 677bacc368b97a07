"""gentool serve: the real server, started as a user starts it (a subprocess on a free
loopback port), answering every endpoint for every kind of tiny run; its refusals; its
queue, timeout and SIGTERM drain, made deterministic by a test plugin whose model waits
for a gate file."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import fake_distribution

from gentool import api
from gentool.api import ParallelPaths
from gentool.testing import write_sample_images, write_sample_parallel

pytest.importorskip("starlette", reason="gentool serve needs the serve extra (starlette)")
pytest.importorskip("uvicorn", reason="gentool serve needs the serve extra (uvicorn)")

KEY = "s3cret-key"
NEURAL = ["train.max_steps=2", "train.batch_size=4", "train.eval_batches=1"]
TRANSFORMER = ["model.d_model=16", "model.num_layers=1", "model.num_heads=2", "model.d_ff=32",
               "model.context_length=32"]  # fmt: skip
GAN = ["model.width=4", "train.sample_every=0", *NEURAL]

# A model that waits: generate() answers a prompt P once the file P.open exists (after
# writing P.started), so a test holds a request in flight for exactly as long as it needs.
GATE = """
import time
from pathlib import Path

import gentool
from gentool.model import Model
from gentool.tasks import TextGeneration
from gentool_hello import HelloConfig, HelloModel


def wait(gate):
    if not gate:  # training's own sample, say
        return
    Path(gate + ".started").touch()
    for _ in range(3000):
        if Path(gate + ".open").exists():
            return
        time.sleep(0.01)


class GateModel(HelloModel):
    family = "gate"
    description = "waits for a gate file (a test plugin)"

    def generate(self, request):
        wait(request.prompt)
        yield request.prompt + " passed"

    def stream(self, request):
        yield " first"
        wait(request.prompt)
        yield " second"


@gentool.hookimpl
def register_models(register):
    register(GateModel)
"""


class Server:
    """``gentool serve ARGS --port 0`` in a subprocess; requests over real HTTP."""

    def __init__(self, *args: str | Path, env: dict[str, str] | None = None) -> None:
        # Not in the working directory: a module's server starts before a test's own folder.
        descriptor, name = tempfile.mkstemp(prefix="gentool-serve-", suffix=".log")
        os.close(descriptor)
        self.log = Path(name)
        with self.log.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gentool", "serve", *map(str, args), "--port", "0"],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env={**os.environ, **(env or {})},
            )
        for _ in range(1200):  # the line saying where it listens, once the models are loaded
            if found := re.search(r"http://127\.0\.0\.1:(\d+)/v1", self.log.read_text()):
                self.port = int(found[1])
                return
            if self.process.poll() is not None:
                raise AssertionError(f"gentool serve exited:\n{self.log.read_text()}")
            time.sleep(0.05)
        self.process.kill()
        raise AssertionError(f"gentool serve did not start:\n{self.log.read_text()}")

    def request(
        self, method: str, path: str, body: Any = None, key: str | None = None, raw: bytes = b""
    ) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        data = raw or (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        text = response.read().decode()
        conn.close()
        content = json.loads(text) if "json" in response.headers["content-type"] else text
        return response.status, dict(response.headers), content

    def post(self, path: str, body: Any, key: str | None = None) -> tuple[int, Any]:
        status, _, content = self.request("POST", path, body, key)
        return status, content

    def events(self, body: dict[str, Any]) -> Iterator[dict[str, Any] | str]:
        """A streamed completion's server-sent events, each as soon as it arrives."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("POST", "/v1/completions", json.dumps(body), {"Accept": "text/event-stream"})
        response = conn.getresponse()
        assert response.status == 200 and response.headers["content-type"].startswith(
            "text/event-stream"
        )
        while line := response.readline():
            if line.startswith(b"data: "):
                data = line[6:].strip().decode()
                yield data if data == "[DONE]" else json.loads(data)

    def stop(self) -> int:
        """SIGTERM, and the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout=60)
        self.log.unlink(missing_ok=True)
        return status


def assert_refused(reply: tuple[int, Any], status: int, *fragments: str) -> None:
    code, body = reply
    assert code == status, body
    message = body["error"]["message"]
    for fragment in fragments:
        assert fragment in message, message


# -- tiny runs of every kind, one server for them ---------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve-runs")
    images = write_sample_images(root / "shapes", count=12, size=16)
    source, target = write_sample_parallel(root / "src.txt", root / "tgt.txt", count=40)
    made = {
        "ng": api.train("ngram", out=root / "ng"),
        "lm": api.train("transformer", out=root / "lm",
                        overrides=["model.arch=decoder", *NEURAL, "train.seq_len=16",
                                   *TRANSFORMER]),
        "mt": api.train("transformer", out=root / "mt",
                        parallel=ParallelPaths(source, target),
                        overrides=["model.arch=encoder-decoder", *NEURAL, "train.bleu_pairs=2",
                                   *TRANSFORMER]),
        "gan": api.train("gan", out=root / "gan", data=[images],
                         overrides=["model.task=generate", "model.latent_size=8",
                                    *GAN]),
        "fix": api.train("gan", out=root / "fix", data=[images],
                         overrides=["model.task=colorize", "model.image_size=16", *GAN]),
    }  # fmt: skip
    return {name: run.path for name, run in made.items() if run is not None}


@pytest.fixture(scope="module")
def server(runs: dict[str, Path]) -> Iterator[Server]:
    started = Server(*(f"{name}={path}" for name, path in runs.items()), "--max-n", "4")
    yield started
    assert started.stop() == 0


def test_models_lists_every_run_with_its_tasks_and_endpoints(server: Server) -> None:
    status, _, body = server.request("GET", "/v1/models")
    assert status == 200
    found = {m["id"]: m for m in body["data"]}
    assert set(found) == {"ng", "lm", "mt", "gan", "fix"}
    assert found["ng"]["tasks"] == ["generate-text", "score-text"]
    assert found["ng"]["endpoints"] == ["/v1/completions", "/v1/score"]
    assert (found["mt"]["kind"], found["mt"]["endpoints"]) == ("translator", ["/v1/translations"])
    assert found["gan"]["endpoints"] == ["/v1/images/generations"]
    assert found["fix"]["endpoints"] == ["/v1/images/restorations"]
    assert server.request("GET", "/health")[2] == {"status": "ok", "models": list(found)}


@pytest.mark.parametrize("model", ["ng", "lm"])
def test_completions_n_seed_and_stop(server: Server, model: str) -> None:
    wanted = {"model": model, "prompt": "The", "max_tokens": 8, "n": 2, "seed": 3}
    status, first = server.post("/v1/completions", wanted)
    assert status == 200 and first["object"] == "text_completion" and first["model"] == model
    texts = [c["text"] for c in first["choices"]]
    assert len(texts) == 2 and all(texts)
    assert [c["index"] for c in first["choices"]] == [0, 1]
    assert server.post("/v1/completions", wanted)[1]["choices"] == first["choices"]  # seeded
    # usage: the prompt's tokens once, each continuation's (wanted: 8 tokens; a character
    # model's 8 tokens are 8 characters)
    used = first["usage"]
    assert used["total_tokens"] == used["prompt_tokens"] + used["completion_tokens"]
    assert used["prompt_tokens"] >= 1 and used["completion_tokens"] >= 2
    if model == "lm":
        assert (used["prompt_tokens"], used["completion_tokens"]) == (3, 16)
    # A stop sequence cuts the text before it; echo gives the prompt back.
    stop = texts[0][len(texts[0]) // 2]
    _, cut = server.post("/v1/completions", {**wanted, "stop": stop, "echo": True})
    choice = cut["choices"][0]
    assert choice["text"] == "The" + texts[0][: texts[0].index(stop)]
    assert choice["finish_reason"] == "stop"


@pytest.mark.parametrize("model", ["ng", "lm"])
def test_streamed_completion_is_the_same_text(server: Server, model: str) -> None:
    wanted = {"model": model, "prompt": "The", "max_tokens": 8, "seed": 5}
    whole = server.post("/v1/completions", wanted)[1]["choices"][0]["text"]
    events = list(server.events({**wanted, "stream": True}))
    assert events[-1] == "[DONE]"
    chunks = [e for e in events[:-1] if isinstance(e, dict)]
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert len(chunks) > 2  # token by token (the transformer too)


def test_translations_one_per_text(server: Server) -> None:
    status, body = server.post(
        "/v1/translations", {"model": "mt", "input": ["the cat", "a dog"], "beam": 2}
    )
    assert status == 200
    assert [(d["index"], d["source"]) for d in body["data"]] == [(0, "the cat"), (1, "a dog")]
    assert all(isinstance(d["translation"], str) for d in body["data"])


def test_translations_arriving_together_are_translated_as_alone(
    server: Server, runs: dict[str, Path]
) -> None:
    from gentool.serve.app import Served
    from gentool.tasks import TranslationRequest

    model = api.load(runs["mt"])
    two, one = TranslationRequest(num_beams=2), TranslationRequest(num_beams=1)
    items = [(["the cat", "a dog"], two), (["a dog"], one), (["the cat", ""], two)]
    served = Served("mt", runs["mt"], model, None)  # type: ignore[arg-type]
    assert served.translate_batch(items) == [model.translate(t, o) for t, o in items]
    # Through the server, concurrent requests (batched when they meet) answer the same.
    alone = [server.post("/v1/translations", {"model": "mt", "input": t, "beam": o.num_beams})
             for t, o in items]  # fmt: skip
    replies: list[Any] = [None] * len(items)

    def ask(i: int) -> None:
        texts, options = items[i]
        body = {"model": "mt", "input": texts, "beam": options.num_beams}
        replies[i] = server.post("/v1/translations", body)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(items))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert replies == alone


@pytest.mark.parametrize("model", ["ng", "lm"])
def test_score_gives_perplexity_per_text(server: Server, model: str) -> None:
    status, body = server.post("/v1/score", {"model": model, "input": ["The cat.", "A dog."]})
    assert status == 200 and len(body["data"]) == 2
    assert all(d["perplexity"] > 1 and d["tokens"] > 0 for d in body["data"])


def test_image_generation_and_restoration_as_png(server: Server) -> None:
    from PIL import Image

    status, body = server.post("/v1/images/generations", {"model": "gan", "n": 2, "seed": 1})
    assert status == 200 and len(body["data"]) == 2
    image = Image.open(io.BytesIO(base64.b64decode(body["data"][0]["b64_json"])))
    assert (image.format, image.size) == ("PNG", (28, 28))
    status, fixed = server.post(
        "/v1/images/restorations", {"model": "fix", "image": body["data"][0]["b64_json"]}
    )
    assert status == 200
    restored = Image.open(io.BytesIO(base64.b64decode(fixed["data"][0]["b64_json"])))
    assert restored.format == "PNG" and restored.size == image.size


def test_metrics_count_requests_and_output(server: Server) -> None:
    server.post("/v1/completions", {"model": "ng", "prompt": "The", "max_tokens": 4})
    status, headers, text = server.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert re.search(
        r'gentool_requests_total\{endpoint="/v1/completions",model="ng",status="200"\} \d+', text
    )
    assert 'gentool_request_seconds_count{endpoint="/v1/completions",model="ng"}' in text
    assert 'gentool_output_total{model="ng",unit="samples"}' in text


@pytest.mark.parametrize(
    ("path", "body", "status", "fragments"),
    [
        ("/v1/completions", {"model": "nope"}, 404, ["unknown model 'nope'", "ng, lm"]),
        ("/v1/completions", {"model": "gan"}, 400, ["cannot generate text", "generate-image"]),
        ("/v1/translations", {"model": "ng", "input": "x"}, 400, ["cannot translate"]),
        ("/v1/completions", {"prompt": "x"}, 400, ["'model' is required"]),
        ("/v1/completions", {"model": "ng", "max_tokens": "8"}, 400,
         ["'max_tokens' must be an integer, not a string"]),
        ("/v1/completions", {"model": "ng", "max_tokens": 100000}, 400,
         ["'max_tokens' is 100000", "from 1 to 512", "limit"]),
        ("/v1/completions", {"model": "ng", "n": 5}, 400, ["'n' is 5", "from 1 to 4"]),
        ("/v1/completions", {"model": "ng", "prompt": ["a", "b"], "n": 3}, 400,
         ["2 prompts x n=3", "--max-n"]),
        ("/v1/completions", {"model": "ng", "temperature": -1}, 400, ["'temperature' is -1"]),
        ("/v1/completions", {"model": "ng", "stream": True, "n": 2}, 400, ["one prompt and n=1"]),
        ("/v1/completions", {"model": "ng", "stop": [""]}, 400, ["'stop' must be"]),
        ("/v1/completions", {"model": "ng", "logprobs": 3}, 400, ["'logprobs' is not supported"]),
        ("/v1/completions", {"model": "ng", "colour": 1}, 400, ["unknown field 'colour'"]),
        ("/v1/completions", [1, 2], 400, ["must be a JSON object, not a list"]),
        ("/v1/images/generations", {"model": "gan", "response_format": "url"}, 400,
         ["b64_json"]),
        ("/v1/images/generations", {"model": "gan", "class": "cat"}, 400,
         ["not class-conditional"]),
        ("/v1/images/restorations", {"model": "fix", "image": "***"}, 400, ["not base64"]),
        ("/v1/images/restorations", {"model": "fix", "image": "aGVsbG8="}, 400,
         ["not a readable PNG or JPEG"]),
        ("/v1/score", {"model": "ng", "input": []}, 400, ["send 1 to 64"]),
    ],
)  # fmt: skip
def test_bad_requests_are_json_errors_naming_the_problem(
    server: Server, path: str, body: Any, status: int, fragments: list[str]
) -> None:
    assert_refused(server.post(path, body), status, *fragments)


def test_bad_json_unknown_paths_and_methods(server: Server) -> None:
    status, _, body = server.request("POST", "/v1/completions", raw=b"{not json")
    assert status == 400 and "not valid JSON" in body["error"]["message"]
    status, _, body = server.request("GET", "/v1/nothing")
    assert status == 404 and "no endpoint /v1/nothing" in body["error"]["message"]
    status, _, body = server.request("GET", "/v1/completions")
    assert status == 405 and "GET is not allowed" in body["error"]["message"]


def test_openai_client_talks_to_it(server: Server) -> None:
    openai = pytest.importorskip("openai", reason="the openai client is not installed")
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="unused")
    assert {m.id for m in client.models.list()} == {"ng", "lm", "mt", "gan", "fix"}
    done = client.completions.create(model="ng", prompt="The", max_tokens=6, n=2, seed=1)
    assert len(done.choices) == 2 and all(c.text for c in done.choices)
    pieces = client.completions.create(model="ng", prompt="The", max_tokens=6, seed=1,
                                       stream=True)  # fmt: skip
    assert "".join(p.choices[0].text for p in pieces) == done.choices[0].text
    images = client.images.generate(model="gan", prompt="", n=1, response_format="b64_json")
    assert images.data and base64.b64decode(images.data[0].b64_json or "")[:4] == b"\x89PNG"
    with pytest.raises(openai.NotFoundError, match="unknown model"):
        client.completions.create(model="nope", prompt="x")


# -- the API key, the limits ----------------------------------------------------------------------


def test_api_key_refused_and_accepted(runs: dict[str, Path]) -> None:
    started = Server(
        runs["ng"],
        env={"GENTOOL_API_KEY": KEY},
    )
    try:
        wanted = {"model": "ng", "prompt": "The", "max_tokens": 3}
        for key in (None, "wrong", KEY + "x"):
            status, headers, body = started.request("POST", "/v1/completions", wanted, key)
            assert status == 401 and headers["www-authenticate"] == "Bearer"
            assert "missing or wrong API key" in body["error"]["message"]
        assert started.request("GET", "/v1/models")[0] == 401
        assert started.post("/v1/completions", wanted, KEY)[0] == 200
        assert started.request("GET", "/health")[0] == 200  # for load balancers: no key
        assert "API key required" in started.log.read_text()
    finally:
        assert started.stop() == 0


def test_body_and_image_size_limits(runs: dict[str, Path]) -> None:
    from PIL import Image

    started = Server(runs["fix"], "--max-body", "4096", "--max-image-pixels", "100")
    try:
        status, _, body = started.request("POST", "/v1/images/restorations", raw=b"x" * 5000)
        assert status == 413 and "limit of 4096 bytes (--max-body)" in body["error"]["message"]
        png = io.BytesIO()
        Image.new("RGB", (11, 10)).save(png, format="PNG")
        image = base64.b64encode(png.getvalue()).decode()
        assert_refused(started.post("/v1/images/restorations", {"model": "fix", "image": image}),
                       413, "11x10 pixels", "limit of 100 pixels")  # fmt: skip
    finally:
        assert started.stop() == 0


def test_bad_runs_and_a_busy_port_fail_before_serving(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    from gentool.testing import assert_error, run_gentool

    result = run_gentool("serve", tmp_path / "missing")
    assert_error(result, "missing")
    result = run_gentool("serve", runs["ng"], f"x={runs['lm']}", f"x={runs['mt']}")
    assert_error(result, "two runs would be served as 'x'")
    started = Server(runs["ng"])
    try:
        assert_error(run_gentool("serve", runs["ng"], "--port", started.port),
                     f"port {started.port} on 127.0.0.1 is in use")  # fmt: skip
    finally:
        started.stop()


# -- the queue, the timeout and SIGTERM, with a model that waits ---------------------------------


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("gate")
    (root / "site").mkdir()
    fake_distribution(root / "site", "gentool-gate", GATE, "gate")
    env = {"PYTHONPATH": os.pathsep.join([str(root / "site"), os.environ.get("PYTHONPATH", "")])}
    from gentool.testing import run_gentool

    (root / "text.txt").write_text("abc\n", encoding="utf-8")
    result = run_gentool(
        "train", "gate", "--data", root / "text.txt", "--out", root / "run", env=env
    )
    assert result.returncode == 0, result.stderr
    return root / "run", env


def in_flight(server: Server, body: dict[str, Any]) -> tuple[threading.Thread, list[Any]]:
    """Send ``body`` to /v1/completions from a thread; its reply lands in the list."""
    reply: list[Any] = []
    thread = threading.Thread(target=lambda: reply.append(server.post("/v1/completions", body)))
    thread.start()
    return thread, reply


def wait_for(path: Path) -> None:
    for _ in range(3000):
        if path.exists():
            return
        time.sleep(0.01)
    raise AssertionError(f"{path} never appeared")


def test_full_queue_is_503_with_retry_after(
    gated: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    run, env = gated
    started = Server(run, "--queue-size", "1", env=env)
    try:
        a, b = str(tmp_path / "a"), str(tmp_path / "b")
        first, first_reply = in_flight(started, {"model": "run", "prompt": a})
        wait_for(Path(a + ".started"))  # a runs; b waits in the queue of one
        second, second_reply = in_flight(started, {"model": "run", "prompt": b})
        wait_queued(started, 1)
        status, headers, body = started.request("POST", "/v1/completions", {"model": "run"})
        assert status == 503 and headers["retry-after"] == "1"
        assert "busy" in body["error"]["message"] and "--queue-size" in body["error"]["message"]
        Path(a + ".open").touch()
        Path(b + ".open").touch()
        first.join(60)
        second.join(60)
        assert first_reply[0][1]["choices"][0]["text"] == " passed"
        assert second_reply[0][0] == 200
    finally:
        assert started.stop() == 0


def wait_queued(server: Server, count: int) -> None:
    for _ in range(3000):
        if (
            f'gentool_queued_requests{{model="run"}} {count}'
            in server.request("GET", "/metrics")[2]
        ):
            return
        time.sleep(0.01)
    raise AssertionError(f"never {count} requests queued")


def test_requests_waiting_together_run_as_one_batch(
    gated: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    run, env = gated
    started = Server(run, "--max-batch", "3", env=env)
    try:
        gates = [str(tmp_path / name) for name in "abcde"]
        first = in_flight(started, {"model": "run", "prompt": gates[0]})
        wait_for(Path(gates[0] + ".started"))  # a runs alone; b, c, d, e wait meanwhile
        others = [in_flight(started, {"model": "run", "prompt": g}) for g in gates[1:]]
        wait_queued(started, 4)
        for gate in gates:
            Path(gate + ".open").touch()
        for thread, reply in [first, *others]:
            thread.join(60)
            assert reply[0][0] == 200
        text = started.request("GET", "/metrics")[2]
        # a; then b, c, d together (--max-batch 3); then e
        assert 'gentool_batches_total{model="run"} 3' in text
        assert 'gentool_batched_requests_total{model="run"} 5' in text
    finally:
        assert started.stop() == 0


def test_timeout_is_504_and_streams_arrive_as_made(
    gated: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    run, env = gated
    started = Server(run, "--timeout", "1", env=env)
    try:
        gate = str(tmp_path / "slow")
        assert_refused(started.post("/v1/completions", {"model": "run", "prompt": gate}), 504,
                       "longer than 1 s (--timeout)")  # fmt: skip
        Path(gate + ".open").touch()  # free the worker
        # The first piece arrives while the model still waits for its gate.
        gate = str(tmp_path / "stream")
        events = started.events({"model": "run", "prompt": gate, "stream": True})
        first = next(events)
        assert isinstance(first, dict) and first["choices"][0]["text"] == " first"
        assert not Path(gate + ".open").exists()
        Path(gate + ".open").touch()
        rest = list(events)
        assert rest[0]["choices"][0]["text"] == " second" and rest[-1] == "[DONE]"  # type: ignore[index]
    finally:
        assert started.stop() == 0


def test_sigterm_answers_the_requests_in_flight_then_exits_0(
    gated: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    run, env = gated
    started = Server(run, env=env)
    gate = str(tmp_path / "drain")
    thread, reply = in_flight(started, {"model": "run", "prompt": gate})
    wait_for(Path(gate + ".started"))
    started.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)  # the server is draining: it still holds the request
    assert started.process.poll() is None
    Path(gate + ".open").touch()
    thread.join(60)
    assert reply[0] == (200, reply[0][1]) and reply[0][1]["choices"][0]["text"] == " passed"
    assert started.process.wait(timeout=60) == 0
    assert "every request in flight was answered" in started.log.read_text()
    started.log.unlink()


def test_image_translation_both_ways_and_a_one_way_model_refused(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    gray = colour.mean(axis=3).astype(np.uint8)
    np.savez(tmp_path / "pairs.npz", a=gray, b=colour)
    tiny = ["model.image_size=16", "train.val_fraction=0", *GAN]
    made = {
        task: api.train("gan", out=tmp_path / task, data=[tmp_path / "pairs.npz"],
                        overrides=[f"model.task={task}", *tiny])
        for task in ("paired", "cyclegan")
    }  # fmt: skip
    started = Server(*(f"{task}={run.path}" for task, run in made.items() if run is not None))
    try:
        found = {m["id"]: m for m in started.request("GET", "/v1/models")[2]["data"]}
        assert found["paired"]["endpoints"] == ["/v1/images/translations"]
        out = io.BytesIO()
        Image.fromarray(gray[0], "L").save(out, format="PNG")
        image = base64.b64encode(out.getvalue()).decode()
        for model, reverse in (("paired", False), ("cyclegan", False), ("cyclegan", True)):
            status, body = started.post(
                "/v1/images/translations", {"model": model, "image": image, "reverse": reverse}
            )
            assert status == 200, body
            result = Image.open(io.BytesIO(base64.b64decode(body["data"][0]["b64_json"])))
            assert (result.format, result.size) == ("PNG", (16, 16))
        assert_refused(
            started.post("/v1/images/translations",
                         {"model": "paired", "image": image, "reverse": True}),
            400, "reverse",
        )  # fmt: skip
    finally:
        assert started.stop() == 0


def test_music_generation_as_midi(tmp_path: Path) -> None:
    pytest.importorskip("symusic")
    import symusic

    from gentool.testing import write_sample_music

    run = api.train("ngram", data=[write_sample_music(tmp_path / "midi", count=6, bars=4)],
                    out=tmp_path / "tune")  # fmt: skip
    assert run is not None
    started = Server(f"tune={run.path}")
    try:
        found = {m["id"]: m for m in started.request("GET", "/v1/models")[2]["data"]}
        assert found["tune"]["endpoints"] == ["/v1/music/generations"]
        request = {"model": "tune", "n": 2, "bars": 2, "seed": 3}
        status, body = started.post("/v1/music/generations", request)
        assert status == 200, body
        assert len(body["data"]) == 2 and all(p["notes"] > 0 for p in body["data"])
        path = tmp_path / "piece.mid"
        path.write_bytes(base64.b64decode(body["data"][0]["b64_midi"]))
        assert symusic.Score(str(path)).note_num() == body["data"][0]["notes"]
        again = started.post("/v1/music/generations", request)[1]
        assert again["data"] == body["data"]  # the same seed: the same pieces
        assert_refused(started.post("/v1/music/generations", {"model": "tune", "bars": 0}),
                       400, "bars")  # fmt: skip
    finally:
        assert started.stop() == 0
