"""JointModel: encoder -> quantizer -> (context model for the rate, classifier for the label)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from jointcodec.models.context import ContextModel3D
from jointcodec.models.quantizer import LearnedQuantizer


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; multiplies the gradient by ``scale`` backward."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def scale_gradient(x: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    return _ScaleGradient.apply(x, scale)


@dataclass
class JointOutput:
    logits: torch.Tensor  # (N, classes)
    bits: torch.Tensor  # (N,) estimated code length of each image, in bits (PE cross-entropy)
    bpp: torch.Tensor  # (N,) bits / (input height x width)
    symbols: torch.Tensor  # (N, C, h, w) int64
    values: torch.Tensor | None = None  # (N, C, h, w) quantized latent (straight-through), the classifier's input
    latent: torch.Tensor | None = None  # (N, C, h, w) the encoder's output before quantization


class JointModel(nn.Module):
    """The whole system. ``encoder`` runs on the edge; ``context`` on both sides; ``classifier`` on the server."""

    def __init__(self, encoder: nn.Module, quantizer: LearnedQuantizer, context: ContextModel3D,
                 classifier: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.quantizer = quantizer
        self.context = context
        self.classifier = classifier

    @property
    def levels(self) -> int:
        return self.quantizer.levels

    def forward(self, images: torch.Tensor, rate_grad_to_encoder: float | torch.Tensor = 1.0,
                rate_images: int | None = None) -> JointOutput:
        """Classify and measure the estimated rate.

        ``rate_grad_to_encoder`` scales the rate's gradient into the encoder (it may be 0, or above 1; a
        scalar tensor on the device spares a GPU the wait for a Python number) while the context model
        always gets the plain gradient of the bit cost: the training loop uses it so that the PE keeps
        minimising bits whether or not the encoder's penalty is on.
        ``rate_images`` runs the context model on only the first images of the batch (training uses
        it: the PE is the costliest part per MAC on CPU, and the mean rate is estimated fine from a
        subset); ``bits``/``bpp`` then cover those images only.
        """
        z = self.encoder(images)
        q = self.quantizer(z)
        logits = self.classifier(q.values)
        z_rate = z[:rate_images] if rate_images else z
        z_rate = scale_gradient(z_rate, rate_grad_to_encoder)  # x 1.0 leaves a gradient exactly as it is
        q_rate = self.quantizer(z_rate, train_centers=False)
        bits = self.context.bits(self.context(q_rate.values), q_rate.one_hot)
        pixels = images.shape[-1] * images.shape[-2]
        return JointOutput(logits=logits, bits=bits, bpp=bits / pixels, symbols=q.symbols, values=q.values,
                           latent=z)
