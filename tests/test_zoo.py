"""The zoo: every shipped model has a card whose figures are those of its results file, loads by every name it
lists, and `jointcodec zoo` prints them; an unknown name is one clear error that lists the choices."""

from __future__ import annotations

import importlib.util
import json
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
import torch

from jointcodec import zoo
from jointcodec.checkpoint import load_model, read_config, resolve_weights
from jointcodec.cli.main import build_parser, main, recipe_from_flags
from jointcodec.errors import CheckpointError
from jointcodec.evaluation.complexity import count_macs, count_params
from jointcodec.models import create_model
from jointcodec.training.hyperparameters import Recipe

REPO = Path(__file__).resolve().parents[1]
CARDS = zoo.cards()


def test_the_zoo_lists_the_default_and_every_name_resolves() -> None:
    assert CARDS and zoo.card("default").name == "cifar10-0.8"
    assert set(zoo.MODELS) == {name for card in CARDS for name in card.names}
    for name, folder in zoo.MODELS.items():
        assert resolve_weights(name) == zoo.WEIGHTS_DIR / folder / "model.safetensors"


@pytest.mark.parametrize("card", CARDS, ids=lambda card: card.name)
def test_a_cards_figures_are_its_results_files(card: zoo.ModelCard) -> None:
    # The figures are copied from a real run's output, under the same keys; the command that wrote it names the model.
    source = json.loads((REPO / card.source).read_text())
    assert card.measured == {key: source[key] for key in card.measured}
    assert {"top1_coded", "bpp_payload", "encoder_params", "encoder_macs"} <= card.measured.keys()
    assert source["split"] == "test" and source["dataset"] == card.dataset and source["levels"] == card.levels
    assert card.source in card.measured_by and "--coded" in card.measured_by
    assert card.train_command.startswith("jointcodec train ")
    for flag, value in (("--preset", card.preset), ("--dataset", card.dataset), ("--levels", card.levels)):
        assert f"{flag} {value} " in card.train_command


@pytest.mark.parametrize("card", CARDS, ids=lambda card: card.name)
def test_a_cards_command_is_the_recipe_its_weights_record(card: zoo.ModelCard) -> None:
    # The last step of the card's command (the one that made the weights), parsed as `jointcodec train` parses it.
    last_step = zoo.last_train_step(card.train_command)[1:]
    from_command = recipe_from_flags(build_parser(last_step).parse_args(last_step))
    recorded = Recipe.from_record(read_config(resolve_weights(card.name))["train"])
    assert from_command == recorded


@pytest.mark.parametrize("card", CARDS, ids=lambda card: card.name)
def test_every_shipped_model_loads_by_each_name_and_is_what_its_card_says(card: zoo.ModelCard) -> None:
    for name in card.names:
        model, config = load_model(name)
        assert (config["preset"]["name"], config["levels"], config["dataset"]) == (card.preset, card.levels,
                                                                                  card.dataset)
    size = config["preset"]["image_size"]
    assert count_params(model.encoder) == card.measured["encoder_params"]
    assert count_macs(model.encoder, torch.zeros(1, 3, size, size)) == card.measured["encoder_macs"]


def test_the_package_ships_every_file_of_the_zoo() -> None:
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = [f.relative_to(zoo.WEIGHTS_DIR.parent).as_posix() for f in zoo.WEIGHTS_DIR.rglob("*") if f.is_file()]
    assert any(name.endswith(zoo.CARD) for name in shipped)
    assert [name for name in shipped if not any(fnmatch(name, p) for p in patterns["jointcodec.zoo"])] == []


def test_the_zoo_command_prints_the_table_and_json(capsys) -> None:
    assert main(["zoo"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["name", "(--checkpoint)"] and len(table) == len(CARDS) + 2
    default = zoo.card("default")
    row = next(line for line in table if line.startswith("default = "))
    figures = default.measured  # as printed: 4 decimals of bpp, 2 of top-1, the encoder's size
    assert row.split()[3:11] == ["cifar10", "2", f"{figures['bpp_payload']:.4f}", f"{figures['top1_coded']:.2f}", "%",
                                 f"{figures['encoder_params']:,}", f"{figures['encoder_macs'] / 1e6:.1f}", "M"]
    assert row.endswith(default.train_command)
    assert main(["zoo", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [card.to_dict() for card in CARDS]


def test_an_unknown_name_lists_the_choices(capsys) -> None:
    with pytest.raises(CheckpointError, match="no shipped model 'cifar10-0.1' \\(shipped: .*default"):
        zoo.card("cifar10-0.1")
    assert main(["evaluate", "--checkpoint", "cifar10-0.1"]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "no checkpoint at cifar10-0.1" in error
    assert all(name in error for name in zoo.MODELS)


def test_the_whole_zoo_fits_the_package_budget() -> None:
    # Every shipped model travels inside the wheel: the zoo together stays at most 25 MB.
    total = sum(f.stat().st_size for f in zoo.WEIGHTS_DIR.rglob("*") if f.is_file())
    assert total <= 25 * 10**6, f"the zoo is {total:,} bytes"


def test_an_fp16_receiver_halves_the_file_and_leaves_the_bits_alone(tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    from jointcodec.api import compress

    model = create_model("cifar-v1-deep", levels=2, num_classes=10).eval()  # fp32 weights (the zoo's are fp16)
    state = model.state_dict()
    half = zoo.half_receiver(state)
    assert {k for k, v in half.items() if v.dtype == torch.float16} == {
        k for k, v in state.items() if k.startswith("classifier.") and v.dim() >= 2}
    assert all(torch.equal(half[k], v) for k, v in state.items() if not k.startswith("classifier."))
    save_file(state, str(tmp_path / "fp32.safetensors"))
    save_file(half, str(tmp_path / "fp16.safetensors"))
    ratio = (tmp_path / "fp16.safetensors").stat().st_size / (tmp_path / "fp32.safetensors").stat().st_size
    assert ratio < 0.55
    # Loaded back (cast to fp32 by load_state_dict), the model writes the same bytes and nearly the same logits.
    reloaded = create_model("cifar-v1-deep", levels=2, num_classes=10).eval()
    reloaded.load_state_dict(load_file(str(tmp_path / "fp16.safetensors")))
    assert all(v.dtype != torch.float16 for v in reloaded.state_dict().values())
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert compress(reloaded, images) == compress(model, images)
    with torch.no_grad():
        fp16_logits, fp32_logits = reloaded(images.float() / 255).logits, model(images.float() / 255).logits
    assert 0 < (fp16_logits - fp32_logits).abs().max() < 0.05


def test_the_zoo_tool_records_the_cards_paths_not_the_training_machines() -> None:
    spec = importlib.util.spec_from_file_location("add_to_zoo", REPO / "tools" / "add_to_zoo.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    config = {"train": {"init_from": "/home/me/a", "teacher": "/home/me/t"}, "run": {"out": "/home/me/o"}}
    tool.portable_paths(config, "jointcodec train --init-from cifar10-0.4 --out runs/s1 && "
                                "jointcodec train --init-from runs/s1 --teacher runs/receivers/c --out runs/m")
    assert config == {"train": {"init_from": "runs/s1", "teacher": "runs/receivers/c"}, "run": {"out": "runs/m"}}


@pytest.mark.parametrize("card", CARDS, ids=lambda card: card.name)
def test_a_shipped_config_names_the_paths_of_its_cards_last_step(card: zoo.ModelCard) -> None:
    # Where a model was warm-started and distilled from, as the card's command names them: a reader can follow
    # the chain from the card, and no training machine's directory leaks into the package.
    config = read_config(resolve_weights(card.name))
    last_step = card.train_command.split("&&")[-1].split()
    named = dict(zip(last_step, last_step[1:], strict=False))
    recorded = {"--init-from": config["train"].get("init_from"), "--teacher": config["train"].get("teacher")}
    for flag, value in recorded.items():
        assert value == named.get(flag), (flag, value)
