"""Reading request bodies: every field checked for type and range, and a ``BadRequest``
naming the field and what it must be. Nothing here imports starlette."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# OpenAI fields that gentool does not implement: refused when set to anything but their
# neutral value, rather than silently ignored.
UNSUPPORTED: dict[str, tuple[Any, ...]] = {
    "best_of": (None, 1),
    "logprobs": (None, 0),
    "suffix": (None, ""),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
}


class BadRequest(Exception):
    """A request the server refuses: its HTTP status, a message, and the field at fault."""

    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (``gentool serve`` options)."""

    max_tokens: int = 512
    max_n: int = 16
    max_inputs: int = 64  # texts per translation / scoring request
    max_image_pixels: int = 1 << 22  # an uploaded image to restore: 4 Mpx


@dataclass(frozen=True)
class Settings:
    """How the server answers (``gentool serve`` options)."""

    api_key: str | None = None
    timeout: float = 60.0  # seconds a request may take, its wait in the queue included
    queue_size: int = 16  # requests waiting per model before 503
    batch_window: float = 0.005  # seconds a completion waits for others to batch with
    max_batch: int = 8  # completion prompts computed together
    max_body: int = 8 << 20  # bytes of a request body
    limits: Limits = field(default_factory=Limits)


class Body:
    """A JSON object's fields, read with their checks; ``finish`` refuses unknown fields."""

    def __init__(self, data: Any, known: tuple[str, ...]) -> None:
        if not isinstance(data, dict):
            raise BadRequest(f"the request body must be a JSON object, not {_type(data)}")
        self.data = data
        unknown = sorted(set(data) - set(known) - set(UNSUPPORTED) - {"user"})
        if unknown:
            raise BadRequest(
                f"unknown field '{unknown[0]}'; this endpoint takes: {', '.join(known)}",
                unknown[0],
            )
        for name, neutral in UNSUPPORTED.items():
            if name in data and data[name] not in neutral:
                raise BadRequest(f"'{name}' is not supported by gentool; leave it out", name)

    def model(self) -> str:
        return self.string("model", required=True)

    def string(self, name: str, default: str = "", required: bool = False) -> str:
        value = self._get(name, default, required)
        if not isinstance(value, str):
            raise BadRequest(f"'{name}' must be a string, not {_type(value)}", name)
        return value

    def strings(self, name: str, most: int, required: bool = True) -> list[str]:
        """A string or a list of strings, as a list (1 to ``most`` of them)."""
        value = self._get(name, None, required)
        if value is None:
            return []
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise BadRequest(f"'{name}' must be a string or a list of strings", name)
        if not 1 <= len(items) <= most:
            raise BadRequest(
                f"'{name}' holds {len(items)} texts; send 1 to {most} per request", name
            )
        return items

    def integer(
        self, name: str, default: int | None, low: int, high: int | None = None
    ) -> int | None:
        value = self._get(name, default, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadRequest(f"'{name}' must be an integer, not {_type(value)}", name)
        if value < low or (high is not None and value > high):
            limit = f"from {low} to {high}" if high is not None else f"at least {low}"
            over = " (this server's limit)" if high is not None and value > high else ""
            raise BadRequest(f"'{name}' is {value}; it must be {limit}{over}", name)
        return value

    def number(
        self, name: str, default: float | None, low: float, high: float | None = None
    ) -> float | None:
        value = self._get(name, default, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadRequest(f"'{name}' must be a number, not {_type(value)}", name)
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            limit = f"from {low:g} to {high:g}" if high is not None else f"at least {low:g}"
            raise BadRequest(f"'{name}' is {value}; it must be {limit}", name)
        return float(value)

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self._get(name, default, False)
        if not isinstance(value, bool):
            raise BadRequest(f"'{name}' must be true or false, not {_type(value)}", name)
        return value

    def _get(self, name: str, default: Any, required: bool) -> Any:
        if name not in self.data or self.data[name] is None:
            if required:
                raise BadRequest(f"'{name}' is required", name)
            return default
        return self.data[name]


def stops(body: Body) -> list[str]:
    """``stop``: a string or up to 4 non-empty strings, as OpenAI takes them."""
    value = body.data.get("stop")
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if (
        not isinstance(items, list)
        or not 1 <= len(items) <= 4
        or not all(isinstance(s, str) and s for s in items)
    ):
        raise BadRequest("'stop' must be a non-empty string or a list of 1 to 4 of them", "stop")
    return items


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """``text`` up to the first stop sequence in it, and whether one was found."""
    ends = [i for i in (text.find(s) for s in stop) if i >= 0]
    return (text[: min(ends)], True) if ends else (text, False)


def _type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)  # fmt: skip
