"""A Hugging Face-native recurrent language model (LSTM, GRU or tanh RNN).

``RnnForCausalLM`` is a ``PreTrainedModel`` + ``GenerationMixin``: it saves as safetensors, loads
with ``AutoModelForCausalLM`` once this module is imported, and ``generate()`` carries the
recurrent state (prefill once, then one single-token step per new token). The state travels in
the ``state`` keyword argument of ``forward`` and comes back as ``output.state``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    GenerationMixin,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers import initialization as init
from transformers.utils import ModelOutput

CELLS: dict[str, type[nn.LSTM] | type[nn.GRU] | type[nn.RNN]] = {
    "lstm": nn.LSTM,
    "gru": nn.GRU,
    "rnn": nn.RNN,
}


class RnnConfig(PreTrainedConfig):
    """Configuration of :class:`RnnForCausalLM`.

    ``dropout`` applies to the embeddings, between stacked layers and to the top outputs.
    ``tie_embeddings`` shares the input embedding matrix with the output layer; when
    ``embedding_size != hidden_size`` the top hidden state is first projected to
    ``embedding_size``.
    """

    model_type = "gentool_rnn"
    attribute_map = {"tie_word_embeddings": "tie_embeddings", "num_hidden_layers": "num_layers"}

    vocab_size: int = 256
    cell: str = "lstm"
    embedding_size: int = 128
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.0
    tie_embeddings: bool = False
    initializer_range: float = 0.1
    bos_token_id: int | None = 0
    eos_token_id: int | list[int] | None = 0
    pad_token_id: int | None = 0
    use_cache: bool = True

    def __post_init__(self, **kwargs: Any) -> None:
        if not isinstance(self.cell, str) or self.cell.lower() not in CELLS:
            raise ValueError(
                f"cell '{self.cell}' is unknown; valid values: {', '.join(CELLS)} "
                "('rnn' is a plain tanh RNN)"
            )
        self.cell = self.cell.lower()
        for name in ("vocab_size", "embedding_size", "hidden_size", "num_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        super().__post_init__(**kwargs)


@dataclass
class RnnState:
    """Recurrent state: ``h`` (and ``c`` for LSTM), each of shape (num_layers, batch, hidden)."""

    h: torch.Tensor
    c: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.h.shape[1]

    def detach(self) -> RnnState:
        """A copy cut from the autograd graph (truncated BPTT)."""
        return RnnState(self.h.detach(), None if self.c is None else self.c.detach())

    def to(self, *args: Any, **kwargs: Any) -> RnnState:
        return RnnState(
            self.h.to(*args, **kwargs), None if self.c is None else self.c.to(*args, **kwargs)
        )

    def index_select(self, index: torch.Tensor) -> RnnState:
        """A new state holding the batch rows ``index`` (in that order)."""
        index = index.to(self.h.device)
        c = None if self.c is None else self.c.index_select(1, index)
        return RnnState(self.h.index_select(1, index), c)

    def reorder_cache(self, beam_idx: torch.Tensor) -> RnnState:
        """Reorder the batch rows in place for beam search; returns ``self``."""
        selected = self.index_select(beam_idx)
        self.h, self.c = selected.h, selected.c
        return self

    def to_dict(self) -> dict[str, torch.Tensor]:
        """Batch-first tensors, (batch, num_layers, hidden), for gathering/saving along dim 0."""
        out = {"h": self.h.transpose(0, 1).contiguous()}
        if self.c is not None:
            out["c"] = self.c.transpose(0, 1).contiguous()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, torch.Tensor]) -> RnnState:
        """Inverse of :meth:`to_dict`."""
        c = d.get("c")
        return cls(
            d["h"].transpose(0, 1).contiguous(),
            None if c is None else c.transpose(0, 1).contiguous(),
        )


@dataclass
class RnnCausalLMOutput(ModelOutput):
    """Output of :class:`RnnForCausalLM`; ``state`` is the recurrent state after the input."""

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    state: RnnState | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


class RnnPreTrainedModel(PreTrainedModel):
    config_class = RnnConfig
    main_input_name = "input_ids"
    supports_gradient_checkpointing = False
    _no_split_modules: list[str] = []

    def _init_weights(self, module: nn.Module) -> None:
        """Uniform embeddings/output layer, Xavier input and orthogonal recurrent weights per gate,
        zero biases except an LSTM forget-gate bias of 1."""
        r = self.config.initializer_range
        if isinstance(module, nn.Embedding):
            init.uniform_(module.weight, -r, r)
        elif isinstance(module, nn.Linear):
            if module is getattr(self, "lm_head", None):
                init.uniform_(module.weight, -r, r)
            else:
                init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.RNNBase):
            hidden = module.hidden_size
            is_lstm = isinstance(module, nn.LSTM)
            for name, param in module.named_parameters():
                if getattr(param, "_is_hf_initialized", False):
                    continue
                gates = param.shape[0] // hidden
                with torch.no_grad():
                    if name.startswith("weight_ih"):
                        for chunk in param.chunk(gates, 0):
                            init.xavier_uniform_(chunk)
                    elif name.startswith("weight_hh"):
                        for chunk in param.chunk(gates, 0):
                            init.orthogonal_(chunk)
                    elif name.startswith("bias"):
                        param.zero_()
                        if is_lstm and name.startswith("bias_ih"):
                            param[hidden : 2 * hidden].fill_(1.0)


class RnnForCausalLM(RnnPreTrainedModel, GenerationMixin):
    """Embedding -> multi-layer LSTM/GRU/RNN -> (projection) -> vocabulary logits."""

    _tied_weights_keys = {"lm_head.weight": "embed_tokens.weight"}

    def __init__(self, config: RnnConfig) -> None:
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.embedding_size)
        self.drop = nn.Dropout(config.dropout)
        self.rnn = CELLS[config.cell](
            input_size=config.embedding_size,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        out_size = config.hidden_size
        self.proj: nn.Linear | None = None
        if config.tie_embeddings and config.embedding_size != config.hidden_size:
            self.proj = nn.Linear(config.hidden_size, config.embedding_size, bias=False)
            out_size = config.embedding_size
        self.lm_head = nn.Linear(out_size, config.vocab_size)
        self.post_init()

    # -- embeddings -------------------------------------------------------------------------

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        if not isinstance(value, nn.Embedding):
            raise TypeError(f"input embeddings must be an nn.Embedding, got {type(value)}")
        self.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        if not isinstance(value, nn.Linear):
            raise TypeError(f"output embeddings must be an nn.Linear, got {type(value)}")
        self.lm_head = value

    # -- state ------------------------------------------------------------------------------

    def initial_state(self, batch_size: int) -> RnnState:
        """All-zero state for ``batch_size`` sequences on the model's device and dtype."""
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        weight = self.embed_tokens.weight
        h = torch.zeros(shape, device=weight.device, dtype=weight.dtype)
        return RnnState(h, torch.zeros_like(h) if self.config.cell == "lstm" else None)

    def _step(self, x: torch.Tensor, state: RnnState) -> tuple[torch.Tensor, RnnState]:
        if _recurrence_in_float32(x):
            # oneDNN has no bf16 LSTM without AVX-512 ("could not create a primitive
            # descriptor"), and bf16 GRU/RNN are emulated there, 8-70x slower than float32.
            with torch.autocast("cpu", enabled=False):
                return self._step(x.float(), state.to(torch.float32))
        if state.c is not None:
            out, (h, c) = self.rnn(x, (state.h, state.c))
            return out, RnnState(h, c)
        out, h = self.rnn(x, state.h)
        return out, RnnState(h)

    def _run_masked(
        self, x: torch.Tensor, state: RnnState, mask: torch.Tensor
    ) -> tuple[torch.Tensor, RnnState]:
        """Run with a padding mask: a masked position leaves a row's state unchanged.

        Runs of all-unmasked positions go through the RNN in one call; the others step by step.
        """
        mask = mask.bool()
        full = mask.all(dim=0).tolist()
        outs: list[torch.Tensor] = []
        t, length = 0, x.shape[1]
        while t < length:
            if full[t]:
                end = t
                while end < length and full[end]:
                    end += 1
                out, state = self._step(x[:, t:end], state)
                outs.append(out)
                t = end
                continue
            out, new = self._step(x[:, t : t + 1], state)
            keep = mask[:, t].view(1, -1, 1)
            h = torch.where(keep, new.h, state.h)
            c = None if state.c is None or new.c is None else torch.where(keep, new.c, state.c)
            state = RnnState(h, c)
            outs.append(out)
            t += 1
        return torch.cat(outs, dim=1), state

    # -- forward ----------------------------------------------------------------------------

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        state: RnnState | dict[str, torch.Tensor] | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        return_dict: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        logits_to_keep: int = 0,
        **kwargs: Any,
    ) -> RnnCausalLMOutput | tuple:
        """Logits (B, T, V) for ``input_ids`` continuing from ``state`` (zeros when None).

        ``state`` may be an :class:`RnnState` or its batch-first ``to_dict()`` form. ``labels``
        are shifted inside (``-100`` ignored); extra kwargs such as ``shift_labels`` or
        ``num_items_in_batch`` go to the loss. ``attention_mask`` (its last T columns) marks
        padding: a masked position leaves its row's state unchanged, so left padding is exact.
        The new state is returned unless ``use_cache`` is False.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        batch, length = x.shape[:2]
        x = self.drop(x)

        if state is None:
            state = self.initial_state(batch)
        elif isinstance(state, dict):
            state = RnnState.from_dict(state)

        mask = None if attention_mask is None else attention_mask[:, -length:]
        if mask is None or bool(mask.all()):
            hidden, new_state = self._step(x, state)
        else:
            hidden, new_state = self._run_masked(x, state, mask)

        hidden = self.drop(hidden)
        if self.proj is not None:
            hidden = self.proj(hidden)
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)

        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs
            )

        out_state = None if use_cache is False else new_state
        hidden_states = (hidden,) if output_hidden_states else None
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if not return_dict:
            items = (loss, logits, out_state, hidden_states)
            return tuple(item for item in items if item is not None)
        return RnnCausalLMOutput(
            loss=loss, logits=logits, state=out_state, hidden_states=hidden_states
        )

    # -- generation -------------------------------------------------------------------------

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # The recurrent state is not a KV cache: generate() must not build a DynamicCache.
        return False

    def _update_model_kwargs_for_generation(
        self,
        outputs: ModelOutput,
        model_kwargs: dict[str, Any],
        is_encoder_decoder: bool = False,
        num_new_tokens: int = 1,
    ) -> dict[str, Any]:
        # ``state`` is not the standard ``cache`` name: carry it to the next step ourselves.
        if outputs.get("state") is not None:
            model_kwargs["state"] = outputs["state"]
        return super()._update_model_kwargs_for_generation(
            outputs, model_kwargs, is_encoder_decoder, num_new_tokens
        )

    def _expand_inputs_for_generation(
        self,
        expand_size: int = 1,
        is_encoder_decoder: bool = False,
        input_ids: torch.LongTensor | None = None,
        **model_kwargs: Any,
    ) -> tuple[torch.LongTensor, dict[str, Any]]:
        # A user-given starting ``state`` must be expanded like the inputs (beams/samples).
        state = model_kwargs.pop("state", None)
        input_ids, model_kwargs = super()._expand_inputs_for_generation(  # type: ignore[misc]
            expand_size, is_encoder_decoder, input_ids, **model_kwargs
        )
        if state is not None:
            if isinstance(state, dict):
                state = RnnState.from_dict(state)
            if expand_size > 1:
                index = torch.arange(state.batch_size, device=state.h.device)
                state = state.index_select(index.repeat_interleave(expand_size))
            model_kwargs["state"] = state
        return input_ids, model_kwargs


def _recurrence_in_float32(x: torch.Tensor) -> bool:
    """Whether the recurrent layers must leave bf16 autocast: on a CPU without native bf16."""
    if x.device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return False
    if torch.get_autocast_dtype("cpu") != torch.bfloat16:
        return False
    from gentool.neural.devices import native_bf16_cpu

    return native_bf16_cpu() is None


def _register() -> None:
    # exist_ok: importing twice (or under two module names) must not fail.
    AutoConfig.register(RnnConfig.model_type, RnnConfig, exist_ok=True)
    AutoModelForCausalLM.register(RnnConfig, RnnForCausalLM, exist_ok=True)


_register()

__all__ = ["CELLS", "RnnCausalLMOutput", "RnnConfig", "RnnForCausalLM", "RnnState"]
