"""What ``jointcodec bench`` measures: each thing a device could run instead, as a :class:`Candidate`.

jointcodec's encoder (alone and with entropy coding), JPEG 4:2:0 and WebP through the project's codec wrappers,
CompressAI's two Ballé et al. models, and two on-device classifiers (jointcodec's whole model, ResNet-18).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from jointcodec.evaluation.complexity import count_macs

if TYPE_CHECKING:
    from jointcodec.models import JointModel


@dataclass
class Candidate:
    """One thing a device could run: ``run(images)`` on uint8 images (N, 3, H, W)."""

    name: str
    group: str  # "jointcodec", "classic codec", "learned codec", "on-device classifier"
    stage: str  # "transform": the network alone; "full": to the bytes (or label) that leave the device
    run: Callable[[torch.Tensor], object]
    modules: list[nn.Module] = field(default_factory=list)  # what the device must hold
    macs: int | None = None
    note: str = ""
    threaded_batches: bool = False  # run a batch as parallel single-image calls (Pillow: one call, one thread)
    set_threads: Callable[[int], None] | None = None  # for runtimes torch's thread count does not reach
    fp32_macs: bool = True  # False: integer MACs, which the fp32 energy-per-MAC estimate does not describe


class _Call(nn.Module):
    """A function as a module, so ``count_macs`` can count it."""

    def __init__(self, fn: Callable[[torch.Tensor], object]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def macs_of(fn: Callable[[torch.Tensor], object], example: torch.Tensor) -> int:
    """MACs of one call of ``fn`` on ``example`` (a pipeline of several modules, counted as one)."""
    return count_macs(_Call(fn), example)


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255.0


def jointcodec_macs(model: JointModel, image_size: int) -> tuple[int, int, int]:
    """MACs per image of the encoder, the context model and the classifier."""
    from jointcodec.data import normalize

    example = normalize(torch.zeros(1, 3, image_size, image_size, dtype=torch.uint8))
    with torch.no_grad():
        latent = model.quantizer.dequantize(model.quantizer.symbols(model.encoder(example)))
    return count_macs(model.encoder, example), count_macs(model.context, latent), count_macs(model.classifier, latent)


def jointcodec_candidates(model: JointModel, image_size: int) -> list[Candidate]:
    """jointcodec's encoder alone, encoder + entropy coding (-> ``.jcc`` bytes), and the whole model (-> label)."""
    from jointcodec.api import Codec
    from jointcodec.data import normalize

    model.eval()
    codec = Codec(model)
    encoder_macs, context_macs, classifier_macs = jointcodec_macs(model, image_size)

    @torch.no_grad()
    def encoder(images):
        return model.quantizer.symbols(model.encoder(normalize(images)))

    @torch.no_grad()
    def on_device(images):
        return model.classifier(model.quantizer.dequantize(encoder(images))).argmax(1)

    return [
        Candidate("jointcodec encoder", "jointcodec", "transform", encoder, [model.encoder], encoder_macs,
                  "encoder + quantizer -> latent symbols"),
        Candidate("jointcodec encoder + entropy coding", "jointcodec", "full", codec.compress,
                  [model.encoder, model.quantizer, model.context], encoder_macs + context_macs,
                  "-> .jcc bytes (fixed-point context model + range coder); MACs include the context model"),
        Candidate("jointcodec encoder + classifier on device", "on-device classifier", "full", on_device,
                  [model.encoder, model.quantizer, model.classifier], encoder_macs + classifier_macs,
                  "the whole jointcodec model on the device, -> label"),
    ]


class _EdgeClient:
    """The shipped edge client (``jointcodec.edge.EdgeEncoder``) at one precision, with one ONNX Runtime session
    per thread count: the bench sets the count (``Candidate.set_threads``) before it times a candidate."""

    def __init__(self, export_dir: Path, precision: str) -> None:
        self.export_dir, self.precision = export_dir, precision
        self.threads = 1
        self.clients: dict[int, object] = {}

    def set_threads(self, threads: int) -> None:
        self.threads = threads

    def client(self):
        from jointcodec.edge import EdgeEncoder

        if self.threads not in self.clients:
            self.clients[self.threads] = EdgeEncoder(self.export_dir, threads=self.threads, precision=self.precision)
        return self.clients[self.threads]

    def symbols(self, images: torch.Tensor):
        return self.client().symbols(images.numpy())

    def compress(self, images: torch.Tensor) -> bytes:
        return self.client().compress(images.numpy())


def client_candidates(export_dir: Path, encoder_macs: int, context_macs: int) -> list[Candidate]:
    """The torch-free edge client as shipped: ONNX Runtime encoder alone, and encoder + entropy coding (numpy
    integer context model, constriction) -> ``.jcc`` bytes; fp32, and int8 where the export has that encoder."""
    from jointcodec.edge.client import MANIFEST, PRECISIONS

    manifest = json.loads((export_dir / MANIFEST).read_text())
    out = []
    for precision, key in PRECISIONS.items():
        if key not in manifest["files"]:
            continue
        edge = _EdgeClient(export_dir, precision)
        encoder_file = manifest["files"][key]["file"]
        size = (export_dir / encoder_file).stat().st_size
        integer_size = (export_dir / manifest["files"]["context_integer"]["file"]).stat().st_size
        common = {"group": f"jointcodec client {precision}", "set_threads": edge.set_threads,
                  "fp32_macs": precision == "fp32"}
        out.append(Candidate(f"jointcodec client encoder ({precision})", stage="transform", run=edge.symbols,
                             macs=encoder_macs, note=f"{encoder_file} ({size / 1024:.1f} KiB) in ONNX Runtime "
                                                     "-> latent symbols", **common))
        out.append(Candidate(f"jointcodec client encoder + entropy coding ({precision})", stage="full",
                             run=edge.compress, macs=encoder_macs + context_macs,
                             note=f"-> .jcc bytes: {encoder_file} + {manifest['files']['context_integer']['file']} "
                                  f"({(size + integer_size) / 1024:.1f} KiB), numpy integer context model, "
                                  "constriction; no torch", **common))
    return out


def classic_candidates(jpeg_quality: int, webp_quality: int) -> list[Candidate]:
    """JPEG 4:2:0 and WebP as the project's codec wrappers run them (``jointcodec.codecs``: baseline JPEG with the
    standard Huffman tables, WebP method 6), image -> file bytes."""
    from jointcodec.codecs import get_codec

    out = []
    for name, quality in (("jpeg420", jpeg_quality), ("webp", webp_quality)):
        wrapper = get_codec(name)

        def encode(images: torch.Tensor, wrapper=wrapper, quality=quality) -> list[bytes]:
            return [wrapper.encode(image, quality) for image in images.permute(0, 2, 3, 1).numpy()]

        label = f"JPEG 4:2:0 q={quality}" if name == "jpeg420" else f"WebP q={quality} (method 6)"
        out.append(Candidate(label, "classic codec", "full", encode, note=f"{wrapper.library()}, image -> file bytes",
                             threaded_batches=True))
    return out


def compressai_candidates(quality: int, image_size: int) -> tuple[list[Candidate], str | None]:
    """CompressAI's two Ballé et al. models, untrained (the timings do not depend on the weights' values)."""
    try:
        import compressai  # noqa: F401
        from compressai.zoo import bmshj2018_factorized, bmshj2018_hyperprior
    except Exception as err:  # ImportError, or a dependency of compressai that fails on import
        return [], f"compressai not usable here ({type(err).__name__}: {err})"
    example = torch.zeros(1, 3, image_size, image_size)
    out = []
    # compress() needs the input to be a multiple of the total downsampling (16, and 64 with the hyperprior, whose
    # hyper-synthesis must land on y's grid); like CompressAI's own codec example, pad (replicate) up to it.
    for label, build, edge_parts, multiple in (
            ("bmshj2018-factorized", bmshj2018_factorized, ("g_a", "entropy_bottleneck"), 16),
            ("bmshj2018-hyperprior", bmshj2018_hyperprior,
             ("g_a", "h_a", "h_s", "entropy_bottleneck", "gaussian_conditional"), 64)):
        net = build(quality=quality, pretrained=False).eval()
        net.update(force=True)  # the CDF tables compress() codes with
        g_a = net.g_a
        pad = (-image_size) % multiple

        def padded(x: torch.Tensor, pad: int = pad) -> torch.Tensor:
            return torch.nn.functional.pad(x, (0, pad, 0, pad), mode="replicate") if pad else x

        transform = torch.no_grad()(lambda images, g_a=g_a: g_a(_to_unit(images)))
        full = torch.no_grad()(lambda images, net=net, padded=padded: net.compress(padded(_to_unit(images))))
        modules = [getattr(net, part) for part in edge_parts]
        note = "g_a" + (" + h_a + h_s" if "h_a" in edge_parts else "") + " + rANS -> bytes"
        if pad:
            side = image_size + pad
            note += f"; input padded to {side}x{side} (compress() needs a multiple of {multiple})"
        out.append(Candidate(f"{label} q={quality} g_a", "learned codec", "transform", transform, [g_a],
                             count_macs(g_a, example), f"analysis transform alone, on the {image_size}x{image_size} "
                                                       "input (no padding)"))
        out.append(Candidate(f"{label} q={quality} compress", "learned codec", "full", full, modules,
                             macs_of(lambda x, net=net, padded=padded: net.compress(padded(x)), example), note))
    return out, None


def resnet18_candidate(image_size: int, num_classes: int) -> Candidate:
    """torchvision's ResNet-18; at 32x32 with the usual CIFAR stem (3x3 conv, no max-pool)."""
    from torchvision.models import resnet18

    net = resnet18(num_classes=num_classes).eval()
    note = "torchvision ResNet-18, -> label"
    if image_size <= 64:
        net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
        note = "torchvision ResNet-18 with the CIFAR stem (3x3 conv, no max-pool), -> label"
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    @torch.no_grad()
    def run(images):
        return net((_to_unit(images) - mean) / std).argmax(1)

    return Candidate("ResNet-18 on device", "on-device classifier", "full", run, [net],
                     count_macs(net, torch.zeros(1, 3, image_size, image_size)), note)


def all_candidates(model: JointModel, image_size: int, num_classes: int, jpeg_quality: int, webp_quality: int,
                   compressai_quality: int, edge_export: Path | None = None) -> tuple[list[Candidate], str | None]:
    """Every candidate in report order (the edge client's rows where ``edge_export`` is given), and why
    CompressAI's are missing (None when present)."""
    candidates = jointcodec_candidates(model, image_size)
    if edge_export is not None:
        encoder_macs, context_macs, _ = jointcodec_macs(model, image_size)
        candidates += client_candidates(edge_export, encoder_macs, context_macs)
    candidates += classic_candidates(jpeg_quality, webp_quality)
    learned, compressai_missing = compressai_candidates(compressai_quality, image_size)
    candidates += learned
    candidates.append(resnet18_candidate(image_size, num_classes))
    return candidates, compressai_missing
