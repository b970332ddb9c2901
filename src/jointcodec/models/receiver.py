"""The receiver of a classic codec: jointcodec's own server network, given an image stem.

For a fair comparison (the measurement rules, docs/baselines.md) the classifier of decoded images is the same network
as jointcodec's: the preset's encoder architecture, here without the quantizer, runs on the decoded image
and the preset's LatentResNet classifies its output. It is trained by the same recipe as the joint model
(``jointcodec.training.recipe``); its forward returns a JointOutput with zero rate, so the recipe's rate
term vanishes.
"""

from __future__ import annotations

import torch
from torch import nn

from jointcodec.models.classifiers import LatentResNet
from jointcodec.models.joint import JointOutput
from jointcodec.models.registry import ENCODERS, Preset, get_preset


class ImageClassifier(nn.Module):
    """encoder (no quantizer) -> classifier, on images decoded by a classic codec."""

    def __init__(self, encoder: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.classifier = classifier

    def forward(self, images: torch.Tensor, rate_grad_to_encoder: float | torch.Tensor = 1.0,
                rate_images: int | None = None) -> JointOutput:
        """Logits; ``bits`` and ``bpp`` are zero (the codec's rate is fixed before training) and there are
        no symbols. The rate arguments are accepted, and ignored, so the recipe drives it unchanged."""
        logits = self.classifier(self.encoder(images))
        zeros = logits.new_zeros(len(images)).float()
        return JointOutput(logits=logits, bits=zeros, bpp=zeros,
                           symbols=torch.empty(len(images), 0, dtype=torch.long, device=logits.device))


def create_image_classifier(preset: Preset | str, num_classes: int) -> ImageClassifier:
    if isinstance(preset, str):
        preset = get_preset(preset)
    encoder = ENCODERS[preset.encoder](**preset.encoder_args)
    classifier = LatentResNet(preset.encoder_args["latent_channels"], num_classes, **preset.classifier_args)
    return ImageClassifier(encoder, classifier)
