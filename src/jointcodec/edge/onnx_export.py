"""``jointcodec export --onnx DIR``: the edge side as files a device runs without torch.

DIR receives

* ``encoder.onnx``: uint8 images (N, 3, S, S) -> ``symbols`` (N, C, h, w) int64 and ``latent`` (N, C, h, w)
  float32; normalisation, encoder and the quantizer's nearest-center choice are all inside the graph;
* ``context_int.npz``: the exact integer context model (``IntegerContext.to_npz``) with its decoding order for
  the model's latent shape: the edge client's coder uses this one;
* ``context.onnx``: the float context model (symbols -> logits (N, C, h, w, L)), for reference and inspection
  only. A float network's last bits depend on the runtime, and the range coder needs the very integers the
  server computes, so the coder never uses it (``docs/deployment.md``);
* ``edge.json``: fingerprint, preset, levels, centers, shapes, classes, file checksums, and the export-time check
  of ONNX against torch.

``jointcodec.edge.client`` reads DIR with numpy, onnxruntime and constriction only.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from jointcodec.bitstream import FORMAT_VERSION
from jointcodec.checkpoint import MissingPart, load_model
from jointcodec.data.augment import MEAN, STD
from jointcodec.edge.client import CONTEXT_FILE, EDGE_FORMAT, ENCODER_FILE, INT8_ENCODER_FILE, INTEGER_FILE, MANIFEST
from jointcodec.entropy import FixedPointContext
from jointcodec.errors import ConfigError
from jointcodec.models import JointModel
from jointcodec.utils import atomic_write, atomic_write_json

CALIBRATION_IMAGES = 256  # training images that set the int8 encoder's activation ranges


class EdgeEncoderGraph(nn.Module):
    """uint8 images -> (symbols, latent): normalisation + encoder + nearest center, as one graph."""

    def __init__(self, model: JointModel) -> None:
        super().__init__()
        self.encoder = model.encoder
        self.register_buffer("centers", model.quantizer.centers.detach().clone())
        self.register_buffer("mean", MEAN.clone())
        self.register_buffer("std", STD.clone())

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.encoder((images.float() / 255.0 - self.mean) / self.std)
        # The quantizer's own rule (LearnedQuantizer.symbols): argmin of the squared distance, ties to the lower index.
        symbols = torch.argmin((latent.unsqueeze(-1) - self.centers) ** 2, dim=-1)
        return symbols, latent


class ContextGraph(nn.Module):
    """Symbols -> float context-model logits (N, C, h, w, L): the PE as trained, for reference."""

    def __init__(self, model: JointModel) -> None:
        super().__init__()
        self.context = model.context
        self.register_buffer("centers", model.quantizer.centers.detach().clone())

    def forward(self, symbols: torch.Tensor) -> torch.Tensor:
        return self.context(self.centers[symbols])


def _export(module: nn.Module, example: torch.Tensor, inputs: list[str], outputs: list[str]) -> bytes:
    """One ONNX model (dynamo exporter, dynamic batch axis) as bytes; the exporter's chatter is silenced."""
    import onnx

    batch = torch.export.Dim("batch", min=1)
    with contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(module.eval(), (example,), None, dynamo=True, input_names=inputs,
                                    output_names=outputs, dynamic_shapes=({0: batch},), optimize=True,
                                    verbose=False)
    proto = program.model_proto
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@torch.no_grad()
def export_onnx(checkpoint: str | Path, out_dir: str | Path, check_images: int = 64, int8: bool = False,
                calibration_images: int = CALIBRATION_IMAGES, data_dir: str | Path | None = None) -> dict:
    """Write the edge export into ``out_dir`` and return its manifest (``edge.json``).

    ``checkpoint``: a full checkpoint, a shipped model name, or the edge part of ``export --split``.
    ``check_images`` random images go through ONNX Runtime and torch at export time; their agreement is
    recorded in the manifest (the full CIFAR-10 figure comes from ``experiments/edge_accuracy.py``).
    ``int8``: also write ``encoder_int8.onnx``, calibrated on ``calibration_images`` training images of the
    model's data set (found in ``data_dir``, default $JOINTCODEC_DATA).
    """
    model, config = load_model(checkpoint)
    calibration = training_images(config, calibration_images, data_dir) if int8 else None
    return export_model(model, config, out_dir, check_images, calibration)


def training_images(config: dict, count: int, data_dir: str | Path | None = None) -> np.ndarray:
    """``count`` training images (uint8 (N, 3, S, S), a seeded random subset) of the model's data set."""
    from jointcodec.data import load_split

    if count < 1:
        raise ConfigError(f"--calibration-images must be at least 1, got {count}")
    if not config.get("dataset"):
        raise ConfigError("the int8 encoder is calibrated on the model's training images, but this checkpoint "
                          "names no data set")
    data = load_split(config["dataset"], "train", data_dir, False, int(config["preset"]["image_size"]))
    chosen = np.sort(np.random.default_rng(0).choice(len(data), min(count, len(data)), replace=False))
    return np.ascontiguousarray(data.images[torch.from_numpy(chosen)].numpy())


@torch.no_grad()
def export_model(model: JointModel, config: dict, out_dir: str | Path, check_images: int = 64,
                 calibration: np.ndarray | None = None) -> dict:
    """``export_onnx`` for a loaded model and its config; ``calibration``: training images (uint8 (N, 3, S, S))
    for the int8 encoder, None for none."""
    import onnxruntime as ort

    if isinstance(model.encoder, MissingPart):
        raise ConfigError("export --onnx needs the encoder: give a full checkpoint or the edge part, "
                          "not the server part")
    model = model.eval()
    size = int(config["preset"]["image_size"])
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (max(2, check_images), 3, size, size), dtype=torch.uint8, generator=generator)
    encoder_graph, context_graph = EdgeEncoderGraph(model).eval(), ContextGraph(model).eval()
    symbols, latent = encoder_graph(images)
    latent_shape = tuple(int(v) for v in symbols.shape[1:])
    fixed = FixedPointContext(model.context, model.quantizer.centers)
    fixed.coding_order(latent_shape)  # checks the order for this shape before anything is written

    encoder_bytes = _export(encoder_graph, images[:2], ["images"], ["symbols", "latent"])
    context_bytes = _export(context_graph, symbols[:2], ["symbols"], ["logits"])
    integer_bytes = fixed.to_npz([latent_shape])

    # Export-time check: the exported graphs against torch on the check images.
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    encoder_session = ort.InferenceSession(encoder_bytes, options, providers=["CPUExecutionProvider"])
    onnx_symbols, onnx_latent = encoder_session.run(None, {"images": images.numpy()})
    context_session = ort.InferenceSession(context_bytes, options, providers=["CPUExecutionProvider"])
    (onnx_logits,) = context_session.run(None, {"symbols": symbols.numpy()})
    torch_logits = context_graph(symbols).numpy()

    files = {"encoder": (ENCODER_FILE, encoder_bytes), "context_onnx": (CONTEXT_FILE, context_bytes),
             "context_integer": (INTEGER_FILE, integer_bytes)}
    int8 = None
    if calibration is not None:
        int8_bytes, int8 = quantize_encoder(encoder_bytes, calibration)
        files["encoder_int8"] = (INT8_ENCODER_FILE, int8_bytes)
        int8_session = ort.InferenceSession(int8_bytes, options, providers=["CPUExecutionProvider"])
        int8["symbol_agreement_with_fp32_on_calibration_images"] = float(np.mean(
            int8_session.run(["symbols"], {"images": calibration})[0]
            == encoder_session.run(["symbols"], {"images": calibration})[0]))
    out_dir = Path(out_dir)
    for name, data in files.values():
        atomic_write(out_dir / name, lambda tmp, d=data: Path(tmp).write_bytes(d))
    manifest = {
        "format": EDGE_FORMAT,
        "fingerprint": fixed.fingerprint.hex(),
        "container_version": FORMAT_VERSION,
        "preset": config["preset"]["name"],
        "levels": int(config["levels"]),
        "centers": [float(c) for c in model.quantizer.centers.detach().cpu().tolist()],
        "image_size": size,
        "latent_shape": list(latent_shape),
        "context_kind": fixed.kind,
        "classes": config.get("classes"),
        "input": {"dtype": "uint8", "layout": "NCHW", "channels": "RGB",
                  "normalization": "inside encoder.onnx: (x / 255 - mean) / std",
                  "mean": MEAN.flatten().tolist(), "std": STD.flatten().tolist()},
        "files": {key: {"file": name, "sha256": _sha256(data)} for key, (name, data) in files.items()},
        "integer_digest": fixed.digest(),
        "export_check": {
            "images": len(images), "kind": "uniform random uint8 images",
            "symbol_agreement": float((onnx_symbols == symbols.numpy()).mean()),
            "latent_max_abs_diff": float(np.abs(onnx_latent - latent.numpy()).max()),
            "context_logits_max_abs_diff": float(np.abs(onnx_logits - torch_logits).max()),
        },
        "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__},
    }
    if int8 is not None:
        manifest["int8"] = int8
    atomic_write_json(out_dir / MANIFEST, manifest)
    return manifest


def quantize_encoder(encoder: bytes, calibration: np.ndarray, batch_size: int = 64) -> tuple[bytes, dict]:
    """``encoder.onnx`` with its analysis transform quantized to int8, and what was done (for ``edge.json``).

    ONNX Runtime's post-training static quantization, QDQ format: uint8 activations, int8 weights per output
    channel with a 7-bit range (u8 x s8 products then cannot saturate the 16-bit sums of AVX2 kernels without VNNI,
    so every x86 CPU computes the same). Activation ranges: the min and max of each ``batch_size`` batch of
    ``calibration``, averaged over the batches (the plain extremes grow with the number of images and flipped more
    symbols). Left in float: the first convolution (it reads the normalised pixels; quantized, it flipped several
    times more symbols) and the quantizer's nearest-center choice after ``latent``, so the centers stay exact.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    proto = onnx.load_from_string(encoder)
    for i, node in enumerate(proto.graph.node):  # the quantizer leaves nodes out by name
        node.name = node.name or f"node{i}"
    graph = proto.graph
    float_nodes = [next(node.name for node in graph.node if node.op_type == "Conv"), *_downstream(graph, "latent")]

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(range(0, len(calibration), batch_size))

        def get_next(self) -> dict | None:
            start = next(self.batches, None)
            return None if start is None else {"images": calibration[start:start + batch_size]}

    with tempfile.TemporaryDirectory(prefix="jointcodec-int8.") as tmp:
        source, target = Path(tmp) / ENCODER_FILE, Path(tmp) / INT8_ENCODER_FILE
        source.write_bytes(proto.SerializeToString())
        with _quiet_quantizer():
            quantize_static(source, target, Batches(), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                            reduce_range=True, nodes_to_exclude=float_nodes, calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"CalibMovingAverage": True})
        quantized = target.read_bytes()
    return quantized, {
        "scheme": "ONNX Runtime static quantization, QDQ: uint8 activations, int8 weights per channel (7-bit range), "
                  f"MinMax calibration averaged over batches of {batch_size}",
        "calibration_images": len(calibration), "float_nodes": float_nodes}


def _downstream(graph, tensor: str) -> list[str]:
    """Names of the nodes that read ``tensor``, directly or through other nodes (graph.node is topologically sorted)."""
    reached, names = {tensor}, []
    for node in graph.node:
        if reached & set(node.input):
            reached |= set(node.output)
            names.append(node.name)
    return names


@contextlib.contextmanager
def _quiet_quantizer():
    """ONNX Runtime's quantizer logs advice on the root logger (pre-processing, shape inference): not ours to show."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def manifest_summary(manifest: dict) -> str:
    check = manifest["export_check"]
    files = ", ".join(f["file"] for f in manifest["files"].values())
    shape = "x".join(map(str, manifest["latent_shape"]))
    return (f"model {manifest['fingerprint']} ({manifest['preset']}, L={manifest['levels']}, latent {shape}): "
            f"{files}, {MANIFEST}; ONNX vs torch on {check['images']} random images: symbols agree "
            f"{100 * check['symbol_agreement']:.2f}%, context logits within {check['context_logits_max_abs_diff']:.2g}"
            + (f"; int8 encoder vs fp32 on {manifest['int8']['calibration_images']} calibration images: symbols agree "
               f"{100 * manifest['int8']['symbol_agreement_with_fp32_on_calibration_images']:.2f}%"
               if "int8" in manifest else ""))
