"""Gradient flow: how much a language model's loss at one position depends on the tokens
k steps before it (``gentool evaluate --gradient-flow``).

For each held-out window of ``max_distance + 1`` tokens, the loss of predicting the token
after the window's last position t is differentiated with respect to the input embedding
of every position t - k of the window; the L2 norm of that gradient, averaged over the
windows, is the figure for distance k. A plain tanh RNN's curve falls exponentially with
k (vanishing gradients: the lecture's reason for the LSTM); an LSTM's falls more slowly;
a transformer's attention reaches every position of its context directly.

Each window starts from nothing: an RNN from a zero state, a transformer at position 0.
The model is in eval mode (no dropout); only the embeddings' gradient is computed, the
weights' are never touched.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from gentool.errors import DataError, RecipeError
from gentool.neural.hf import context_length

ROWS = 16  # windows per forward/backward pass


def gradient_flow(model: Any, ids: torch.Tensor, max_distance: int, windows: int) -> dict[str, Any]:
    """``{"distance", "gradient_norm", "relative", "windows", "tokens"}`` of the causal LM
    ``model`` (any Hugging Face model that takes ``inputs_embeds``) on the stream ``ids``:
    ``gradient_norm[k]`` is the mean norm of d loss(t) / d embedding(t - k) over ``windows``
    windows spread evenly over the stream (fewer when it is short), ``relative[k]`` the
    same divided by the value at k = 0. ``tokens`` is the count of ids read."""
    span = max_distance + 1
    context = context_length(model.config)
    if context is not None and span > context:
        raise RecipeError(
            f"--max-distance {max_distance} reaches past the model's context of {context} "
            f"positions; give --max-distance {context - 1} or less"
        )
    if len(ids) < span + 1:
        raise DataError(
            f"the held-out text has {len(ids)} tokens; --max-distance {max_distance} needs "
            f"windows of {span + 1}: give more text or a smaller --max-distance"
        )
    last = len(ids) - span - 1  # the last window's start
    starts = torch.linspace(0, last, min(windows, last + 1)).round().long().unique().tolist()
    embed = model.get_input_embeddings()
    device = embed.weight.device
    was_training = model.training
    model.eval()  # no dropout: the measure of the model as it predicts
    total = torch.zeros(span, dtype=torch.float64)
    try:
        for first in range(0, len(starts), ROWS):
            rows = torch.stack([ids[s : s + span + 1] for s in starts[first : first + ROWS]])
            rows = rows.to(device)
            with torch.enable_grad():
                x = embed(rows[:, :-1]).detach().requires_grad_(True)
                out = model(inputs_embeds=x, use_cache=False)
                # Rows are independent, so the summed loss's gradient at each row's
                # embeddings is that row's own.
                loss = F.cross_entropy(out.logits[:, -1].float(), rows[:, -1], reduction="sum")
                (grad,) = torch.autograd.grad(loss, x)
            total += grad.norm(dim=-1).sum(0).double().cpu()
    finally:
        model.train(was_training)
    # Position p of a window is k = span - 1 - p steps before the predicting position.
    norms = (total / len(starts)).flip(0).tolist()
    first_norm = norms[0] or 1.0
    return {
        "distance": list(range(span)),
        "gradient_norm": norms,
        "relative": [n / first_norm for n in norms],
        "windows": len(starts),
        "tokens": len(ids),
    }
