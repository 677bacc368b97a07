"""The rnn's TrainingTask: truncated backpropagation through time over one token stream.

The stream is cut into ``rows`` contiguous rows; micro-batch ``i`` reads the ``i``-th window
of ``seq_len`` tokens of every row, and each row's hidden state carries into its next
window, so the model sees context far longer than one window while gradients flow through
``seq_len`` steps only. The state lives in the task (``carried_state``): the engine saves
it with each checkpoint, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from gentool.neural.engine import TrainingTask
from gentool.neural.streams import TokenStream


class StreamTask(TrainingTask):
    """A token stream as ``rows`` contiguous rows, read window by window (truncated BPTT)."""

    carries_state = True

    def __init__(
        self,
        model: torch.nn.Module,
        train_ids: TokenStream | torch.Tensor,
        val_ids: TokenStream | torch.Tensor | None,
        rows: int,
        seq_len: int,
    ) -> None:
        self.model = model
        self.seq_len = seq_len
        self.train = TokenStream.of(train_ids).rows(rows)  # views: windows are read as needed
        self.windows = (self.train.shape[1] - 1) // seq_len  # per pass over the data
        self.val = TokenStream.of(val_ids).rows(rows) if val_ids is not None else None
        self.items_per_batch = rows * seq_len
        self.state: dict[str, torch.Tensor] | None = None  # this process's rows, batch first

    def train_batch(self, index: int, rows: slice) -> dict[str, Any]:
        window = index % self.windows
        start = window * self.seq_len
        chunk = self.train[rows, start : start + self.seq_len + 1]
        return {"input_ids": chunk[:, :-1], "labels": chunk[:, 1:], "reset": window == 0}

    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        device = next(model.parameters()).device
        inputs = batch["input_ids"].to(device, non_blocking=True)
        labels = batch["labels"].to(device, non_blocking=True)
        state = None if batch["reset"] else self.state  # a new pass starts from a zero state
        out = model(input_ids=inputs, state=state)
        self.state = {k: v.detach() for k, v in out.state.to_dict().items()}
        return F.cross_entropy(out.logits.float().flatten(0, 1), labels.flatten())

    def carried_state(self) -> dict[str, torch.Tensor] | None:
        return self.state

    def restore_carried_state(self, state: dict[str, torch.Tensor]) -> None:
        self.state = state

    def evaluate(self, model: torch.nn.Module, rows: slice, max_batches: int) -> tuple[float, int]:
        """Sum of the per-token losses over the validation rows (the first ``max_batches``
        windows; all when 0), carrying the state from window to window."""
        if self.val is None:
            return 0.0, 0
        data = self.val
        device = next(model.parameters()).device
        total, count, state = 0.0, 0, None
        length = data.shape[1] - 1
        windows = range(0, length, self.seq_len)
        for n, start in enumerate(windows):
            if max_batches and n >= max_batches:
                break
            chunk = data[rows, start : min(start + self.seq_len, length) + 1].to(device)
            out = model(input_ids=chunk[:, :-1], state=state)
            state = out.state
            loss = F.cross_entropy(
                out.logits.float().flatten(0, 1), chunk[:, 1:].flatten(), reduction="sum"
            )
            total += float(loss)
            count += chunk[:, 1:].numel()
        return total, count
