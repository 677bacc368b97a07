"""Language models of one token stream (rnn, the transformer LM): ``TextStreamModel``, the
part they share, and its helpers.

The training text is one sequence of ids that starts with ``<|endoftext|>``; its end (or
``--val``) is held out. Samples continue a prompt; ``evaluate`` scores files read as one
stream, in the units of ngram's perplexity. Nothing here imports torch at module level.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from gentool.data.text import read_corpus
from gentool.errors import DataError, RecipeError
from gentool.model import GradientFlow, TrainingContext
from gentool.neural.config import StreamTrainConfig
from gentool.neural.hf import HFModel
from gentool.progress import phase
from gentool.tasks import GenerationRequest, TextGeneration, TextScoring, sample_batches

if TYPE_CHECKING:
    import torch

    from gentool.neural.engine import TrainingTask

LN2 = math.log(2)


def encode_stream(tokenizer: Any, text: str, bos: int) -> torch.Tensor:
    """``text`` as one stream of ids, ``bos`` (``<|endoftext|>``) first."""
    import torch

    from gentool.neural.tokenizers import encode_text

    return torch.tensor([bos, *encode_text(tokenizer, text)], dtype=torch.long)


def split_stream(
    tokenizer: Any,
    text: str,
    bos: int,
    val: Path | None,
    val_fraction: float,
    log: Callable[[str], None] = lambda message: None,
    field: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The training stream, and the held-out one: ``val`` when given (a table's ``field``),
    else the last ``val_fraction`` of the text's stream (None when that is empty). ``log``
    hears about an encoding that takes long."""
    with phase(log, "encoding the text"):
        ids = encode_stream(tokenizer, text, bos)
        if val is not None:
            return ids, encode_stream(tokenizer, read_corpus([val], field), bos)
    cut = len(ids) - int(len(ids) * val_fraction)
    return ids[:cut], (ids[cut:] if cut < len(ids) else None)


def scoring_stream(tokenizer: Any, paths: Sequence[Path], bos: int) -> torch.Tensor:
    """What ``evaluate`` scores: the files read as one stream; a DataError if it is empty."""
    ids = encode_stream(tokenizer, read_corpus(paths), bos)
    if len(ids) < 2:
        raise DataError(f"'{paths[0]}' has no tokens to score; give a file with text")
    return ids


def stream_metrics(total: float, ids: torch.Tensor, unk: int, seconds: float) -> dict[str, Any]:
    """``evaluate``'s figures for ``ids`` scored token by token from the first: ``total``
    is the summed cross-entropy (nats) of predicting ``ids[1:]``."""
    count = len(ids) - 1
    loss = total / count
    return {
        "tokens": count,
        "oov": int((ids[1:] == unk).sum()),
        "cross_entropy": loss,
        "perplexity": math.exp(loss),
        "bits_per_token": loss / LN2,
        "seconds": seconds,
    }


class StreamModel(HFModel):
    """A model trained on its data read as one token stream (text, or music's tokens).

    Training encodes the data as one stream and holds out its end or ``--val``
    (``streams``), then builds the network (``build_model``) and the task that reads the
    stream (``stream_task``); the run reports ``train_tokens`` and ``val_tokens``.
    Sampling continues a prompt (``continue_ids``), scoring reads a stream
    (``stream_loss``). A network (the rnn's, the GPT-2) fills in those four steps; what
    the stream holds (``TextStreamModel``, ``gentool.neural.music.MusicStreamModel``) the
    others.
    """

    train_config_class: ClassVar[type] = StreamTrainConfig

    @classmethod
    def stream_rows(cls, train: StreamTrainConfig) -> int:
        """Into how many rows the task cuts the stream, each of which must hold a window
        of ``train.seq_len`` tokens; 1 (the default) when windows may start anywhere."""
        return 1

    @classmethod
    @abstractmethod
    def build_model(cls, config: Any, vocab_size: int, bos: int) -> torch.nn.Module:
        """A new network for ``config`` (seeded already); ``bos`` is ``<|endoftext|>``,
        which also ends and pads."""

    @classmethod
    @abstractmethod
    def stream_task(
        cls,
        config: Any,
        context: TrainingContext[Any],
        model: torch.nn.Module,
        train_ids: torch.Tensor,
        val_ids: torch.Tensor | None,
    ) -> TrainingTask:
        """The TrainingTask that trains ``model`` on the stream ``train_ids``."""

    @abstractmethod
    def continue_ids(
        self, prompt: list[int], request: GenerationRequest, streamer: Any = None
    ) -> torch.Tensor:
        """``request.num_samples`` continuations of the ids ``prompt`` (``<|endoftext|>``
        first), each of ``request.max_tokens`` new ids: (num_samples, max_tokens). The
        options of ``generation_options`` apply; ``streamer`` (a ``transformers`` streamer,
        one row) goes to every ``generate()`` call made."""

    @abstractmethod
    def stream_loss(self, ids: torch.Tensor) -> float:
        """The summed cross-entropy (nats) of ``ids[1:]``, each token given what precedes it."""

    @classmethod
    @abstractmethod
    def streams(
        cls, config: Any, context: TrainingContext[Any], tokenizer: Any, data: Any
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The training stream and the held-out one (None: none), ``bos_of(tokenizer)``
        first in each."""

    @classmethod
    @abstractmethod
    def bos_of(cls, tokenizer: Any) -> int:
        """The id that starts (and separates) the stream's documents, and pads."""

    def suppressed(self) -> list[int]:
        """Ids never sampled (beside the stream's start)."""
        return []

    def logits_processors(self) -> list[Any]:
        """``transformers`` logits processors that sampling applies (a grammar); none."""
        return []

    # -- training ---------------------------------------------------------------------------
    @classmethod
    def make_task(
        cls, config: Any, context: TrainingContext[Any], tokenizer: Any, data: str
    ) -> tuple[TrainingTask, dict[str, Any]]:
        import torch

        train: StreamTrainConfig = context.train
        bos = cls.bos_of(tokenizer)
        train_ids, val_ids = cls.streams(config, context, tokenizer, data)
        rows = cls.stream_rows(train)
        need = rows * (train.seq_len + 1)
        if len(train_ids) < need:
            each = f" for each of {rows} rows ({need})" if rows > 1 else ""
            lower = "train.seq_len / train.batch_size" if rows > 1 else "train.seq_len"
            raise DataError(
                f"the training data has {len(train_ids)} "
                f"tokens, fewer than one window of train.seq_len={train.seq_len} + 1{each}; "
                f"give more data or lower {lower}"
            )
        if val_ids is not None and len(val_ids) < 2 * rows:  # not one target in each row
            val_ids = None
        torch.manual_seed(context.seed)
        if getattr(config, "init", ""):
            model = cls.init_model(config)
        else:
            model = cls.build_model(config, len(tokenizer), bos)
        task = cls.stream_task(config, context, model, train_ids, val_ids)
        facts = {
            "train_tokens": len(train_ids),
            "val_tokens": 0 if val_ids is None else len(val_ids),
        }
        return task, facts

    def generation_options(self, request: GenerationRequest) -> dict[str, Any]:
        """``generate()``'s options for ``request``: sampling, greedy or beam search."""
        bos = self.bos_of(self.tokenizer)
        options: dict[str, Any] = {
            "repetition_penalty": request.repetition_penalty,
            "pad_token_id": bos,
            "bos_token_id": bos,
            "suppress_tokens": self.suppressed(),
        }
        if processors := self.logits_processors():
            options["logits_processor"] = processors
        if request.num_beams > 1:
            options.update(num_beams=request.num_beams, do_sample=False)
        elif request.temperature == 0:
            options.update(do_sample=False)
        else:
            options.update(
                do_sample=True,
                temperature=request.temperature,
                top_k=request.top_k or 0,
                top_p=request.top_p or 1.0,
            )
        return options


class TextStreamModel(StreamModel, TextGeneration, TextScoring, GradientFlow):
    """A language model trained on its text read as one token stream.

    Training reads the files as one text, learns the run's tokenizer on it
    (``tokenizer_spec``), encodes it as one stream and holds out its end (``split_stream``);
    ``generate`` continues a text prompt, ``evaluate_text`` scores files as one stream.
    """

    special_tokens: ClassVar[tuple[str, ...]] = ("bos_token", "unk_token")

    @classmethod
    def tokenizer_spec(cls, config: Any) -> tuple[str, int | None]:
        """The tokenizer a new run learns: its kind ("char", "word", "bpe") and vocabulary
        size (None: every symbol); by default ``config.tokens`` and ``config.vocab_size``."""
        return config.tokens, config.vocab_size

    @classmethod
    def bos_of(cls, tokenizer: Any) -> int:
        return bos_id(tokenizer)

    @classmethod
    def streams(
        cls, config: Any, context: TrainingContext[Any], tokenizer: Any, data: str
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        train: StreamTrainConfig = context.train
        return split_stream(
            tokenizer,
            data,
            bos_id(tokenizer),
            context.val,
            train.val_fraction,
            context.log,
            context.fields.text,
        )

    def suppressed(self) -> list[int]:
        # The stream has one <|endoftext|>, at its start: a sample runs to max_tokens.
        # Like ngram, never emit <unk>.
        unk = self.unk
        return [self.bos] + ([unk] if unk >= 0 else [])

    @classmethod
    def read_data(cls, config: Any, context: TrainingContext[Any]) -> str:
        return read_corpus(context.data, context.fields.text)

    @classmethod
    def new_tokenizer(cls, config: Any, data: str) -> Any:
        from gentool.neural.tokenizers import train_tokenizer

        if getattr(config, "init", ""):  # fine-tuning keeps the model's own tokenizer
            return cls.init_tokenizer(config)
        tokens, vocab_size = cls.tokenizer_spec(config)
        return train_tokenizer(tokens, [data], vocab_size=vocab_size)

    # -- tasks --------------------------------------------------------------------------------
    @property
    def bos(self) -> int:
        return bos_id(self.tokenizer)

    def generate(self, request: GenerationRequest) -> Iterator[str]:
        """Continue ``request.prompt`` (after ``<|endoftext|>``) by ``max_tokens`` tokens,
        batch by batch (``sample_batches``); each sample is the prompt as given followed by
        its continuation."""
        import torch

        if 1 < request.num_beams < request.num_samples:
            raise RecipeError(
                f"--beams {request.num_beams} cannot return {request.num_samples} samples; "
                "use at least as many beams as samples"
            )
        if request.seed is not None:
            torch.manual_seed(request.seed)
        prompt = self.prompt_ids(request.prompt)
        for rows in sample_batches(request):
            new = self.continue_ids(prompt, dataclasses.replace(request, num_samples=rows))
            for row in new.tolist():
                yield self.sample_text(request.prompt, prompt, row)

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        """The first sample token by token: ``continue_ids`` runs on a thread of its own
        and hands over each new id as it is made (``new_ids``). The text of the ids so far
        is decoded whole each time, so the pieces join to exactly ``generate``'s sample for
        the same seed. Beam search only knows its best row at the end: one piece then."""
        import torch

        if request.num_beams > 1:
            yield from super().stream(request)
            return
        request = dataclasses.replace(request, num_samples=1)
        if request.seed is not None:
            torch.manual_seed(request.seed)
        prompt = self.prompt_ids(request.prompt)

        def tail(new: list[int]) -> str:  # the continuation's text, as ``stream`` gives it
            sample = self.sample_text(request.prompt, prompt, new)
            return sample[len(request.prompt) :] if sample.startswith(request.prompt) else sample

        new: list[int] = []
        sent = ""
        for ids in new_ids(lambda streamer: self.continue_ids(prompt, request, streamer)):
            new += ids
            text = tail(new)
            # Held back: a trailing space (decoding may clean it up once the next token
            # comes, " ," -> ",") and half a character (byte-level BPE decodes it as U+FFFD).
            ready = text.rstrip()
            if ready.startswith(sent) and len(ready) > len(sent) and not ready.endswith("\ufffd"):
                yield ready[len(sent) :]
                sent = ready
        if (text := tail(new)).startswith(sent) and len(text) > len(sent):
            yield text[len(sent) :]

    def count_tokens(self, text: str) -> int | None:
        from gentool.neural.tokenizers import encode_text

        return len(encode_text(self.tokenizer, text))

    def prompt_ids(self, prompt: str) -> list[int]:
        """``<|endoftext|>`` and the prompt's tokens: what generation continues."""
        from gentool.neural.tokenizers import encode_text

        return [self.bos, *encode_text(self.tokenizer, prompt)]

    def sample_text(self, prompt: str, ids: list[int], new: list[int]) -> str:
        """The sample: ``prompt`` as given, followed by the text of the ``new`` ids. Decoded
        with the prompt's ``ids``, so that a word tokenizer spaces the join; the prompt's own
        text is then given back as typed (an unknown character, spaces ...)."""
        tok = self.tokenizer
        head = tok.decode(ids[1:], skip_special_tokens=True)
        text = tok.decode(ids[1:] + new, skip_special_tokens=True)
        return prompt + text[len(head) :] if text.startswith(head) else text

    def evaluate_text(self, paths: Sequence[Path]) -> dict[str, Any]:
        """Per-token cross-entropy of the files read as one stream, every token predicted
        (the first from ``<|endoftext|>``): the units of ngram's perplexity on the same
        tokenization."""
        tok = self.tokenizer
        ids = scoring_stream(tok, paths, self.bos)
        started = time.perf_counter()
        total = self.stream_loss(ids)
        return stream_metrics(total, ids, self.unk, time.perf_counter() - started)

    def gradient_flow(
        self, text: str, tail: float = 1.0, max_distance: int = 64, windows: int = 64
    ) -> dict[str, Any]:
        """How far back the loss reaches (gentool.neural.gradients), on the last ``tail``
        of ``text``'s stream cut as training held it out (``split_stream``)."""
        from gentool.neural.gradients import gradient_flow

        ids = encode_stream(self.tokenizer, text, self.bos)
        ids = ids[len(ids) - int(len(ids) * tail) :]
        return gradient_flow(self.model, ids, max_distance, windows)

    @property
    def unk(self) -> int:
        """The id of the unknown token; -1 for a tokenizer without one (byte-level BPE)."""
        token = self.tokenizer.unk_token
        return -1 if token is None else int(self.tokenizer.convert_tokens_to_ids(token))


def new_ids(run: Callable[[Any], Any]) -> Iterator[list[int]]:
    """The ids that ``run(streamer)`` generates, in lists as they are made: ``run`` runs on
    a thread of its own and passes ``streamer`` to each ``generate()`` call it makes (one
    row). Each call first hands over its input (a prompt, or the window generation goes on
    from), which is skipped. Closing the iterator early stops the generation at its next
    token."""
    from transformers.generation.streamers import BaseStreamer

    made: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop = threading.Event()

    class Stopped(Exception):
        pass

    class Streamer(BaseStreamer):
        input = True  # the next put() is a generate() call's input

        def put(self, value: Any) -> None:
            if stop.is_set():
                raise Stopped
            if self.input:
                self.input = False
            else:
                made.put(("ids", value.reshape(-1).tolist()))

        def end(self) -> None:
            self.input = True

    def work() -> None:
        try:
            run(Streamer())
        except Stopped:
            pass
        except BaseException as err:  # raised again in the reading thread
            made.put(("error", err))
        made.put(("end", None))

    worker = threading.Thread(target=work, name="gentool-stream", daemon=True)
    worker.start()
    try:
        while (item := made.get())[0] != "end":
            what, value = item
            if what == "error":
                raise value
            yield value
    finally:
        stop.set()
        worker.join()


def bos_id(tokenizer: Any) -> int:
    """The id of ``<|endoftext|>``: bos, eos and padding of gentool's text tokenizers."""
    # (a pretrained tokenizer may have no bos: its eos then starts the stream)
    return int(tokenizer.convert_tokens_to_ids(tokenizer.bos_token or tokenizer.eos_token))
