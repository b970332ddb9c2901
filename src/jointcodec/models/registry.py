"""Named presets (timm-style): a preset is plain data; ``create_model`` builds it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

from torch import nn

from jointcodec.errors import ConfigError
from jointcodec.models.classifiers import LatentResNet, ReceiverEnsemble
from jointcodec.models.context import ChannelContextModel, CheckerboardContextModel, ContextModel3D
from jointcodec.models.encoders import CifarEncoder, ImageNetEncoder
from jointcodec.models.joint import JointModel
from jointcodec.models.quantizer import LearnedQuantizer


@dataclass(frozen=True)
class Preset:
    """Everything needed to rebuild a model; saved verbatim in every checkpoint's config."""

    name: str
    encoder: str  # key into ENCODERS
    encoder_args: dict = field(default_factory=dict)
    classifier_args: dict = field(default_factory=dict)
    context_args: dict = field(default_factory=dict)
    image_size: int = 32
    sigma: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


ENCODERS: dict[str, Callable[..., nn.Module]] = {"cifar": CifarEncoder, "imagenet": ImageNetEncoder}
# context_args["kind"] -> context model class (default "3d", the paper's 3D masked context).
CONTEXTS: dict[str, type[ContextModel3D]] = {
    "3d": ContextModel3D, "channel": ChannelContextModel, "checkerboard": CheckerboardContextModel}

PRESETS: dict[str, Preset] = {}


def register(preset: Preset) -> Preset:
    PRESETS[preset.name] = preset
    return preset


CIFAR_CLASSIFIER = {"widths": (128, 256), "blocks": (1, 1)}
CIFAR_CONTEXT = {"width": 16, "layers": 3}
# A receiver with two residual blocks at 8x8 (53.6 M MACs): compute moved from the device to the server.
CIFAR_DEEP_CLASSIFIER = {**CIFAR_CLASSIFIER, "blocks": (2, 1)}
# AE-V1 style: one residual block at 16x16 (48 channels), 16 x 8 x 8 latent.
CIFAR_V1_ENCODER = {"stem": 24, "width": 48, "blocks": 1, "latent_channels": 16}
register(Preset("cifar-v1", "cifar", encoder_args=CIFAR_V1_ENCODER,
                classifier_args=CIFAR_CLASSIFIER, context_args=CIFAR_CONTEXT))
# The shipped default: the AE-V1 encoder (14.4 M MACs, 60 k parameters) with the deep receiver; the encoder
# costs 27 % of the receiver's MACs. Chosen on validation accuracy from a sweep of encoder/receiver splits
# (docs/results.md, "Choosing the preset").
register(Preset("cifar-v1-deep", "cifar", encoder_args=CIFAR_V1_ENCODER,
                classifier_args=CIFAR_DEEP_CLASSIFIER, context_args=CIFAR_CONTEXT))
# AE-V2 style: wider, and a 3x3 (96) + 1x1 bottleneck before the latent.
register(Preset("cifar-v2", "cifar",
                encoder_args={"stem": 32, "width": 64, "blocks": 1, "latent_channels": 16, "bottleneck": 96},
                classifier_args=CIFAR_CLASSIFIER, context_args=CIFAR_CONTEXT))
# A light AE-V2 for the device: the same layout at half the width (3.7x fewer MACs than cifar-v2). Its latent
# and receiver are cifar-v2's, so `jointcodec distill-encoder` can train it for a cifar-v2 model's receiver.
CIFAR_LIGHT_ENCODER = {"stem": 16, "width": 32, "blocks": 1, "latent_channels": 16, "bottleneck": 64}
register(Preset("cifar-v3", "cifar", encoder_args=CIFAR_LIGHT_ENCODER,
                classifier_args=CIFAR_CLASSIFIER, context_args=CIFAR_CONTEXT))
# cifar-v3's light encoder with cifar-v1-deep's receiver, so `distill-encoder` can train it for the default.
register(Preset("cifar-v3-deep", "cifar", encoder_args=CIFAR_LIGHT_ENCODER,
                classifier_args=CIFAR_DEEP_CLASSIFIER, context_args=CIFAR_CONTEXT))
# AE-V1 with parallel-decodable contexts: one decoding step per latent channel ("channel"), or two with a
# checkerboard inside each channel ("checkerboard"); the 3D context needs 82 (16 x 8 x 8 latent). The
# checkerboard context is 8 wide: 1.4 M context MACs per image against the 3D context's 4.3 M (docs/results.md).
for _kind, _width in (("channel", CIFAR_CONTEXT["width"]), ("checkerboard", 8)):
    register(Preset(f"cifar-v1-{_kind}", "cifar",
                    encoder_args={"stem": 24, "width": 48, "blocks": 1, "latent_channels": 16},
                    classifier_args=CIFAR_CLASSIFIER,
                    context_args={**CIFAR_CONTEXT, "width": _width, "kind": _kind}))
# The paper's ImageNet encoders (docs/baselines.md), latent 32 x (H/8) x (W/8).
register(Preset("imagenet-v3", "imagenet", encoder_args={"latent_channels": 32},
                classifier_args={"widths": (256, 512), "blocks": (2, 2)}, image_size=224))
register(Preset("imagenet-v4", "imagenet", encoder_args={"latent_channels": 32, "block_channels": 128},
                classifier_args={"widths": (256, 512), "blocks": (2, 2)}, image_size=224))


# "PRESET-xN": PRESET with N receivers that vote on the same latent (``jointcodec add-receiver`` makes them).
ENSEMBLE_SUFFIX = re.compile(r"^(?P<base>.+)-x(?P<members>[1-9][0-9]*)$")


def get_preset(name: str) -> Preset:
    """The preset ``name``: a registered one, or ``BASE-xN`` (a registered preset with N voting receivers)."""
    if name in PRESETS:
        return PRESETS[name]
    match = ENSEMBLE_SUFFIX.match(name)
    if match and match["base"] in PRESETS:
        return with_receivers(PRESETS[match["base"]], int(match["members"]))
    raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(sorted(PRESETS))} "
                      "(or PRESET-xN: N voting receivers)")


def with_receivers(preset: Preset, members: int) -> Preset:
    """``preset`` with ``members`` receivers of its kind voting on the same latent (1: the preset itself)."""
    base = ENSEMBLE_SUFFIX.match(preset.name)
    base_name = base["base"] if base and preset.classifier_args.get("members") else preset.name
    if members == 1:
        args = {k: v for k, v in preset.classifier_args.items() if k != "members"}
        return replace(preset, name=base_name, classifier_args=args)
    return replace(preset, name=f"{base_name}-x{members}", classifier_args={**preset.classifier_args,
                                                                           "members": members})


def receiver_count(preset: Preset) -> int:
    return preset.classifier_args.get("members", 1)


def preset_from_dict(data: dict) -> Preset:
    """Rebuild a Preset saved by ``Preset.to_dict`` (lists back to tuples)."""
    def tuples(d: dict) -> dict:
        return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    return Preset(**{k: tuples(v) if isinstance(v, dict) else v for k, v in data.items()})


def create_model(preset: Preset | str, levels: int, num_classes: int) -> JointModel:
    """Build a JointModel from a preset (or its name) for ``levels`` quantizer centers."""
    if isinstance(preset, str):
        preset = get_preset(preset)
    if levels < 2:
        raise ConfigError(f"--levels must be at least 2, got {levels}")
    if num_classes < 2:
        raise ConfigError(f"need at least 2 classes, got {num_classes}")
    encoder = ENCODERS[preset.encoder](**preset.encoder_args)
    latent_channels = preset.encoder_args["latent_channels"]
    return JointModel(
        encoder=encoder,
        quantizer=LearnedQuantizer(levels, sigma=preset.sigma),
        context=create_context(levels, preset.context_args),
        classifier=create_receiver(latent_channels, num_classes, preset.classifier_args),
    )


def create_receiver(latent_channels: int, num_classes: int, classifier_args: dict) -> nn.Module:
    """The receiver a preset's ``classifier_args`` describe: one LatentResNet, or ``members`` of them voting."""
    args = dict(classifier_args)
    members = args.pop("members", 1)
    if members == 1:
        return LatentResNet(latent_channels, num_classes, **args)
    return ReceiverEnsemble([LatentResNet(latent_channels, num_classes, **args) for _ in range(members)])


def create_context(levels: int, context_args: dict) -> ContextModel3D:
    """The context model a preset's ``context_args`` names (``kind`` picks the class, default "3d")."""
    args = dict(context_args)
    kind = args.pop("kind", "3d")
    if kind not in CONTEXTS:
        raise ConfigError(f"unknown context kind {kind!r}; choose from {', '.join(sorted(CONTEXTS))}")
    return CONTEXTS[kind](levels, **args)
