"""Recipes: TOML files and --set overrides, typed against the family's config."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from gentool import api, recipes
from gentool.errors import RecipeError


@dataclass
class Config:
    order: int = 3
    rate: float = 0.5
    tokens: Literal["char", "word"] = "word"
    flag: bool = False
    sizes: list[float] = field(default_factory=lambda: [1.0])
    name: str | None = None


def resolve(raw: dict, *overrides: str) -> recipes.Recipe:
    return recipes.resolve(raw, Config, overrides=list(overrides))


def test_values_are_typed_and_overrides_win() -> None:
    recipe = resolve(
        {"family": "x", "model": {"order": 4, "rate": 1}},
        "model.tokens=char",
        "model.sizes=[1, 2.5]",
        "model.flag=true",
        "model.name=abc",
        "data.val=v.txt",
    )
    assert recipe.model == Config(
        order=4, rate=1.0, tokens="char", flag=True, sizes=[1.0, 2.5], name="abc"
    )
    assert isinstance(recipe.model.rate, float)
    assert recipe.data.val == "v.txt"
    assert recipe.as_dict()["model"]["sizes"] == [1.0, 2.5]


@pytest.mark.parametrize(
    ("raw", "overrides", "message"),
    [
        (
            {"model": {"ordr": 3}},
            [],
            "recipe key 'model.ordr' is unknown; valid keys: order, rate, tokens, flag, sizes",
        ),
        ({}, ["train.lrr=3"], "recipe key 'train.lrr' is unknown; valid keys: (none)"),
        ({"modle": {}}, [], "recipe key 'modle' is unknown; valid top-level keys"),
        ({}, ["model.order=3.5"], "recipe key 'model.order' must be int, got 3.5"),
        ({}, ["model.order=true"], "recipe key 'model.order' must be int, got True"),
        ({}, ["model.tokens=bpe"], "recipe key 'model.tokens' is 'bpe'; valid values: char, word"),
        ({}, ["order=3"], "--set 'order=3' is not of the form section.key=value"),
        ({}, ["loss.x=1"], "section 'loss' is unknown"),
    ],
)
def test_bad_keys_and_values_name_the_key_and_the_fix(raw, overrides, message) -> None:
    with pytest.raises(RecipeError) as err:
        resolve({"family": "x", **raw}, *overrides)
    assert message in str(err.value)


def test_recipe_file_and_shipped_recipes(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text('family = "ngram"\nseed = 7\n[model]\norder = 4\ntokens = "char"\n')
    kind, recipe = api.plan(recipe=path, overrides=["model.order=2"])
    assert kind.family == "ngram"
    assert (recipe.seed, recipe.model.order, recipe.model.tokens) == (7, 2, "char")

    shipped = {r.name: r for r in recipes.shipped_recipes()}
    assert shipped["ngram-shakespeare-word3"].family == "ngram"
    for r in shipped.values():  # every shipped recipe resolves
        api.plan(recipe=r.name)


def test_recipe_errors(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="recipe 'nope.toml' does not exist"):
        api.plan(recipe="nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("family = \n")
    with pytest.raises(RecipeError, match="is not valid TOML"):
        api.plan(recipe=bad)
    with pytest.raises(RecipeError, match="no family given"):
        api.plan()
    with pytest.raises(RecipeError, match="model.order must be between 1 and 10"):
        api.plan("ngram", overrides=["model.order=0"])


# The kind each shipped recipe trains, where the family has several (gan's are its own).
KINDS = {
    "ngram-names-char5": "ngram",
    "ngram-shakespeare-word3": "ngram",
    "rnn-shakespeare-char": "rnn",
    "transformer-shakespeare-char": "lm",
    "transformer-multi30k-en-de": "translator",
    "transformer-multi30k-en-de-gpu": "translator",
    "music-chorales-transformer": "music",
    "music-chorales-rnn": "music",
    "music-chorales-gan": "music",
}


@pytest.mark.parametrize("recipe", recipes.shipped_recipes(), ids=lambda r: r.name)
def test_every_shipped_recipe_resolves_to_its_kind_with_every_key(
    recipe: recipes.RecipeFile,
) -> None:
    raw = recipes.read_recipe_file(recipe.path)
    kind, resolved = api.plan(recipe=recipe.name)
    assert kind.family == recipe.family == raw["family"]
    assert resolved.kind == kind.kind_name() == KINDS.get(recipe.name, kind.kind_name())
    for section in ("model", "train"):
        for key, value in raw.get(section, {}).items():
            assert getattr(getattr(resolved, section), key) == value, f"{section}.{key}"
    if kind.trains_on == "parallel":  # and with its data: the same kind
        pairs = api.ParallelPaths(source="train.en", target="train.de")
        assert api.plan(recipe=recipe.name, parallel=pairs)[0] is kind


TEXT_RECIPES = [r for r in recipes.shipped_recipes() if r.family in ("rnn", "transformer")]


@pytest.mark.parametrize("recipe", TEXT_RECIPES, ids=lambda r: r.name)
def test_every_text_recipe_trains(recipe: recipes.RecipeFile, tmp_path: Path) -> None:
    """Two steps of each rnn and transformer recipe, as shipped but for the batch size: the
    language models on a slice of the embedded sample, the translators on sentence pairs,
    the music models on tiny MIDI files."""
    pytest.importorskip("torch")
    from conftest import invoke

    from gentool.data import default_text_path
    from gentool.testing import write_sample_music

    settings = ["train.max_steps=2", "train.batch_size=4", "train.checkpoint_every=0",
                "train.eval_every=0"]  # fmt: skip
    data = tmp_path / "data.txt"
    data.write_text(default_text_path().read_text(encoding="utf-8")[:4000], encoding="utf-8")
    if KINDS[recipe.name] == "music":
        pytest.importorskip("miditok")
        data = write_sample_music(tmp_path / "music", 6)
    if KINDS[recipe.name] == "translator":
        data = tmp_path / "pairs.tsv"
        pairs = ["a dog\tein Hund", "a cat\teine Katze", "the dog runs\tder Hund läuft"]
        data.write_text("\n".join(pairs * 8) + "\n", encoding="utf-8")
        settings.append("train.bleu_pairs=2")
    invoke("train", "--recipe", recipe.name, "--data", data, "--out", tmp_path / "run",
           *[a for s in settings for a in ("--set", s)])  # fmt: skip
    meta = api.info(tmp_path / "run")
    assert (meta["kind"], meta["metrics"]["steps"]) == (KINDS[recipe.name], 2)
    shipped = recipes.read_recipe_file(recipe.path)["model"]
    assert {k: meta["recipe"]["model"][k] for k in shipped} == shipped


ROUTES = [
    ({}, "lm"),
    ({"data": ["a.txt"]}, "lm"),
    ({"overrides": ["model.arch=decoder"]}, "lm"),
    ({"overrides": ["model.arch=auto"], "data": ["a.txt"]}, "lm"),
    ({"data": ["a.tsv"]}, "translator"),
    ({"parallel": api.ParallelPaths(source="a.en", target="a.de")}, "translator"),
    ({"overrides": ["model.arch=auto"], "data": ["a.tsv"]}, "translator"),
    ({"overrides": ["model.arch=encoder-decoder"]}, "translator"),  # (asks for pairs)
]


@pytest.mark.parametrize(("args", "kind"), ROUTES)
def test_the_transformer_kind_follows_arch_and_data(args: dict, kind: str) -> None:
    assert api.plan("transformer", **args)[0].kind_name() == kind


def test_a_transformer_kind_that_cannot_take_the_data_is_one_error(tmp_path: Path) -> None:
    from conftest import assert_error, invoke

    text = tmp_path / "a.txt"
    text.write_text("some text\n")
    result = invoke("train", "transformer", "--source", text, "--target", text,
                    "--set", "model.arch=decoder", ok=False)  # fmt: skip
    assert_error(result, "model.arch=decoder trains a transformer lm", "parallel data")
    result = invoke("train", "transformer", "--set", "model.arch=rnn", ok=False)
    assert_error(result, "'model.arch' is 'rnn'", "auto, decoder, encoder-decoder")
    result = invoke("train", "--recipe", "transformer-multi30k-en-de", ok=False)
    assert_error(result, "'transformer translator' needs sentence pairs", "--source")
    result = invoke("train", "transformer", "--source", text, "--target", text,
                    "--set", "train.seq_len=64", ok=False)  # fmt: skip
    assert_error(result, "train.seq_len applies to the transformer lm", "drop it")
    result = invoke("train", "transformer", "--data", text, "--set", "train.bleu_pairs=1",
                    ok=False)  # fmt: skip
    assert_error(result, "train.bleu_pairs applies to the transformer translator", "drop it")
    assert not (tmp_path / "runs").exists()
