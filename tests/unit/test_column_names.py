"""Users' column names against the names frameworks take; the training stages' preflight."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from components.contracts import (
    Constants,
    Label,
    ModelCard,
    NumericStats,
    ServingLayout,
    internal_names,
    safe_name,
)
from components.errors import BakeoffError
from components.training.features import preflight

#: What a spreadsheet or a database export can hold as headers.
HEADERS = [
    "Body Mass (g)",
    "Culmen Length (mm)",
    "Delta 15 N (o/oo)",
    "a b",
    "a_b",
    "a-b",
    "a.b",
    "Flipper",
    "flipper",
    "FLIPPER",
    "Île",
    "Δ",
    "名前",
    "1st/2nd ratio",
    "rate %",
    "_id",
    "x" * 200,
    "x" * 199 + "y",
    "pixel_0_0",
    "examples",
]


def test_every_internal_name_is_one_all_frameworks_take_and_none_meet():
    names = internal_names(HEADERS)
    assert list(names) == HEADERS
    for internal in names.values():
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", internal), internal
    # Apart even where case does not count (a SavedModel's signature arguments).
    assert len({internal.lower() for internal in names.values()}) == len(HEADERS)


def test_a_name_frameworks_take_is_kept_and_the_others_follow_the_name_alone():
    assert safe_name("pixel_0_0") == "pixel_0_0"
    assert safe_name("a_b") == "a_b"
    assert safe_name("Body Mass (g)").startswith("Body_Mass_g_")
    assert safe_name("Île").startswith("Ile_")
    assert safe_name("1st/2nd ratio").startswith("f_1st_2nd_ratio_")
    # The same name gets the same internal name whatever columns sit beside it.
    assert internal_names(["a b"]) == {"a b": internal_names(["a_b", "a b"])["a b"]}


def constants(**changes) -> Constants:
    numeric = ("Body Mass (g)", "a b")
    base = Constants(
        dataset="messy",
        task="classification",
        features=(*numeric, "Île"),
        numeric=numeric,
        categorical=("Île",),
        stats={name: NumericStats(1.0, 2.0, 2.0) for name in numeric},
        vocabularies={"Île": ("Biscoe", "Dream")},
        impute={"Body Mass (g)": 1.0, "a b": 0.0, "Île": "Dream"},
        label=_label(),
    )
    return replace(base, **changes)


def _label() -> Label:
    return Label("Species", "string", classes=("Adélie", "Gentoo"))


def test_the_model_card_and_the_manifest_carry_the_names_users_use_and_the_internal_ones():
    card = ModelCard.describe(
        constants(), framework="f", artifact="a", format="x", spec={}, hyperparameters={}
    )
    assert card.columns == ("Body Mass (g)", "a b", "Île")
    assert ModelCard.from_dict(card.to_dict()).internal_names == internal_names(card.columns)
    layout = ServingLayout.of_card(card)
    manifest = layout.to_dict()
    assert manifest["input"]["columns"] == list(card.columns)
    assert ServingLayout.from_manifest(manifest).internal_names == card.internal_names


def test_a_card_before_version_2_reads_with_the_same_names():
    data = ModelCard.describe(
        constants(), framework="f", artifact="a", format="x", spec={}, hyperparameters={}
    ).to_dict()
    del data["internal_names"]
    data["version"] = 1
    assert ModelCard.from_dict(data).internal_names == {}


def test_preflight_passes_a_messy_but_sound_table():
    preflight(constants(), "preprocessing.json")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"numeric": (), "categorical": ()}, "preprocessing.json: no feature columns to train on"),
        (
            {
                "stats": {
                    "Body Mass (g)": NumericStats(1e39, 1.0, 1.0),
                    "a b": NumericStats(0, 1, 1),
                }
            },
            "preprocessing.json: column 'Body Mass (g)': mean, scale or fill value",
        ),
        (
            {"image_shape": (2, 2)},
            "preprocessing.json: image_shape 2x2 needs 4 numeric features; "
            "found 2 numeric and 1 categorical",
        ),
    ],
)
def test_preflight_stops_in_one_line_naming_what_a_trainer_could_not_take(changes, message):
    with pytest.raises(BakeoffError) as caught:
        preflight(constants(**changes), "preprocessing.json")
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_preflight_stops_a_one_class_label():
    one = constants(label=replace(_label(), classes=("Adélie",)))
    with pytest.raises(BakeoffError, match="label 'Species' has 1 class; a classifier needs two"):
        preflight(one, "preprocessing.json")
