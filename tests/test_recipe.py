"""The recipe as plain data: Recipe vs RunSettings, what checkpoints record, and the one training split."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict, fields, replace
from pathlib import Path

import pytest
import torch

from jointcodec.checkpoint import read_config, resolve_weights
from jointcodec.cli.main import build_parser, main, recipe_from_flags
from jointcodec.data import load_split, train_val_split
from jointcodec.errors import ConfigError
from jointcodec.training import Recipe, RunSettings, TrainConfig
from jointcodec.training.hyperparameters import RECIPES, named_recipe, pick
from jointcodec.training.recipe import training_split

RUN_FIELDS = {"device", "precision", "devices", "data_dir", "download", "out", "resume", "test_at_end", "progress"}


def test_recipe_and_run_settings_do_not_overlap() -> None:
    recipe, run = {f.name for f in fields(Recipe)}, {f.name for f in fields(RunSettings)}
    assert not recipe & run and run == RUN_FIELDS
    assert {"lr", "weight_decay", "beta", "target_bpp", "epochs", "batch_size", "levels", "preset", "val_size",
            "seed", "init_from"} <= recipe


def test_the_dataclasses_import_no_torch() -> None:
    code = ("import sys; from jointcodec.training.hyperparameters import Recipe, RunSettings, DistillConfig; "
            "import jointcodec.training; Recipe(); RunSettings(); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_shipped_models_old_record_reads_as_its_recipe() -> None:
    """Older checkpoints kept the run settings (and a grab-bag) inside the recipe record."""
    record = read_config(resolve_weights("cifar10-v1deep-L2"))["train"]
    assert {"device", "out", "extra"} <= set(record)
    recipe = Recipe.from_record(record)
    assert recipe == Recipe()  # the recipe's defaults are this shipped model's
    assert asdict(recipe) == {k: v for k, v in record.items() if k in asdict(recipe)} | {
        "val_seed": None, "teacher": None, "teacher_weight": Recipe().teacher_weight, "ema_decay": 0.0,
        "val_every": 1, "low_res_epochs": 0, "low_res_size": 24, "translate": 2, "cutout": 0, "whiten_stem": False}


def test_a_new_record_is_the_recipe_itself() -> None:
    recipe = Recipe(levels=3, lr=0.05, init_from="default")
    assert Recipe(**asdict(recipe)) == recipe == Recipe.from_record(asdict(recipe))


def test_train_config_splits_into_recipe_and_run() -> None:
    flat = TrainConfig(preset="cifar-v1", lr=0.2, device="cpu", out="somewhere", val_size=64)
    recipe, run = flat.split()
    assert type(recipe) is Recipe and type(run) is RunSettings
    assert (recipe.preset, recipe.lr, recipe.val_size, run.device, run.out) == ("cifar-v1", 0.2, 64, "cpu", "somewhere")


def parsed(argv: list[str]):
    return build_parser(argv).parse_args(argv)


def test_the_train_command_builds_recipe_and_run_with_the_same_defaults() -> None:
    args = parsed(["train"])
    assert recipe_from_flags(args) == Recipe() and pick(RunSettings, vars(args)) == RunSettings()
    args = parsed(["train", "--lr", "0.3", "--device", "cpu", "--init-from", "default"])
    assert recipe_from_flags(args) == Recipe(lr=0.3, init_from="default") and args.device == "cpu"
    assert recipe_from_flags(parsed(["train", "--whiten-stem"])) == Recipe(whiten_stem=True)
    assert recipe_from_flags(parsed(["train", "--whiten-stem", "--no-whiten-stem"])) == Recipe()


def test_a_named_recipe_is_its_changes_and_given_flags_override_it() -> None:
    assert named_recipe("default") == Recipe()
    fast = named_recipe("fast")
    assert fast == replace(Recipe(), **RECIPES["fast"]["changes"]) and fast.ema_decay > 0 and fast.val_every == 0
    assert recipe_from_flags(parsed(["train", "--recipe", "fast"])) == fast
    assert recipe_from_flags(parsed(["train", "--recipe", "fast", "--epochs", "3", "--seed", "2"])) == replace(
        fast, epochs=3, seed=2)
    for name, recipe in RECIPES.items():  # plain data: a sentence, and only real fields
        assert recipe["about"] and set(recipe["changes"]) <= {f.name for f in fields(Recipe)}, name


def test_a_bad_recipe_name_or_field_is_one_clear_error(capsys) -> None:
    with pytest.raises(ConfigError, match="no recipe 'fastest' \\(recipes: default, fast"):
        named_recipe("fastest")
    with pytest.raises(ConfigError, match="not a recipe field: device"):
        named_recipe("fast", device="cpu")
    with pytest.raises(SystemExit) as exit_code:
        main(["train", "--recipe", "fastest"])
    assert exit_code.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "invalid choice: 'fastest'" in error
    assert main(["recipes"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == list(RECIPES)


def test_an_addon_keeps_its_models_validation_split() -> None:
    model = Recipe(val_size=5000, seed=3)
    addon = model.for_addon(0)
    assert (addon.val_size, addon.split_seed(), addon.train_subset) == (5000, 3, 0)
    small = model.for_addon(600)
    assert (small.val_size, small.split_seed(), small.train_subset) == (60, 3, 600)
    # The add-on's own seed (batch order, initialisation) does not move the held-out images.
    assert Recipe(**{**asdict(addon), "seed": 9}).split_seed() == 3
    # A model trained on all of train (the default) held nothing out, so its add-ons validate on nothing either.
    assert Recipe(val_size=0).for_addon(0).val_size == Recipe(val_size=0).for_addon(600).val_size == 0


def test_the_one_split_is_the_shipped_models(data_dir: Path) -> None:
    """The split a shipped model was validated on: 45,000 fit and 5,000 validation images, seed 0."""
    recipe = Recipe.from_record(read_config(resolve_weights("cifar10-v1deep-L2"))["train"])
    fit, val = training_split(recipe, str(data_dir), False, 32)
    expected_fit, expected_val = train_val_split(load_split("cifar10", "train", str(data_dir), False, 32), 5000, 0)
    assert (len(fit), len(val)) == (45000, 5000)
    assert torch.equal(val.labels, expected_val.labels) and torch.equal(fit.images[:64], expected_fit.images[:64])
    assert torch.equal(val.images[-64:], expected_val.images[-64:])


@pytest.mark.parametrize(("val_every", "validated"), [(1, [1, 2, 3, 4, 5]), (2, [2, 4, 5]), (0, [5])])
def test_validation_epochs(val_every: int, validated: list[int]) -> None:
    recipe = Recipe(epochs=5, val_every=val_every)
    assert [epoch for epoch in range(1, 6) if recipe.validates_after(epoch)] == validated


@pytest.mark.parametrize(("low_res", "epochs"), [(0, []), (2, [0, 1]), (4, [0, 1, 2, 3])])
def test_the_first_epochs_train_at_low_resolution(low_res: int, epochs: list[int]) -> None:
    recipe = Recipe(epochs=5, low_res_epochs=low_res)
    assert [epoch for epoch in range(5) if recipe.low_res(epoch)] == epochs


def test_an_add_on_does_not_inherit_low_resolution_epochs() -> None:
    assert Recipe(epochs=5, low_res_epochs=2).for_addon(0).low_res_epochs == 0


def test_an_add_on_does_not_inherit_the_whitened_stem() -> None:
    assert Recipe(whiten_stem=True).for_addon(0).whiten_stem is False


def test_an_add_on_does_not_inherit_cutout() -> None:
    assert Recipe(cutout=8).for_addon(0).cutout == 0


# Augmentation sizes in pixels of a 32 x 32 image: (field, largest allowed, a value the flag sets).
AUGMENTATION_BOUNDS = [("translate", 8, 4), ("cutout", 16, 8)]


@pytest.mark.parametrize(("field", "largest", "flag_value"), AUGMENTATION_BOUNDS)
def test_an_augmentation_size_out_of_its_range_is_refused(field: str, largest: int, flag_value: int) -> None:
    for bad in (-1, largest + 1):
        with pytest.raises(ConfigError, match=f"--{field} must be in \\[0, {largest}\\] pixels .*got {bad}"):
            Recipe(**{field: bad}).validate()
    Recipe(**{field: largest}).validate()
    assert recipe_from_flags(parsed(["train", f"--{field}", str(flag_value)])) == Recipe(**{field: flag_value})


def test_a_whitened_stem_with_a_warm_start_is_refused() -> None:
    with pytest.raises(ConfigError, match="--whiten-stem sets a fresh encoder's first layer"):
        Recipe(whiten_stem=True, init_from="default").validate()


@pytest.mark.parametrize(("changes", "message"), [
    ({"low_res_epochs": 5}, "--low-res-epochs must be in \\[0, --epochs\\), got 5 of 5"),
    ({"low_res_epochs": -1}, "--low-res-epochs must be in"),
    ({"low_res_epochs": 2, "low_res_size": 32}, "--low-res-size must be in \\[8, 32\\)"),
    ({"low_res_epochs": 2, "low_res_size": 4}, "--low-res-size must be in"),
])
def test_bad_low_resolution_settings_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Recipe(epochs=5, **changes).validate()
    Recipe(epochs=5, low_res_size=4).validate()  # the size of no low-resolution epoch is never read


def test_a_negative_val_every_is_refused() -> None:
    with pytest.raises(ConfigError, match="--val-every must be >= 0"):
        Recipe(val_every=-1).validate()
