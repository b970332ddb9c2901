"""Reconstruction quality: PSNR and MS-SSIM of decoded images (``evaluate --reconstruct``).

Both are measured on 8-bit images (the reconstruction rounded to uint8, as a PNG stores it), per image,
then averaged over images:

* ``psnr``: 10 log10(255^2 / MSE), the MSE over all pixels and the three RGB channels of one image;
* ``ms_ssim``: torchmetrics' MS-SSIM (on RGB, data range 255) with **3 scales instead of 5, a 7x7
  Gaussian window (sigma 1.5)** and the first three standard scale weights renormalised to sum to 1.
  The standard 5-scale, 11x11 form is undefined at 32x32: four halvings leave a 2x2 image, smaller than
  its window (torchmetrics and pytorch-msssim both refuse it). Three scales (32, 16, 8 px) with a 7x7
  window is the largest form torchmetrics accepts at 32x32; at 224x224 the same settings are used so
  that numbers stay comparable across presets. Negative contrast-structure terms are clipped to 0 before
  the weighted product (``normalize="relu"``, as pytorch-msssim does; otherwise a badly rebuilt tiny image
  gives NaN). Values are therefore not comparable with MS-SSIM figures of large-image codecs.
"""

from __future__ import annotations

import torch

from jointcodec.data import ImageSet
from jointcodec.models import JointModel
from jointcodec.reconstruction.decoders import reconstruct, to_uint8

MS_SSIM_KERNEL = 7
MS_SSIM_SIGMA = 1.5
_STANDARD_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003
MS_SSIM_BETAS = tuple(b / sum(_STANDARD_BETAS[:3]) for b in _STANDARD_BETAS[:3])
MS_SSIM_SETTINGS = {"scales": 3, "kernel_size": MS_SSIM_KERNEL, "sigma": MS_SSIM_SIGMA,
                    "betas": MS_SSIM_BETAS, "implementation": "torchmetrics"}


def psnr(reference: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of uint8 images (N, 3, H, W); identical images give +inf."""
    error = (reference.double() - test.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(255.0**2 / error)


def ms_ssim(reference: torch.Tensor, test: torch.Tensor, differentiable: bool = False) -> torch.Tensor:
    """Per-image MS-SSIM of uint8 (or, with ``differentiable``, float [0, 1]) images (N, 3, H, W).

    With ``differentiable`` the inputs are float images in [0, 1] and gradients flow (a training loss).
    """
    # Imported here: torchmetrics takes seconds to import, and only this function needs it.
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as _ms_ssim

    data_range = 1.0 if differentiable else 255.0
    if not differentiable:
        # float32, not float64: torch's float64 convolutions take a slow generic path on CPU (10x or more), and
        # float32 holds 8-bit values and their squares exactly.
        reference, test = reference.float(), test.float()
    return _ms_ssim(test, reference, kernel_size=MS_SSIM_KERNEL, sigma=MS_SSIM_SIGMA, betas=MS_SSIM_BETAS,
                    data_range=data_range, reduction="none", normalize="relu")


def image_quality(reference: torch.Tensor, test: torch.Tensor, batch_size: int = 1000) -> dict[str, float]:
    """Mean per-image PSNR and MS-SSIM of uint8 images, and PSNR of the mean MSE (``psnr_of_mean_mse``)."""
    psnrs, ssims, errors = [], [], []
    for i in range(0, len(reference), batch_size):
        ref, out = reference[i:i + batch_size], test[i:i + batch_size]
        psnrs.append(psnr(ref, out))
        ssims.append(ms_ssim(ref, out))
        errors.append((ref.double() - out.double()).pow(2).flatten(1).mean(1))
    mse = torch.cat(errors).mean().item()
    return {"psnr": torch.cat(psnrs).mean().item(), "ms_ssim": torch.cat(ssims).mean().item(),
            "psnr_of_mean_mse": 10 * torch.log10(torch.tensor(255.0**2 / mse)).item(), "mse": mse}


@torch.no_grad()
def evaluate_reconstruction(model: JointModel, decoder: torch.nn.Module, data: ImageSet, batch_size: int = 500,
                            symbols: torch.Tensor | None = None) -> dict:
    """PSNR / MS-SSIM of the decoder's images from the quantized latents of ``data``.

    ``symbols`` (N, C, h, w): use these (e.g. decoded from real ``.jcc`` files) instead of running the
    encoder; they are equal, since the coder is lossless (``evaluate --coded`` checks that).
    """
    from jointcodec.data import normalize

    model.eval()
    if symbols is None:
        symbols = torch.cat([model.quantizer.symbols(model.encoder(normalize(data.images[i:i + batch_size])))
                             for i in range(0, len(data), batch_size)])
    images = to_uint8(reconstruct(decoder, model.quantizer.dequantize(symbols), batch_size))
    quality = image_quality(data.images, images)
    return {**quality, "ms_ssim_settings": MS_SSIM_SETTINGS, "reconstructed_images": len(images)}


def format_reconstruction(r: dict) -> str:
    return (f"  reconstruction  PSNR {r['psnr']:.2f} dB (mean over images; {r['psnr_of_mean_mse']:.2f} dB of the "
            f"mean MSE), MS-SSIM {r['ms_ssim']:.4f} (3 scales, 7x7 window)")
