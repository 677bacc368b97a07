"""Unit tests of the ngram family's numerics: estimation, scoring, tensors, ARPA files.

Hand-computed examples pin the formulas; KenLM (lmplz, the kenlm module) is the reference
where it is installed (set KENLM_BIN to the directory holding lmplz), skipped otherwise.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from gentool.data import default_text_path
from gentool.errors import DataError, GentoolError
from gentool_ngram.arpa import read_arpa, write_arpa
from gentool_ngram.lm import BOS, EOS, UNK, NGramLM, Scores

KENLM_MODELS = Path(__file__).parent / "data" / "kenlm"

# <s> a b a </s> / <s> b a </s> / <s> a </s>   ids: <unk> 0, <s> 1, </s> 2, a 3, b 4
WORKED = [["a", "b", "a"], ["b", "a"], ["a"]]


def logp(lm: NGramLM, context: list[str], word: str) -> float:
    ids = [BOS if t == "<s>" else lm.vocab.index(t) for t in context]
    return float(lm.next_token_logprobs(ids)[lm.vocab.index(word)])


def random_corpus(seed: int, words: int = 6, sentences: int = 30) -> list[list[str]]:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(words)]
    return [
        [rng.choice(vocab) for _ in range(rng.choice([0, 1, 2, 3, 5, 8]))] for _ in range(sentences)
    ]


def contexts_to_check(lm: NGramLM) -> list[list[int]]:
    """Every stored n-gram of order < N as a context, plus unseen contexts."""
    contexts: list[list[int]] = [[]]
    for n in range(1, lm.order):
        contexts += lm.ngram_words(n).tolist()
    v = len(lm.vocab)
    contexts += [[UNK], [BOS, UNK], [v - 1, v - 1, v - 1], [BOS, v - 1, 3, UNK], [3, UNK, 4]]
    return contexts


# -- Kneser-Ney ----------------------------------------------------------------------------
def test_kneser_ney_worked_example() -> None:
    lm = NGramLM.estimate(WORKED, order=2)
    # Bigrams (highest order: adjusted = raw counts): <s> a 2, <s> b 1, a b 1, a </s> 3,
    # b a 2. Count-of-counts n1=2, n2=2, n3=1, n4=0; y = n1/(n1+2 n2) = 1/3;
    # D1 = 1 - 2y n2/n1 = 1/3, D2 = 2 - 3y n3/n2 = 3/2, D3+ = 3 - 4y n4/n3 = 3.
    assert lm.discounts[2] == pytest.approx((1 / 3, 1.5, 3.0), abs=1e-6)
    # Unigram adjusted counts = distinct left neighbours: a {<s>, b} 2, b {<s>, a} 2,
    # </s> {a} 1, so n3 = 0: D3 is undefined and lmplz's fallback (0.5, 1, 1.5) applies.
    assert lm.discount_fallback_orders == [1]
    assert lm.discounts[1] == (0.5, 1.0, 1.5)
    # Unigrams: A = 2 + 2 + 1 = 5, gamma = (0.5*1 + 1*2) / 5 = 0.5, uniform 1/V, V = 4
    # (<unk>, </s>, a, b). p(a) = p(b) = (2 - 1)/5 + 0.5/4 = 0.325,
    # p(</s>) = (1 - 0.5)/5 + 0.125 = 0.225, p(<unk>) = 0 + 0.125.
    assert logp(lm, [], "a") == pytest.approx(math.log10(0.325), abs=1e-6)
    assert logp(lm, [], "b") == pytest.approx(math.log10(0.325), abs=1e-6)
    assert logp(lm, [], "</s>") == pytest.approx(math.log10(0.225), abs=1e-6)
    assert logp(lm, [], "<unk>") == pytest.approx(math.log10(0.125), abs=1e-6)
    # Context <s>: A = 3, gamma = (D2*1 + D1*1)/3 = 11/18.
    g = 11 / 18
    assert logp(lm, ["<s>"], "a") == pytest.approx(math.log10(0.5 / 3 + g * 0.325), abs=1e-6)
    assert logp(lm, ["<s>"], "b") == pytest.approx(math.log10((2 / 3) / 3 + g * 0.325), abs=1e-6)
    assert logp(lm, ["<s>"], "</s>") == pytest.approx(math.log10(g * 0.225), abs=1e-6)
    # Context a: A = 1 + 3 = 4, gamma = (D1*1 + D3*1)/4 = 5/6; a </s> keeps 3 - D3 = 0.
    assert logp(lm, ["a"], "b") == pytest.approx(math.log10((2 / 3) / 4 + 5 / 6 * 0.325))
    assert logp(lm, ["a"], "</s>") == pytest.approx(math.log10(5 / 6 * 0.225), abs=1e-6)
    # Context b: A = 2, gamma = D2/2 = 0.75; p(a|b) = 0.5/2 + 0.75*0.325 = 0.49375.
    assert logp(lm, ["b"], "a") == pytest.approx(math.log10(0.49375), abs=1e-6)
    # The back-off weights are the gammas; <s> has log-prob 0 (lmplz), never predicted.
    a, b = lm.vocab.index("a"), lm.vocab.index("b")
    assert lm.backoffs[0][[BOS, a, b, EOS]] == pytest.approx(
        np.log10([g, 5 / 6, 0.75, 1.0]), abs=1e-6
    )
    assert lm.logprobs[0][BOS] == 0.0
    # A whole sentence: p(a|<s>) p(b|a) p(a|b) p(</s>|a).
    expected = math.log10(
        (0.5 / 3 + g * 0.325) * ((2 / 3) / 4 + 5 / 6 * 0.325) * 0.49375 * (5 / 6 * 0.225)
    )
    scores = lm.score([["a", "b", "a"]])
    assert scores.num_tokens == 4
    assert scores.total_logprob() == pytest.approx(expected, abs=1e-5)


def test_lmplz_end_of_stream_quirk_triggers_fallback() -> None:
    # lmplz counts the last n-grams of its suffix-sorted stream with their raw count:
    # here unigram c (raw 2, adjusted 1) leaves no unigram with adjusted count 1, so
    # order 1 falls back although the adjusted counts alone would give D1 = 1/3.
    lm = NGramLM.estimate([["a", "b", "c"], ["b", "c", "a"], [], ["a", "a", "b"]], order=3)
    assert lm.discount_fallback_orders == [1, 2, 3]


def test_sentences_are_padded_once_and_empty_lines_count() -> None:
    lm = NGramLM.estimate([["a", "b"], [], ["b"]], order=3)
    words = {tuple(lm.vocab[i] for i in row) for row in lm.ngram_words(2)}
    assert ("<s>", "</s>") in words  # the empty sentence, as lmplz counts an empty line
    for n in (2, 3):
        assert not (lm.ngram_words(n)[:, 1:] == BOS).any()  # never <s> <s> or </s> <s>
    assert lm.ngram_counts() == [5, 5, 3]


def test_special_tokens_in_training_text_are_dropped() -> None:
    with_specials = NGramLM.estimate([["a", "<s>", "b", "</s>"], ["<unk>", "b"]], order=2)
    plain = NGramLM.estimate([["a", "b"], ["b"]], order=2)
    assert with_specials.vocab == plain.vocab
    for n in (1, 2):
        np.testing.assert_array_equal(with_specials.keys[n - 1], plain.keys[n - 1])
        np.testing.assert_array_equal(with_specials.logprobs[n - 1], plain.logprobs[n - 1])


@pytest.mark.parametrize("smoothing", ["kneser-ney", "add-k"])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_distributions_sum_to_one(smoothing: str, order: int) -> None:
    lm = NGramLM.estimate(random_corpus(order), order=order, smoothing=smoothing, k=0.3)
    for context in contexts_to_check(lm):  # stored contexts and some unseen ones
        logprobs = lm.next_token_logprobs(context)
        assert logprobs[BOS] == -np.inf
        assert np.sum(10.0**logprobs) == pytest.approx(1.0, abs=1e-5), context


@pytest.mark.parametrize("smoothing", ["kneser-ney", "add-k", "stupid-backoff"])
def test_score_agrees_with_next_token_logprobs(smoothing: str) -> None:
    lm = NGramLM.estimate(random_corpus(7), order=3, smoothing=smoothing)
    sentences = [["w1", "w2", "zz", "w3", "w1"], [], ["w0"], ["<s>", "w2"]]
    scores = lm.score(sentences)
    expected = []
    for sentence in sentences:
        history = [BOS]
        for word in [*lm.encode(sentence).tolist(), EOS]:
            word = UNK if word == BOS else word  # a literal <s> in text is out of vocabulary
            expected.append(lm.next_token_logprobs(history)[word])
            history.append(word)
    np.testing.assert_allclose(scores.logprobs, expected, atol=1e-6)
    assert scores.num_tokens == (5 + 1) + (0 + 1) + (1 + 1) + (2 + 1)
    assert scores.num_oov == 2
    np.testing.assert_array_equal(scores.sentence_lengths, [6, 1, 2, 3])


# -- add-k and stupid backoff --------------------------------------------------------------
def test_add_k_worked_example() -> None:
    lm = NGramLM.estimate([["a", "b"]], order=2, smoothing="add-k", k=1.0)
    # V = 4 (<unk>, </s>, a, b), N = 3 predicted tokens: p(w) = (c(w) + 1) / (3 + 4).
    assert logp(lm, [], "a") == pytest.approx(math.log10(2 / 7), abs=1e-6)
    assert logp(lm, [], "<unk>") == pytest.approx(math.log10(1 / 7), abs=1e-6)
    # p(b|a) = (c(a b) + kV p(b)) / (c(a) + kV) = (1 + 8/7) / 5 = 3/7.
    assert logp(lm, ["a"], "b") == pytest.approx(math.log10(3 / 7), abs=1e-6)
    # Unseen continuation: back-off kV / (c(a) + kV) = 4/5 times p(</s>) = 2/7.
    assert logp(lm, ["a"], "</s>") == pytest.approx(math.log10(8 / 35), abs=1e-6)
    assert lm.normalized and lm.discounts == {}


def test_stupid_backoff_worked_example() -> None:
    lm = NGramLM.estimate([["a", "b"], ["a", "c"]], order=3, smoothing="stupid-backoff")
    assert not lm.normalized
    # c(w)/N over N = 6 predicted tokens; S(b|a) = c(a b)/c(a) = 1/2.
    assert logp(lm, [], "a") == pytest.approx(math.log10(2 / 6), abs=1e-6)
    assert logp(lm, ["a"], "b") == pytest.approx(math.log10(1 / 2), abs=1e-6)
    # (c a) was never seen: S(b | c a) = 0.4 S(b | a), alpha also for an unseen context.
    assert logp(lm, ["c", "a"], "b") == pytest.approx(math.log10(0.4 * 0.5), abs=1e-6)
    scores = lm.score([["c", "a", "b"]])
    expected = [0.4 * 1 / 6, 0.4**2 * 2 / 6, 0.4 * 0.5, 1.0]  # c|<s>, a|<s> c, b|c a, </s>|a b
    np.testing.assert_allclose(scores.logprobs, np.log10(expected), atol=1e-6)
    assert lm.score([["zz"]]).logprobs[0] == -np.inf  # an unseen word has no unigram mass


# -- errors ----------------------------------------------------------------------------------
def test_fewer_tokens_than_order_is_a_data_error() -> None:
    with pytest.raises(DataError, match="has 2 tokens, fewer than the model order 3"):
        NGramLM.estimate([["a"], [], ["b"]], order=3)
    with pytest.raises(DataError, match="has 0 tokens"):
        NGramLM.estimate([], order=1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"order": 0},
        {"smoothing": "witten-bell"},
        {"smoothing": "add-k", "k": 0.0},
        {"smoothing": "stupid-backoff", "alpha": -1.0},
        {"discount_fallback": (0.5, 1.0)},
        {"discount_fallback": (1.5, 1.0, 1.5)},
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        NGramLM.estimate(WORKED, **kwargs)


def test_next_token_context_ids_are_checked() -> None:
    lm = NGramLM.estimate(WORKED, order=2)
    with pytest.raises(ValueError):
        lm.next_token_logprobs([BOS, len(lm.vocab)])


# -- Scores ------------------------------------------------------------------------------------
def test_perplexity_definitions_follow_kenlm_query() -> None:
    scores = Scores(
        logprobs=np.array([-1.0, -3.0, -2.0]),
        oov=np.array([False, True, False]),
        ngram_lengths=np.array([1, 1, 1]),
        sentence_lengths=np.array([3]),
    )
    assert scores.perplexity(include_oov=True) == pytest.approx(10.0 ** (6 / 3))
    assert scores.perplexity(include_oov=False) == pytest.approx(10.0 ** (3 / 2))
    assert scores.bits_per_token() == pytest.approx(6 * math.log2(10) / 3)
    assert (scores.num_tokens, scores.num_oov) == (3, 1)


# -- persistence -------------------------------------------------------------------------------
@pytest.mark.parametrize("smoothing", ["kneser-ney", "add-k", "stupid-backoff"])
def test_tensor_round_trip(smoothing: str) -> None:
    lm = NGramLM.estimate(random_corpus(3), order=3, smoothing=smoothing)
    meta = json.loads(json.dumps(lm.meta()))
    back = NGramLM.from_tensors(lm.to_tensors(), list(lm.vocab), meta)
    assert (back.order, back.smoothing, back.normalized) == (3, smoothing, lm.normalized)
    assert back.discounts == lm.discounts
    assert back.discount_fallback_orders == lm.discount_fallback_orders
    test = random_corpus(4) + [["unseen", "w1"]]
    np.testing.assert_array_equal(back.score(test).logprobs, lm.score(test).logprobs)


def test_from_tensors_rejects_inconsistent_tables() -> None:
    lm = NGramLM.estimate(WORKED, order=2)
    tensors = lm.to_tensors()
    tensors["ngram.2.logprob"] = tensors["ngram.2.logprob"][:-1]
    with pytest.raises(ValueError):
        NGramLM.from_tensors(tensors, lm.vocab, lm.meta())
    with pytest.raises(KeyError):
        NGramLM.from_tensors({}, lm.vocab, lm.meta())


@pytest.mark.parametrize("smoothing", ["kneser-ney", "add-k"])
def test_arpa_round_trip(tmp_path: Path, smoothing: str) -> None:
    lm = NGramLM.estimate(random_corpus(5), order=3, smoothing=smoothing)
    write_arpa(lm, tmp_path / "m.arpa")
    text = (tmp_path / "m.arpa").read_text()
    assert text.startswith("\\data\\\nngram 1=") and text.endswith("\n\\end\\\n")
    back = read_arpa(tmp_path / "m.arpa")
    assert back.vocab == lm.vocab and back.ngram_counts() == lm.ngram_counts()
    for n in range(1, 4):  # shortest float32 decimals read back exactly
        np.testing.assert_array_equal(back.logprobs[n - 1], lm.logprobs[n - 1])
    test = random_corpus(6) + [["unseen", "w2", "w2"]]
    np.testing.assert_array_equal(back.score(test).logprobs, lm.score(test).logprobs)


def test_arpa_number_format_is_lmplz(tmp_path: Path) -> None:
    lm = NGramLM.estimate(WORKED, order=2)
    write_arpa(lm, tmp_path / "m.arpa")
    lines = (tmp_path / "m.arpa").read_text().splitlines()
    assert lines[4:6] == ["\\1-grams:", "-0.90309\t<unk>\t0"]  # log10(0.125), "0" not "0.0"
    assert lines[6].startswith("0\t<s>\t-0.2138")


def test_arpa_refuses_tokens_with_whitespace(tmp_path: Path) -> None:
    lm = NGramLM.estimate([["a", " ", "b"]], order=2)
    with pytest.raises(GentoolError, match="whitespace"):
        write_arpa(lm, tmp_path / "m.arpa")


SRILM_STYLE = """some free text before the data
\\data\\
ngram 1=4
ngram 2=2
ngram 3=2

\\1-grams:
-99\t<s>\t-0.5
-0.5\ta\t-0.3
-0.7\tb\t-0.2
-0.9\t</s>

\\2-grams:
-0.2 <s> a -0.1
-inf a b

\\3-grams:
-0.05 b a </s>
-0.01 <s> a b

\\end\\
"""


def test_read_arpa_fills_gaps(tmp_path: Path) -> None:
    (tmp_path / "m.arpa").write_text(SRILM_STYLE)
    lm = read_arpa(tmp_path / "m.arpa")
    assert lm.vocab[:3] == ["<unk>", "<s>", "</s>"] and lm.smoothing == "arpa"
    assert lm.logprobs[0][UNK] == -100.0  # missing <unk>: KenLM's default
    # "b a" is missing as the prefix of "b a </s>": added with the backed-off
    # probability bo(b) + p(a) = -0.2 - 0.5 and back-off 0.
    assert lm.ngram_counts() == [5, 3, 2]
    assert logp(lm, ["b"], "a") == pytest.approx(-0.7)
    scores = lm.score([["b", "a"], ["a", "b"]])
    expected = [
        -0.5 - 0.7,  # b | <s>: bo(<s>) + p(b)
        -0.7,  # a | <s> b: the added bigram; context "<s> b" is not stored
        -0.05,  # </s> | b a
        -0.2,  # a | <s>
        -0.01,  # b | <s> a
        -0.2 - 0.9,  # </s> | a b: bo(a b) = 0 (absent), bo(b) + p(</s>)
    ]
    np.testing.assert_allclose(scores.logprobs, expected, atol=1e-6)
    assert logp(lm, ["b", "a"], "b") == -np.inf  # bo(b a) = 0 (added) + p(b | a) = -inf


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("ngram 1=1\n", None, "no \\\\data"),
        ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\t<s>\n-x\t</s>\n\\end\\\n", 6, "bad log-prob"),
        ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\t<s>\n-1\t</s> 1 2\n\\end\\\n", 6, "expected"),
        (
            "\\data\\\nngram 1=2\nngram 2=1\n\n\\1-grams:\n-1\t<s>\t0\n-1\t</s>\tnan\n\n"
            "\\2-grams:\n-1\t<s> </s>\n\n\\end\\\n",
            7,
            "bad back-off 'nan'",
        ),
        ("\\data\\\nngram 1=3\n\n\\1-grams:\n-1\t<s>\n-1\t</s>\n\n\\end\\\n", 7, "declares 3"),
        (
            "\\data\\\nngram 1=2\nngram 2=1\n\n\\1-grams:\n-1\t<s>\t0\n-1\t</s>\t0\n\n"
            "\\2-grams:\n-1\t<s> x\n\n\\end\\\n",
            10,
            "'x' is not among the unigrams",
        ),
        (
            "\\data\\\nngram 1=2\nngram 2=2\n\n\\1-grams:\n-1\t<s>\t0\n-1\t</s>\t0\n\n"
            "\\2-grams:\n-1\t<s> </s>\n-2\t<s> </s>\n\n\\end\\\n",
            11,
            "duplicate 2-gram",
        ),
        ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\t<s>\n-1\t</s>\n", 6, "end of file"),
        ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1\t<s>\n\n\\end\\\n", None, "no </s>"),
    ],
)
def test_read_arpa_errors_name_the_line(
    tmp_path: Path, text: str, line: int | None, message: str
) -> None:
    (tmp_path / "bad.arpa").write_text(text)
    with pytest.raises(GentoolError, match=message) as err:
        read_arpa(tmp_path / "bad.arpa")
    if line is not None:
        assert f"bad.arpa:{line}:" in str(err.value)


# -- KenLM as the reference ----------------------------------------------------------------
def _lmplz() -> str | None:
    for directory in (os.environ.get("KENLM_BIN"), "/tmp/kenlm_dl/kenlm-0.3.0/build/bin"):
        if directory and (Path(directory) / "lmplz").is_file():
            return str(Path(directory) / "lmplz")
    return shutil.which("lmplz")


LMPLZ = _lmplz()
needs_lmplz = pytest.mark.skipif(LMPLZ is None, reason="KenLM's lmplz is not installed")


def run_lmplz(tmp_path: Path, sentences: list[list[str]], order: int) -> tuple[Path, list[int]]:
    """Build an ARPA with lmplz; also the orders (1-based) that took fallback discounts."""
    text, arpa = tmp_path / "train.txt", tmp_path / f"lmplz{order}.arpa"
    text.write_text("".join(" ".join(s) + "\n" for s in sentences))
    command = [LMPLZ, "-o", str(order), "-S", "64M", "--vocab_estimate", "100"]
    command += ["-T", str(tmp_path), "--discount_fallback", "--text", str(text)]
    result = subprocess.run(
        [*command, "--arpa", str(arpa)], capture_output=True, text=True, check=True
    )
    found = re.findall(r"fallback discounts for order (\d+)", result.stderr)
    return arpa, [int(i) + 1 for i in found]


def arpa_entries(lm: NGramLM) -> dict[tuple[str, ...], tuple[float, float]]:
    entries = {}
    for n in range(1, lm.order + 1):
        for i, row in enumerate(lm.ngram_words(n)):
            backoff = float(lm.backoffs[n - 1][i]) if n < lm.order else 0.0
            entries[tuple(lm.vocab[j] for j in row)] = (float(lm.logprobs[n - 1][i]), backoff)
    return entries


@needs_lmplz
@pytest.mark.parametrize("seed", range(8))
def test_kneser_ney_matches_lmplz(tmp_path: Path, seed: int) -> None:
    sentences = random_corpus(seed, words=3 + seed, sentences=10 + 6 * seed)
    order = 1 + seed % 5
    arpa, fallback_orders = run_lmplz(tmp_path, sentences, order)
    lm = NGramLM.estimate(sentences, order=order)
    assert lm.discount_fallback_orders == fallback_orders
    theirs, ours = arpa_entries(read_arpa(arpa)), arpa_entries(lm)
    assert theirs.keys() == ours.keys()
    for ngram, values in theirs.items():
        np.testing.assert_allclose(ours[ngram], values, atol=1e-5, err_msg=str(ngram))


@needs_lmplz
def test_read_arpa_scores_as_kenlm(tmp_path: Path) -> None:
    kenlm = pytest.importorskip("kenlm")
    sentences = random_corpus(11, words=8, sentences=60)
    arpa, _ = run_lmplz(tmp_path, sentences, 3)
    lm, model = read_arpa(arpa), kenlm.Model(str(arpa))
    test = random_corpus(12, words=9) + [["w1", "nope", "w2"]]
    expected = [p for s in test for p, _, _ in model.full_scores(" ".join(s))]
    lengths = [n for s in test for _, n, _ in model.full_scores(" ".join(s))]
    scores = lm.score(test)
    np.testing.assert_allclose(scores.logprobs, expected, atol=1e-5)
    np.testing.assert_array_equal(scores.ngram_lengths, lengths)


@pytest.mark.parametrize("smoothing", ["kneser-ney", "add-k"])
def test_kenlm_reads_our_arpa(tmp_path: Path, smoothing: str) -> None:
    kenlm = pytest.importorskip("kenlm")
    lm = NGramLM.estimate(random_corpus(13, words=8, sentences=60), order=4, smoothing=smoothing)
    write_arpa(lm, tmp_path / "m.arpa")
    model = kenlm.Model(str(tmp_path / "m.arpa"))
    test = random_corpus(14, words=9) + [["w1", "nope", "w2"], []]
    expected = [p for s in test for p, _, _ in model.full_scores(" ".join(s))]
    scores = lm.score(test)
    np.testing.assert_allclose(scores.logprobs, expected, atol=1e-5)
    oov = [o for s in test for _, _, o in model.full_scores(" ".join(s))]
    np.testing.assert_array_equal(scores.oov, oov)


# -- committed lmplz models: the reference, also where KenLM is not installed -------------
@pytest.mark.parametrize(("order", "fallback_orders"), [(3, []), (5, [5])])
def test_kneser_ney_matches_committed_lmplz_models(
    tmp_path: Path, order: int, fallback_orders: list[int]
) -> None:
    lines = default_text_path().read_text(encoding="utf-8").splitlines()[:400]
    arpa = tmp_path / "kenlm.arpa"
    arpa.write_bytes(gzip.decompress((KENLM_MODELS / f"kenlm-o{order}.arpa.gz").read_bytes()))
    lm = NGramLM.estimate([line.split() for line in lines], order=order)
    assert lm.discount_fallback_orders == fallback_orders
    theirs, ours = arpa_entries(read_arpa(arpa)), arpa_entries(lm)
    assert theirs.keys() == ours.keys()
    keys = list(theirs)
    np.testing.assert_allclose([ours[k] for k in keys], [theirs[k] for k in keys], atol=1e-6)
