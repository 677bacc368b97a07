"""The HTTP application (Starlette): one handler per endpoint, each parse -> the model's
capability on its worker thread -> JSON. ``ENDPOINTS`` is the one place that maps a
capability to its endpoints; a new task adds a line there and a handler."""

from __future__ import annotations

import asyncio
import base64
import hmac
import io
import json
import logging
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from gentool import api
from gentool.errors import GentoolError
from gentool.model import Model
from gentool.serve.schema import BadRequest, Body, Limits, Settings, cut_at_stop, stops
from gentool.serve.workers import Busy, Metrics, ModelWorker
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

log = logging.getLogger("gentool.serve")


@dataclass
class Served:
    """A served run: its id in requests, its loaded model and its worker."""

    id: str
    path: Path
    model: Model
    worker: ModelWorker

    def generate_batch(self, requests: list[GenerationRequest]) -> list[list[str]]:
        """The batch function of completion jobs (one per model: jobs batch together)."""
        model: TextGeneration = self.model  # type: ignore[assignment]
        return model.generate_batch(requests)

    def translate_batch(self, items: list[tuple[list[str], TranslationRequest]]) -> list[list[str]]:
        """The batch function of translation jobs: the texts of requests with the same
        options are translated in one call (a translator translates a sentence the same in
        any batch), each request then given its own."""
        model: Translation = self.model  # type: ignore[assignment]
        out: list[list[str]] = [[] for _ in items]
        for wanted in dict.fromkeys(options for _, options in items):
            mine = [i for i, (_, options) in enumerate(items) if options == wanted]
            made = iter(model.translate([t for i in mine for t in items[i][0]], wanted))
            for i in mine:
                out[i] = [next(made) for _ in items[i][0]]
        return out

    def describe(self) -> dict[str, Any]:
        model = self.model
        return {
            "id": self.id,
            "object": "model",
            "created": int(self.path.stat().st_mtime) if self.path.exists() else 0,
            "owned_by": "gentool",
            "family": model.family,
            "kind": model.kind_name(),
            "tasks": list(model.tasks()),
            "endpoints": [
                path
                for cap, ends in ENDPOINTS.items()
                if isinstance(model, cap)
                for path, _ in ends
            ],  # fmt: skip
        }


Handler = Callable[["Server", Request], Awaitable[Response]]


class Server:
    """The served models, the settings and the counters the handlers share."""

    def __init__(self, models: dict[str, Served], settings: Settings) -> None:
        self.models = models
        self.settings = settings
        self.metrics = Metrics()

    def model(self, body: Body, capability: type[Capability], doing: str) -> Served:
        name = body.model()
        served = self.models.get(name)
        if served is None:
            raise BadRequest(
                f"unknown model '{name}'; this server serves: {', '.join(self.models)}",
                "model",
                404,
            )
        try:
            api.require(served.model, capability, doing)
        except GentoolError as err:
            raise BadRequest(f"model '{name}': {err}", "model") from None
        return served

    async def read_json(self, request: Request) -> Any:
        """The body as JSON, refused past ``max_body`` bytes before it is all read."""
        limit = self.settings.max_body
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise _too_large(limit)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        try:
            return json.loads(b"".join(chunks))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BadRequest(f"the request body is not valid JSON ({err})") from None

    def authorized(self, request: Request) -> bool:
        key = self.settings.api_key
        if key is None:
            return True
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        # Constant time: the comparison does not reveal how much of a guess was right.
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), key.encode()
        )


def _too_large(limit: int) -> BadRequest:
    return BadRequest(
        f"the request body is over this server's limit of {limit} bytes (--max-body)",
        status=413,
    )


def error(status: int, message: str, param: str | None = None, **headers: str) -> JSONResponse:
    """An OpenAI-style error body."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": status}}
    return JSONResponse(body, status, headers=headers or None)


def endpoint(name: str, auth: bool = True) -> Callable[[Handler], Callable[..., Any]]:
    """Wrap a handler: the API key, every failure as a JSON error, the counters."""

    def wrap(handler: Handler) -> Callable[..., Any]:
        async def route(request: Request) -> Response:
            server: Server = request.app.state.server
            started = time.perf_counter()
            request.state.started = started
            try:
                if auth and not server.authorized(request):
                    response: Response = error(
                        401,
                        "missing or wrong API key; send the header 'Authorization: Bearer KEY'",
                        **{"WWW-Authenticate": "Bearer"},
                    )
                else:
                    request.state.model = "-"
                    response = await handler(server, request)
            except BadRequest as err:
                response = error(err.status, err.message, err.param)
            except Busy as err:
                response = error(
                    503,
                    f"model '{err}' is busy: {server.settings.queue_size} requests are "
                    "waiting for it (--queue-size); retry later",
                    **{"Retry-After": "1"},
                )
            except TimeoutError:
                response = error(
                    504,
                    f"the request took longer than {server.settings.timeout:g} s (--timeout); "
                    "ask for less (max_tokens, n) or retry",
                )
            except GentoolError as err:  # what the model refused: it names the problem
                response = error(400, str(err))
            except Exception as err:  # a bug: logged in full, answered without internals
                log.exception("%s failed", name)
                response = error(
                    500, f"the server failed on this request ({type(err).__name__}); "
                    "its log has the details",
                )  # fmt: skip
            model = getattr(request.state, "model", "-")
            if not isinstance(response, StreamingResponse):  # a stream counts at its end
                server.metrics.observe(name, model, response.status_code,
                                       time.perf_counter() - started)  # fmt: skip
            return response

        return route

    return wrap


# -- handlers --------------------------------------------------------------------------------


@endpoint("/health", auth=False)
async def health(server: Server, request: Request) -> Response:
    return JSONResponse({"status": "ok", "models": list(server.models)})


@endpoint("/metrics")
async def metrics(server: Server, request: Request) -> Response:
    queued = {name: s.worker.queued() for name, s in server.models.items()}
    batches = {name: (s.worker.batches, s.worker.batched) for name, s in server.models.items()}
    text = server.metrics.text(queued, batches)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


@endpoint("/v1/models")
async def list_models(server: Server, request: Request) -> Response:
    return JSONResponse({"object": "list", "data": [s.describe() for s in server.models.values()]})


@endpoint("/v1/models/{id}")
async def get_model(server: Server, request: Request) -> Response:
    name = request.path_params["id"]
    if name not in server.models:
        raise BadRequest(f"unknown model '{name}'; this server serves: {', '.join(server.models)}",
                         status=404)  # fmt: skip
    return JSONResponse(server.models[name].describe())


COMPLETION_FIELDS = (
    "model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "n", "seed", "stop",
    "stream", "echo", "repetition_penalty", "stream_options",
)  # fmt: skip


@endpoint("/v1/completions")
async def completions(server: Server, request: Request) -> Response:
    limits = server.settings.limits
    body = Body(await server.read_json(request), COMPLETION_FIELDS)
    served = server.model(body, TextGeneration, "generate text")
    request.state.model = served.id
    prompts = body.strings("prompt", limits.max_n, required=False) or [""]
    n = body.integer("n", 1, 1, limits.max_n)
    assert n is not None
    if len(prompts) * n > limits.max_n:
        raise BadRequest(f"{len(prompts)} prompts x n={n} is over this server's limit of "
                         f"{limits.max_n} completions per request (--max-n)", "n")  # fmt: skip
    template = GenerationRequest(
        num_samples=n,
        max_tokens=body.integer("max_tokens", 16, 1, limits.max_tokens) or 16,
        temperature=body.number("temperature", 1.0, 0.0, 100.0) or 0.0,
        top_p=body.number("top_p", None, 0.0, 1.0) or None,
        top_k=body.integer("top_k", None, 1),
        seed=body.integer("seed", None, 0, 2**32 - 1),
        repetition_penalty=body.number("repetition_penalty", 1.0, 1e-6) or 1.0,
    )
    stop, echo = stops(body), body.boolean("echo")
    if body.boolean("stream"):
        if n != 1 or len(prompts) != 1:
            raise BadRequest("'stream': true takes one prompt and n=1", "stream")
        return await stream_completion(
            server, request, served, replace(template, prompt=prompts[0]), stop, echo
        )

    # Each prompt is a batchable job: concurrent requests' prompts run together.
    samples = await asyncio.gather(*(
        served.worker.call_batched(served.generate_batch, replace(template, prompt=p),
                                   server.settings.timeout)
        for p in prompts
    ))  # fmt: skip
    choices: list[dict[str, Any]] = []
    made_texts: list[str] = []
    for prompt, made in zip(prompts, samples, strict=True):
        for sample in made:
            text, stopped = cut_at_stop(continuation(sample, prompt), stop)
            made_texts.append(text)
            choices.append({
                "text": prompt + text if echo else text,
                "index": len(choices),
                "logprobs": None,
                "finish_reason": "stop" if stopped else "length",
            })  # fmt: skip
            server.metrics.produced(served.id, "characters", len(text))
    server.metrics.produced(served.id, "samples", len(choices))
    answer = completion(served.id, choices)
    if (used := usage(served.model, prompts, made_texts)) is not None:
        answer["usage"] = used
    return JSONResponse(answer)


def usage(model: Any, prompts: list[str], made: list[str]) -> dict[str, int] | None:
    """OpenAI's ``usage``: the tokens of the prompts (each once, whatever n) and of the
    returned continuations, as the model's tokenizer reads them; None when the kind cannot
    count tokens."""
    counts = [model.count_tokens(text) for text in [*prompts, *made]]
    if any(count is None for count in counts):
        return None
    prompt_tokens = sum(counts[: len(prompts)])
    completion_tokens = sum(counts[len(prompts) :])
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}  # fmt: skip


def completion(model: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion",
            "created": int(time.time()), "model": model, "choices": choices}  # fmt: skip


def continuation(sample: str, prompt: str) -> str:
    """What a model added to ``prompt`` (gentool's samples start with the prompt)."""
    return sample[len(prompt) :] if sample.startswith(prompt) else sample


async def stream_completion(
    server: Server,
    request: Request,
    served: Served,
    wanted: GenerationRequest,
    stop: list[str],
    echo: bool,
) -> Response:
    """Server-sent events, one per piece the model makes, then ``data: [DONE]``."""
    model: TextGeneration = served.model  # type: ignore[assignment]
    pieces = await served.worker.stream(lambda: model.stream(wanted), server.settings.timeout)
    ident, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())

    def event(text: str, finish: str | None) -> bytes:
        chunk = {"id": ident, "object": "text_completion", "created": created,
                 "model": served.id,
                 "choices": [{"text": text, "index": 0, "logprobs": None,
                              "finish_reason": finish}]}  # fmt: skip
        return f"data: {json.dumps(chunk)}\n\n".encode()

    async def events() -> AsyncIterator[bytes]:
        status, made, sent = 200, "", 0
        try:
            if echo and wanted.prompt:
                yield event(wanted.prompt, None)
            finish = "length"
            async for piece in pieces:
                made += piece
                text, stopped = cut_at_stop(made, stop)
                if stopped:
                    yield event(text[sent:], None)
                    sent, finish = len(text), "stop"
                    break
                safe = len(made) - _held_back(made, stop)  # may begin a stop sequence
                if safe > sent:
                    yield event(made[sent:safe], None)
                    sent = safe
            else:
                if len(made) > sent:
                    yield event(made[sent:], None)
                    sent = len(made)
            yield event("", finish)
            yield b"data: [DONE]\n\n"
        except TimeoutError:
            status = 504
            yield _event_error(504, f"the stream took longer than {server.settings.timeout:g} "
                               "s (--timeout)")  # fmt: skip
        except GentoolError as err:
            status = 400
            yield _event_error(400, str(err))
        except Exception as err:
            status = 500
            log.exception("/v1/completions stream failed")
            yield _event_error(500, f"the model failed mid-stream ({type(err).__name__})")
        finally:
            await pieces.aclose()
            server.metrics.produced(served.id, "characters", sent)
            server.metrics.produced(served.id, "samples", 1)
            server.metrics.observe("/v1/completions", served.id, status,
                                   time.perf_counter() - request.state.started)  # fmt: skip

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def _held_back(text: str, stop: list[str]) -> int:
    """How many final characters of ``text`` could be the start of a stop sequence."""
    return max((k for s in stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)


def _event_error(status: int, message: str) -> bytes:
    body = {"error": {"message": message, "type": "server_error", "param": None, "code": status}}
    return f"data: {json.dumps(body)}\n\n".encode()


@endpoint("/v1/translations")
async def translations(server: Server, request: Request) -> Response:
    limits = server.settings.limits
    body = Body(await server.read_json(request),
                ("model", "input", "beam", "length_penalty", "max_tokens"))  # fmt: skip
    served = server.model(body, Translation, "translate")
    request.state.model = served.id
    texts = body.strings("input", limits.max_inputs)
    wanted = TranslationRequest(
        num_beams=body.integer("beam", 4, 1, 16) or 4,
        length_penalty=body.number("length_penalty", 1.0, -10.0, 10.0) or 0.0,
        max_tokens=body.integer("max_tokens", None, 1, limits.max_tokens),
    )
    # A batchable job: concurrent requests' texts are translated together.
    out = await served.worker.call_batched(
        served.translate_batch, (texts, wanted), server.settings.timeout
    )
    server.metrics.produced(served.id, "translations", len(out))
    data = [{"index": i, "source": s, "translation": t}
            for i, (s, t) in enumerate(zip(texts, out, strict=True))]  # fmt: skip
    return JSONResponse({"object": "list", "model": served.id, "data": data})


@endpoint("/v1/score")
async def score(server: Server, request: Request) -> Response:
    body = Body(await server.read_json(request), ("model", "input"))
    served = server.model(body, TextScoring, "score text")
    request.state.model = served.id
    texts = body.strings("input", server.settings.limits.max_inputs)
    model: TextScoring = served.model  # type: ignore[assignment]

    def run() -> list[dict[str, Any]]:
        # The scoring interface reads files (gentool evaluate --data): one per text.
        with tempfile.TemporaryDirectory(prefix="gentool-score-") as folder:
            results = []
            for i, text in enumerate(texts):
                path = Path(folder) / f"{i}.txt"
                path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
                results.append({"index": i, **model.evaluate_text([path])})
            return results

    data = await served.worker.call(run, server.settings.timeout)
    return JSONResponse({"object": "list", "model": served.id, "data": data})


@endpoint("/v1/images/generations")
async def image_generations(server: Server, request: Request) -> Response:
    limits = server.settings.limits
    body = Body(await server.read_json(request),
                ("model", "prompt", "n", "seed", "class", "response_format"))  # fmt: skip
    served = server.model(body, ImageGeneration, "generate images")
    request.state.model = served.id
    _b64_only(body)
    model: ImageGeneration = served.model  # type: ignore[assignment]
    label = body.data.get("class")
    if label is not None and (isinstance(label, bool) or not isinstance(label, str | int)):
        raise BadRequest("'class' must be a class name or number", "class")
    prompt = body.string("prompt")
    if prompt and label is None:
        if not model.classes():
            raise BadRequest(f"model '{served.id}' draws without a prompt; send prompt ''",
                             "prompt")  # fmt: skip
        label = prompt  # a conditional model's prompt names its class
    try:
        index = api.class_index(served.model, None if label is None else str(label))
    except GentoolError as err:
        raise BadRequest(str(err), "class") from None
    wanted = GenerationRequest(
        num_samples=body.integer("n", 1, 1, limits.max_n) or 1,
        seed=body.integer("seed", None, 0, 2**32 - 1),
        class_label=index,
    )
    images = await served.worker.call(
        lambda: [png_b64(i) for i in model.generate_images(wanted)], server.settings.timeout
    )
    server.metrics.produced(served.id, "images", len(images))
    return JSONResponse({"created": int(time.time()), "data": [{"b64_json": b} for b in images]})


@endpoint("/v1/images/restorations")
async def image_restorations(server: Server, request: Request) -> Response:
    body = Body(await server.read_json(request), ("model", "image", "response_format"))
    served = server.model(body, ImageRestoration, "restore images")
    request.state.model = served.id
    _b64_only(body)
    image = read_image(body.string("image", required=True), server.settings.limits)
    model: ImageRestoration = served.model  # type: ignore[assignment]
    (restored,) = await served.worker.call(
        lambda: [png_b64(i) for i in model.restore([image])], server.settings.timeout
    )
    server.metrics.produced(served.id, "images", 1)
    return JSONResponse({"created": int(time.time()), "data": [{"b64_json": restored}]})


@endpoint("/v1/images/translations")
async def image_translations(server: Server, request: Request) -> Response:
    body = Body(await server.read_json(request), ("model", "image", "reverse", "response_format"))
    served = server.model(body, ImageTranslation, "translate images")
    request.state.model = served.id
    _b64_only(body)
    image = read_image(body.string("image", required=True), server.settings.limits)
    reverse = body.boolean("reverse")
    model: ImageTranslation = served.model  # type: ignore[assignment]
    (translated,) = await served.worker.call(
        lambda: [png_b64(i) for i in model.transform([image], reverse)], server.settings.timeout
    )
    server.metrics.produced(served.id, "images", 1)
    return JSONResponse({"created": int(time.time()), "data": [{"b64_json": translated}]})


@endpoint("/v1/music/generations")
async def music_generations(server: Server, request: Request) -> Response:
    fields = ("model", "n", "bars", "max_tokens", "temperature", "top_k", "top_p", "seed")
    body = Body(await server.read_json(request), fields)
    served = server.model(body, MusicGeneration, "generate music")
    request.state.model = served.id
    limits = server.settings.limits
    wanted = MusicRequest(
        num_samples=body.integer("n", 1, 1, limits.max_n) or 1,
        bars=body.integer("bars", 4, 1, 64),
        max_tokens=body.integer("max_tokens", limits.max_tokens, 1, limits.max_tokens) or 1,
        temperature=body.number("temperature", 1.0, 0.0, 10.0) or 0.0,
        top_k=body.integer("top_k", None, 1),
        top_p=body.number("top_p", None, 0.0, 1.0),
        seed=body.integer("seed", None, 0, 2**32 - 1),
    )
    model: MusicGeneration = served.model  # type: ignore[assignment]
    pieces = await served.worker.call(
        lambda: [midi_b64(p) for p in model.generate_music(wanted)], server.settings.timeout
    )
    server.metrics.produced(served.id, "pieces", len(pieces))
    return JSONResponse({"created": int(time.time()), "data": pieces})


def midi_b64(piece: Any) -> dict[str, Any]:
    """A generated piece (``gentool.data.music.Decoded``) as base64 MIDI, with its counts."""
    from gentool.data.music import write_midi

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "piece.mid"
        write_midi(piece.score, path)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
    return {"b64_midi": data, "notes": piece.notes, "bars": piece.bars}


def _b64_only(body: Body) -> None:
    if body.string("response_format", "b64_json") != "b64_json":
        raise BadRequest("only 'response_format': 'b64_json' is served (no image URLs)",
                         "response_format")  # fmt: skip


def read_image(data: str, limits: Limits) -> Any:
    """A base64 PNG/JPEG as a PIL image; its size checked before its pixels are decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise BadRequest("'image' is not base64 data", "image") from None
    try:
        with Image.open(io.BytesIO(raw)) as image:
            width, height = image.size
            if width * height > limits.max_image_pixels:
                raise BadRequest(
                    f"'image' is {width}x{height} pixels, over this server's limit of "
                    f"{limits.max_image_pixels} pixels (--max-image-pixels)", "image", 413,
                )  # fmt: skip
            image.load()
            return image.copy()
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        raise BadRequest(f"'image' is not a readable PNG or JPEG image ({err})", "image") from None


def png_b64(image: Any) -> str:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode("ascii")


# -- the application -----------------------------------------------------------------------


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return error(404, f"no endpoint {request.url.path}; see GET /v1/models for what is served")
    if status == 405:
        return error(405, f"{request.method} is not allowed on {request.url.path}")
    return error(status, exc.detail if isinstance(exc, HTTPException) else "server error")


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error", exc_info=exc)
    return error(500, "the server failed on this request; its log has the details")


#: The one place that maps a capability to its endpoints (POST). A new task adds a line
#: here and its handler. Image and music scoring compare a model with sets of files on
#: disk, which is `gentool evaluate`'s job, not a request's.
ENDPOINTS: dict[type[Capability], tuple[tuple[str, Callable[..., Any]], ...]] = {
    TextGeneration: (("/v1/completions", completions),),
    TextScoring: (("/v1/score", score),),
    Translation: (("/v1/translations", translations),),
    ImageGeneration: (("/v1/images/generations", image_generations),),
    ImageRestoration: (("/v1/images/restorations", image_restorations),),
    ImageTranslation: (("/v1/images/translations", image_translations),),
    MusicGeneration: (("/v1/music/generations", music_generations),),
    ImageScoring: (),
    MusicScoring: (),
}


def build_app(server: Server) -> Starlette:
    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{id:path}", get_model, methods=["GET"]),
    ]
    routes += [Route(path, handler, methods=["POST"])
               for ends in ENDPOINTS.values() for path, handler in ends]  # fmt: skip
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _not_found, Exception: _server_error},
    )
    app.state.server = server
    return app
