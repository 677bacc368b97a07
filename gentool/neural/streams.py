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

from gentool.errors import DataError, RecipeError
from gentool.model import GradientFlow, TrainingContext
from gentool.neural.config import StreamTrainConfig
from gentool.neural.hf import HFModel
from gentool.tasks import GenerationRequest, TextGeneration, TextScoring, sample_batches

if TYPE_CHECKING:
    import torch

    from gentool.neural.engine import TrainingTask

LN2 = math.log(2)


class TokenStream:
    """Token ids (a memory-mapped token cache, or any array) read as int64 torch tensors.

    Indexing gives a new int64 tensor of just the ids asked for (``stream[a:b]``, rows
    of windows ``stream[starts[:, None] + offsets]``), so a task that reads its windows
    through it holds only those in memory, whatever the corpus's size. Torch index
    tensors are taken as they are; ``part`` and ``rows`` give views, not copies.
    """

    def __init__(self, ids: Any) -> None:
        import numpy as np

        self.ids: np.ndarray = ids

    @classmethod
    def of(cls, ids: Any) -> TokenStream:
        """``ids`` (a TokenStream, a torch tensor, a numpy array or a list) as a stream."""
        import numpy as np

        if isinstance(ids, TokenStream):
            return ids
        if hasattr(ids, "numpy"):  # a torch tensor
            return cls(ids.detach().cpu().numpy())
        return cls(np.asarray(ids))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.ids.shape)

    def __getitem__(self, key: Any) -> torch.Tensor:
        import numpy as np
        import torch

        key = tuple(_numpy_index(k) for k in key) if isinstance(key, tuple) else _numpy_index(key)
        return torch.from_numpy(np.array(self.ids[key], dtype=np.int64))

    def part(self, start: int, stop: int | None = None) -> TokenStream:
        """Ids ``start:stop``, without copying."""
        return TokenStream(self.ids[start:stop])

    def rows(self, count: int) -> TokenStream:
        """The stream cut into ``count`` contiguous rows of equal length (the rest
        dropped), without copying: (count, len // count)."""
        length = len(self.ids) // count
        return TokenStream(self.ids[: count * length].reshape(count, length))

    def count(self, token: int, start: int = 0) -> int:
        """How many times ``token`` occurs from ``start`` on, read in blocks."""
        block = 1 << 24
        return sum(
            int((self.ids[i : i + block] == token).sum())
            for i in range(start, len(self.ids), block)
        )


def _numpy_index(key: Any) -> Any:
    return key.numpy() if hasattr(key, "numpy") else key


def split_stream(
    ids: TokenStream, val: TokenStream | None, val_fraction: float
) -> tuple[TokenStream, TokenStream | None]:
    """The training stream and the held-out one: ``val`` when given, else the last
    ``val_fraction`` of ``ids`` (None when that is empty); views, not copies."""
    if val is not None:
        return ids, val
    cut = len(ids) - int(len(ids) * val_fraction)
    return ids.part(0, cut), (ids.part(cut) if cut < len(ids) else None)


def token_stream(
    tokenizer: Any,
    paths: Sequence[str | Path],
    bos: int,
    field: str | None = None,
    log: Callable[[str], None] = lambda message: None,
    keep: bool = True,
) -> TokenStream:
    """The files (tables: their ``field``) as one stream of ids, ``bos`` first, read from
    the token cache (``gentool.neural.tokencache``; tokenized into it on first use, or,
    without ``keep``, into a temporary file)."""
    from gentool.neural.tokencache import token_file

    return TokenStream(token_file(paths, field, tokenizer, bos, log, keep))


def scoring_stream(
    tokenizer: Any, paths: Sequence[Path], bos: int, field: str | None = None
) -> TokenStream:
    """What ``evaluate`` scores: the files read as one stream; a DataError if it is empty."""
    ids = token_stream(tokenizer, paths, bos, field, keep=False)
    if len(ids) < 2:
        raise DataError(f"'{paths[0]}' has no tokens to score; give a file with text")
    return ids


def stream_metrics(total: float, ids: Any, unk: int, seconds: float) -> dict[str, Any]:
    """``evaluate``'s figures for ``ids`` (a TokenStream or a tensor) scored token by token
    from the first: ``total`` is the summed cross-entropy (nats) of predicting ``ids[1:]``."""
    count = len(ids) - 1
    loss = total / count
    return {
        "tokens": count,
        "oov": TokenStream.of(ids).count(unk, start=1),
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
        train_ids: TokenStream,
        val_ids: TokenStream | None,
    ) -> TrainingTask:
        """The TrainingTask that trains ``model`` on the stream ``train_ids`` (its windows
        read through the TokenStream: a memory-mapped token cache for text)."""

    @abstractmethod
    def continue_ids(
        self, prompt: list[int], request: GenerationRequest, streamer: Any = None
    ) -> torch.Tensor:
        """``request.num_samples`` continuations of the ids ``prompt`` (``<|endoftext|>``
        first), each of ``request.max_tokens`` new ids: (num_samples, max_tokens). The
        options of ``generation_options`` apply; ``streamer`` (a ``transformers`` streamer,
        one row) goes to every ``generate()`` call made."""

    @abstractmethod
    def stream_loss(self, ids: TokenStream | torch.Tensor) -> float:
        """The summed cross-entropy (nats) of ``ids[1:]``, each token given what precedes it;
        ``ids`` is read by slices (``ids[a:b]``, an int64 tensor)."""

    @classmethod
    @abstractmethod
    def streams(
        cls, config: Any, context: TrainingContext[Any], tokenizer: Any, data: Any
    ) -> tuple[Any, Any]:
        """The training stream and the held-out one (None: none), ``bos_of(tokenizer)``
        first in each: TokenStreams, or anything ``TokenStream.of`` takes."""

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
        train_ids = TokenStream.of(train_ids)
        val_ids = None if val_ids is None else TokenStream.of(val_ids)
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


@dataclasses.dataclass(frozen=True)
class Corpus:
    """The training text of a TextStreamModel, not yet read: its sources and the field read
    from tables (None: ``text``)."""

    paths: tuple[str | Path, ...]
    field: str | None = None


class TextStreamModel(StreamModel, TextGeneration, TextScoring, GradientFlow):
    """A language model trained on its text read as one token stream.

    Training learns the run's tokenizer on the files read as one text (``tokenizer_spec``;
    cached), reads them as one stream of ids from the token cache (``token_stream``) and
    holds out its end (``split_stream``);
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
        cls, config: Any, context: TrainingContext[Any], tokenizer: Any, data: Corpus
    ) -> tuple[TokenStream, TokenStream | None]:
        train: StreamTrainConfig = context.train
        bos, field = bos_id(tokenizer), context.fields.text
        ids = token_stream(tokenizer, data.paths, bos, field, context.log)
        val = None
        if context.val is not None:
            val = token_stream(tokenizer, [context.val], bos, field, context.log)
        return split_stream(ids, val, train.val_fraction)

    def suppressed(self) -> list[int]:
        # The stream has one <|endoftext|>, at its start: a sample runs to max_tokens.
        # Like ngram, never emit <unk>.
        unk = self.unk
        return [self.bos] + ([unk] if unk >= 0 else [])

    @classmethod
    def read_data(cls, config: Any, context: TrainingContext[Any]) -> Corpus:
        # Nothing is read yet: the tokenizer and the token cache stream the files.
        return Corpus(tuple(context.data), context.fields.text)

    @classmethod
    def new_tokenizer(cls, config: Any, data: Corpus) -> Any:
        from gentool.neural.tokencache import cached_tokenizer, data_key, pieces_of
        from gentool.neural.tokenizers import train_tokenizer

        if getattr(config, "init", ""):  # fine-tuning keeps the model's own tokenizer
            return cls.init_tokenizer(config)
        tokens, vocab_size = cls.tokenizer_spec(config)
        return cached_tokenizer(
            ("tokenizer", data_key(data.paths, data.field), tokens, vocab_size),
            lambda: train_tokenizer(tokens, pieces_of(data.paths, data.field), vocab_size),
        )

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
        ids = scoring_stream(tok, paths, self.bos, self.text_field)
        started = time.perf_counter()
        total = self.stream_loss(ids)
        return stream_metrics(total, ids, self.unk, time.perf_counter() - started)

    def gradient_flow(
        self, text: str, tail: float = 1.0, max_distance: int = 64, windows: int = 64
    ) -> dict[str, Any]:
        """How far back the loss reaches (gentool.neural.gradients), on the last ``tail``
        of ``text``'s stream cut as training held it out (``split_stream``)."""
        import torch

        from gentool.neural.gradients import gradient_flow
        from gentool.neural.tokenizers import encode_text

        ids = torch.tensor([self.bos, *encode_text(self.tokenizer, text)], dtype=torch.long)
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
