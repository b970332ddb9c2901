"""Voting receivers and `jointcodec add-receiver`: the server grows, the codec and its bits stay the model's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from jointcodec import ConfigError
from jointcodec.api import classify, compress, decompress
from jointcodec.checkpoint import load_model
from jointcodec.cli.main import main
from jointcodec.data import load_split
from jointcodec.entropy.fixedpoint import model_fingerprint
from jointcodec.evaluation import evaluate_model
from jointcodec.models import create_model, get_preset, receiver_count, with_receivers
from jointcodec.models.classifiers import ReceiverEnsemble
from jointcodec.training.ensemble import AddReceiverConfig, add_receiver, grown_state, member_top1


def test_an_ensemble_answers_the_log_of_its_members_mean_probability() -> None:
    members = [torch.nn.Linear(4, 3) for _ in range(3)]
    ensemble = ReceiverEnsemble(members)
    z = torch.randn(5, 4)
    mean = torch.stack([m(z).softmax(1) for m in members]).mean(0)
    assert torch.allclose(ensemble(z), mean.log(), atol=1e-6)
    ensemble.solo = 1  # one member answers alone
    assert torch.equal(ensemble(z), members[1](z))


def test_a_preset_named_with_xN_has_N_voting_receivers() -> None:
    grown = get_preset("cifar-v1-deep-x3")
    assert receiver_count(grown) == 3 and grown.classifier_args["widths"] == (128, 256)
    assert with_receivers(grown, 1) == get_preset("cifar-v1-deep")
    assert with_receivers(get_preset("cifar-v1-deep-x2"), 3) == grown
    model = create_model(grown, levels=2, num_classes=10)
    assert isinstance(model.classifier, ReceiverEnsemble) and len(model.classifier.members) == 3
    with pytest.raises(ConfigError, match="PRESET-xN"):
        get_preset("no-such-preset-x2")


def test_a_single_receiver_becomes_the_first_member() -> None:
    state = {"encoder.w": 1, "classifier.fc.weight": 2}
    assert grown_state(state, 1) == {"encoder.w": 1, "classifier.members.0.fc.weight": 2}
    assert grown_state({"classifier.members.1.fc.weight": 3}, 2) == {"classifier.members.1.fc.weight": 3}


def test_add_receiver_trains_only_the_new_member_and_keeps_the_bits(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "grown"
    base, _ = load_model("default")
    config = AddReceiverConfig(checkpoint="default", out=str(out), epochs=1, batch_size=100, train_subset=600,
                               data_dir=str(data_dir), test_at_end=False, progress=False)
    add_receiver(config)
    grown, saved = load_model(out)
    assert saved["preset"]["name"] == "cifar-v1-deep-x2" and saved["add_receiver"]["checkpoint"] == "default"
    assert model_fingerprint(grown) == model_fingerprint(base)
    before = grown_state(base.state_dict(), 1)
    after = grown.state_dict()
    for name, value in before.items():  # the codec and the old receiver, exactly as they were
        assert torch.equal(after[name], value), name
    assert set(after) - set(before) == {n for n in after if n.startswith("classifier.members.1.")}

    images = load_split("cifar10", "test", data_dir).images[:64]
    stream = compress(grown, images)
    assert stream == compress(base, images)  # the same bytes: deployed encoders need no update
    values = decompress(grown, stream).values
    with torch.no_grad():
        votes = torch.stack([member(values).softmax(1) for member in grown.classifier.members]).mean(0)
    assert torch.equal(classify(grown, stream), votes.argmax(1))


def test_each_members_top1_from_one_encoder_pass_is_its_solo_top1(data_dir: Path) -> None:
    torch.manual_seed(0)
    model = create_model(get_preset("cifar-v1-deep-x2"), levels=2, num_classes=10).eval()
    data = load_split("cifar10", "test", data_dir).subset(slice(0, 300))
    solo = []
    for index in range(2):
        model.classifier.solo = index
        solo.append(evaluate_model(model, data)["top1"])
    model.classifier.solo = None
    assert member_top1(model, data, "cpu") == pytest.approx(solo)


def test_add_receiver_refuses_a_missing_checkpoint(tmp_path: Path, capsys) -> None:
    code = main(["add-receiver", "--checkpoint", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")])
    assert code == 1 and "error" in capsys.readouterr().err
