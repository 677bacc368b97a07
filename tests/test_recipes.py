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
    family, recipe = api.plan(recipe=path, overrides=["model.order=2"])
    assert family.family == "ngram"
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
