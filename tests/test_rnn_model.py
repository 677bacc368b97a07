"""The rnn family's HF-native model (gentool_rnn.modeling) and the neural text tokenizers
(gentool.neural.tokenizers)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
try:
    import gentool_rnn  # noqa: F401
except ImportError:
    sys.path.insert(0, str(REPO / "plugins"))

from gentool.neural import tokenizers as tokenization  # noqa: E402
from gentool.neural.tokenizers import encode_text, train_tokenizer  # noqa: E402
from gentool_rnn.modeling import RnnConfig, RnnForCausalLM, RnnState  # noqa: E402

CELLS = ["lstm", "gru", "rnn"]
SAMPLE = (REPO / "gentool" / "embedded" / "shakespeare.txt").read_text(encoding="utf-8")[:6000]


def make_model(cell: str = "lstm", tie: bool = False, **overrides: Any) -> RnnForCausalLM:
    torch.manual_seed(0)
    kwargs: dict[str, Any] = dict(
        vocab_size=23,
        cell=cell,
        embedding_size=6,
        hidden_size=10,
        num_layers=2,
        tie_embeddings=tie,
        eos_token_id=None,  # no early stop: generated lengths are fixed
    )
    kwargs.update(overrides)
    return RnnForCausalLM(RnnConfig(**kwargs)).eval()


# -- config -------------------------------------------------------------------------------------


def test_config_validates_cell_and_sizes() -> None:
    with pytest.raises(ValueError, match="cell 'transformer' is unknown.*lstm, gru, rnn"):
        RnnConfig(cell="transformer")
    with pytest.raises(ValueError, match="hidden_size"):
        RnnConfig(hidden_size=0)
    with pytest.raises(ValueError, match="dropout"):
        RnnConfig(dropout=1.0)
    config = RnnConfig(cell="GRU", tie_embeddings=True, num_layers=3)
    assert config.cell == "gru"
    assert config.tie_word_embeddings is True  # the name transformers reads
    assert config.num_hidden_layers == 3


def test_config_round_trips_through_auto_config(tmp_path: Path) -> None:
    RnnConfig(cell="rnn", vocab_size=7, dropout=0.25).save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, RnnConfig)
    assert (loaded.cell, loaded.vocab_size, loaded.dropout) == ("rnn", 7, 0.25)


# -- forward, loss, state -----------------------------------------------------------------------


@pytest.mark.parametrize("tie", [False, True])
def test_forward_shapes_and_shifted_loss(tie: bool) -> None:
    model = make_model(tie=tie)
    ids = torch.randint(0, 23, (3, 9))
    labels = ids.clone()
    labels[0, 4] = -100
    out = model(ids, labels=labels)
    assert out.logits.shape == (3, 9, 23)
    assert out.state.h.shape == out.state.c.shape == (2, 3, 10)
    expected = torch.nn.functional.cross_entropy(
        out.logits[:, :-1].reshape(-1, 23), labels[:, 1:].reshape(-1), ignore_index=-100
    )
    torch.testing.assert_close(out.loss, expected)
    assert model(ids, use_cache=False).state is None
    assert model(ids, logits_to_keep=1).logits.shape == (3, 1, 23)


@pytest.mark.parametrize("cell", CELLS)
def test_state_carried_across_calls_equals_one_call(cell: str) -> None:
    """Truncated BPTT: chunk 2 continuing from chunk 1's state sees the whole past."""
    model = make_model(cell)
    ids = torch.randint(0, 23, (2, 12))
    whole = model(ids)
    first = model(ids[:, :5])
    second = model(ids[:, 5:], state=first.state.detach())
    torch.testing.assert_close(torch.cat([first.logits, second.logits], 1), whole.logits)
    torch.testing.assert_close(second.state.h, whole.state.h)
    # The batch-first dict form (what the trainer gathers and saves) is accepted too.
    again = model(ids[:, 5:], state=first.state.to_dict())
    torch.testing.assert_close(again.logits, second.logits)


@pytest.mark.parametrize("cell", CELLS)
def test_state_dict_round_trip_and_reorder(cell: str) -> None:
    model = make_model(cell)
    state = model(torch.randint(0, 23, (4, 3))).state
    d = state.to_dict()
    assert set(d) == ({"h", "c"} if cell == "lstm" else {"h"})
    assert all(t.shape == (4, 2, 10) for t in d.values())  # (batch, layers, hidden)
    back = RnnState.from_dict(d)
    assert torch.equal(back.h, state.h)
    if state.c is None:
        assert back.c is None
    else:
        assert back.c is not None and torch.equal(back.c, state.c)
    initial = model.initial_state(5)
    assert initial.h.shape == (2, 5, 10) and not initial.h.any()
    order = torch.tensor([3, 3, 0, 1])
    expected = state.h[:, order]
    assert back.reorder_cache(order) is back
    assert torch.equal(back.h, expected)


def test_padding_mask_holds_the_state() -> None:
    """A left-padded row gives the same logits and state as the unpadded sequence."""
    model = make_model("lstm")
    seq = torch.randint(0, 23, (1, 5))
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), seq], 1)
    batch = torch.cat([padded, torch.randint(0, 23, (1, 8))])
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[0, :3] = 0
    out = model(batch, attention_mask=mask)
    alone = model(seq)
    torch.testing.assert_close(out.logits[0, 3:], alone.logits[0])
    torch.testing.assert_close(out.state.h[:, :1], alone.state.h)
    torch.testing.assert_close(out.logits[1], model(batch[1:]).logits[0])


# -- save / load --------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("tie", [False, True])
def test_save_load_gives_identical_logits(tmp_path: Path, cell: str, tie: bool) -> None:
    model = make_model(cell, tie=tie, embedding_size=6 if cell == "gru" else 10)
    ids = torch.randint(0, 23, (2, 7))
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, RnnForCausalLM)
    assert torch.equal(loaded(ids).logits, model(ids).logits)
    assert (loaded.lm_head.weight is loaded.embed_tokens.weight) == tie
    assert (loaded.proj is not None) == (tie and cell == "gru")
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        stored = set(f.keys())
    assert ("lm_head.weight" in stored) == (not tie)  # a tied matrix is stored once


# -- generation ---------------------------------------------------------------------------------


def naive_greedy(model: RnnForCausalLM, prompt: torch.Tensor, steps: int) -> torch.Tensor:
    """Re-run the whole prefix for every new token (no state carried)."""
    ids = prompt
    for _ in range(steps):
        logits = model(ids, use_cache=False).logits[:, -1]
        ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], 1)
    return ids


@pytest.mark.parametrize("cell", CELLS)
def test_generate_carries_the_state(cell: str) -> None:
    model = make_model(cell)
    lengths: list[int] = []
    hook = model.register_forward_pre_hook(
        lambda _m, _a, kw: lengths.append(kw["input_ids"].shape[1]), with_kwargs=True
    )
    prompt = torch.tensor([[1, 5, 7, 2, 9], [3, 3, 4, 8, 1]])
    out = model.generate(prompt, max_new_tokens=8, do_sample=False)
    hook.remove()
    assert out.shape == (2, 13)
    assert lengths == [5] + [1] * 7  # prefill once, then one token per step
    assert torch.equal(out, naive_greedy(model, prompt, 8))
    # Continuing from a state computed elsewhere equals generating from the whole prompt.
    state = model(prompt[:, :3]).state
    assert torch.equal(model.generate(prompt[:, 3:], state=state, max_new_tokens=8), out[:, 3:])


def test_generate_left_padded_batch_matches_single_prompts() -> None:
    model = make_model("gru")
    short, long = torch.tensor([[4, 6]]), torch.tensor([[1, 5, 7, 2]])
    batch = torch.tensor([[0, 0, 4, 6], [1, 5, 7, 2]])
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    out = model.generate(batch, attention_mask=mask, max_new_tokens=6, do_sample=False)
    assert torch.equal(out[0, 2:], model.generate(short, max_new_tokens=6)[0])
    assert torch.equal(out[1], model.generate(long, max_new_tokens=6)[0])


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_beam_search_reorders_the_state(cell: str) -> None:
    model = make_model(cell)
    prompt = torch.tensor([[1, 5, 7], [2, 2, 9]])
    kwargs: dict[str, Any] = dict(max_new_tokens=6, num_beams=3, num_return_sequences=2)
    out = model.generate(prompt, **kwargs)
    assert out.shape == (4, 9)
    # Without the state every step re-runs the prefix: same beams iff reordering is right.
    assert torch.equal(out, model.generate(prompt, use_cache=False, **kwargs))


def test_seeded_sampling_is_repeatable() -> None:
    model = make_model("lstm")
    prompt = torch.tensor([[1, 5, 7]])
    kwargs: dict[str, Any] = dict(
        max_new_tokens=10,
        do_sample=True,
        temperature=0.8,
        top_k=10,
        top_p=0.95,
        num_return_sequences=3,
    )
    torch.manual_seed(123)
    first = model.generate(prompt, **kwargs)
    torch.manual_seed(123)
    second = model.generate(prompt, **kwargs)
    assert first.shape == (3, 13)
    assert torch.equal(first, second)


# -- tokenizers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_tokenizer_round_trips_and_reloads(tmp_path: Path, kind: str) -> None:
    tok = train_tokenizer(kind, [SAMPLE], vocab_size=300 if kind == "bpe" else None)
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<unk>"]) == [0, 1]
    assert tok.bos_token_id == tok.eos_token_id == tok.pad_token_id == 0
    assert tok.unk_token_id == 1
    ids = tok.encode(SAMPLE)
    assert tok.encode(SAMPLE, add_special_tokens=True) == ids  # never adds specials
    assert 1 not in ids
    if kind == "word":
        text = "You  are all resolved ?\n\nAll :\nResolved. resolved."
        assert tok.decode(tok.encode(text)) == "You are all resolved?\n\nAll:\nResolved. resolved."
        assert "\n" in tok.convert_ids_to_tokens(ids[:5])
    else:
        assert tok.decode(ids) == SAMPLE  # lossless
    tok.save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer.json").exists()
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.encode(SAMPLE) == ids
    assert reloaded.decode(ids) == tok.decode(ids)
    assert tokenization.tokenizer_kind(reloaded) == kind
    assert encode_text(reloaded, SAMPLE) == ids


def test_char_tokenizer_is_per_character_with_unk() -> None:
    tok = train_tokenizer("char", ["ab c\nab"])
    assert tok.convert_ids_to_tokens(tok.encode("a b\n")) == ["a", " ", "b", "\n"]
    assert tok.encode("a€z") == [tok.convert_tokens_to_ids("a"), 1, 1]
    assert encode_text(tok, "a€z") == [tok.convert_tokens_to_ids("a"), 1, 1]
    # A special token's text still encodes as the special token, as tok.encode does.
    assert encode_text(tok, "a<|endoftext|>b") == tok.encode("a<|endoftext|>b")


@pytest.mark.parametrize(("vocab_size", "min_frequency"), [(None, 1), (20, 1), (None, 30)])
def test_char_vocab_is_what_the_tokenizers_trainer_learns(
    vocab_size: int | None, min_frequency: int
) -> None:
    """The char vocabulary is counted in Python for speed; it equals WordLevelTrainer's."""
    backend = tokenization._backend("char")
    trainer = tokenization._trainer("char", vocab_size, min_frequency)
    backend.train_from_iterator([SAMPLE], trainer=trainer)
    tok = train_tokenizer("char", [SAMPLE], vocab_size, min_frequency)
    assert tok.get_vocab() == backend.get_vocab()


def test_unknown_kind_and_bad_sizes_are_rejected() -> None:
    with pytest.raises(ValueError, match="kind 'sentencepiece' is unknown"):
        train_tokenizer("sentencepiece", ["abc"])
    with pytest.raises(ValueError, match="at least 258"):
        train_tokenizer("bpe", ["abc"], vocab_size=100)


def test_word_tokenizer_vocab_size_keeps_frequent_words() -> None:
    tok = train_tokenizer("word", ["the cat and the dog, the end.\n"] * 3, vocab_size=4)
    assert tok.convert_ids_to_tokens(tok.encode("the zebra")) == ["the", "<unk>"]
    assert len(tok) == 4
    tok = train_tokenizer("word", ["'Tis (well-met), 'tis don't.\n"])
    tokens = ["'", "Tis", "(", "well-met", ")", ",", "'tis", "don't", ".", "\n"]
    assert tok.convert_ids_to_tokens(tok.encode("'Tis (well-met), 'tis don't.\n")) == tokens
    assert tok.decode(tok.encode("'Tis  (well-met) , 'tis\n")) == "' Tis (well-met), 'tis\n"


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_encode_text_in_chunks_equals_encode(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    tok = train_tokenizer(kind, [SAMPLE], vocab_size=300 if kind == "bpe" else None)
    text = SAMPLE + "\n\n  odd   spacing \n\n\nend  \n"
    monkeypatch.setattr(tokenization, "_CHUNK_CHARS", 40)
    assert len(list(tokenization._chunks(text))) > 20
    assert "".join(tokenization._chunks(text)) == text
    assert encode_text(tok, text) == tok.encode(text)
    assert encode_text(tok.backend_tokenizer, text) == tok.encode(text)


def test_model_and_tokenizer_share_a_directory(tmp_path: Path) -> None:
    tok = train_tokenizer("char", [SAMPLE])
    model = make_model(vocab_size=len(tok), eos_token_id=0)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    tok2 = AutoTokenizer.from_pretrained(tmp_path)
    model2 = AutoModelForCausalLM.from_pretrained(tmp_path)
    ids = torch.tensor([[tok2.bos_token_id, *tok2.encode("First")]])
    assert torch.equal(model2(ids).logits, model(ids).logits)
