"""The edge client: images -> ``.jcc`` bitstreams with numpy, onnxruntime and constriction only (no torch).

The encoder and quantizer run as ``encoder.onnx`` (ONNX Runtime). The symbols are range-coded with the exact
integer context model from ``context_int.npz``, evaluated by the same numpy code the server decodes with
(``jointcodec.entropy.integer`` and ``payloads``): the coder must see the server's integers bit for bit, which a
float ONNX network cannot promise, so ``context.onnx`` is not used for coding. If ONNX and torch ever disagree on
a symbol (a latent value within float noise of a boundary between two centers), the file still decodes exactly:
the frequencies come from the symbols, not from floats. ``docs/deployment.md`` has the details.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np

from jointcodec.bitstream import FORMAT_VERSION, Container, pack
from jointcodec.entropy.integer import IntegerContext
from jointcodec.entropy.payloads import encode_latents
from jointcodec.errors import CheckpointError, ConfigError, DataError, JointCodecError
from jointcodec.utils import atomic_write

EDGE_FORMAT = 1  # version of edge.json and the files it names
MANIFEST = "edge.json"
ENCODER_FILE = "encoder.onnx"
INT8_ENCODER_FILE = "encoder_int8.onnx"  # written by `jointcodec export --onnx DIR --int8`
PRECISIONS = {"fp32": "encoder", "int8": "encoder_int8"}  # the encoder's precision -> its key in edge.json's files
CONTEXT_FILE = "context.onnx"
INTEGER_FILE = "context_int.npz"
NPZ_SLICE = re.compile(r"^(?P<path>.+\.npz)(?:\[(?P<start>\d*):(?P<stop>\d*)\])?$")


class EdgeEncoder:
    """An exported edge model (``jointcodec export --onnx DIR``), ready to compress images.

    ``threads``: ONNX Runtime's threads and the entropy coder's (default: their own choice). ``precision``: "fp32"
    (the default: the torch model's symbols, so byte for byte the server's own files) or "int8" (the statically
    quantized encoder of ``export --int8``: faster; a few symbols differ, every file still decodes exactly).
    """

    def __init__(self, export_dir: str | Path, threads: int | None = None, providers: list[str] | None = None,
                 precision: str = "fp32") -> None:
        import onnxruntime as ort

        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}")
        self.export_dir = Path(export_dir)
        try:
            self.manifest = json.loads((self.export_dir / MANIFEST).read_text())
        except (OSError, ValueError) as err:
            raise CheckpointError(f"{self.export_dir}: not an edge export (no readable {MANIFEST}: {err})") from err
        if self.manifest.get("format") != EDGE_FORMAT:
            raise CheckpointError(f"{self.export_dir}: edge export format {self.manifest.get('format')} is not "
                                  f"supported (this jointcodec reads {EDGE_FORMAT})")
        if self.manifest.get("container_version") != FORMAT_VERSION:
            raise CheckpointError(f"{self.export_dir}: the export writes container version "
                                  f"{self.manifest.get('container_version')}, this client writes {FORMAT_VERSION}")
        if PRECISIONS[precision] not in self.manifest.get("files", {}):
            raise CheckpointError(f"{self.export_dir}: this export has no {precision} encoder (write one with "
                                  f"`jointcodec export --onnx {self.export_dir} --int8`)")
        encoder_bytes = self._read_checked(PRECISIONS[precision])
        self._read_checked("context_integer")  # checksum only; IntegerContext.load reads the file
        self.context = IntegerContext.load(self.export_dir / self.manifest["files"]["context_integer"]["file"])
        self.fingerprint = bytes.fromhex(self.manifest["fingerprint"])
        if self.context.fingerprint != self.fingerprint or self.context.digest() != self.manifest["integer_digest"]:
            raise CheckpointError(f"{self.export_dir}: the integer context model does not match {MANIFEST}")
        self.precision, self.threads = precision, threads
        self.levels = int(self.manifest["levels"])
        self.image_size = int(self.manifest["image_size"])
        self.latent_shape = tuple(int(v) for v in self.manifest["latent_shape"])
        self.context.coding_order(self.latent_shape)  # verifies the stored order against the masks
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(encoder_bytes, options, providers=providers or ["CPUExecutionProvider"])
        except Exception as err:  # ONNX Runtime's own error types, with multi-line messages
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(f"{self.export_dir}: ONNX Runtime cannot run the {precision} encoder: "
                                  f"{first_line}") from err

    def _read_checked(self, key: str) -> bytes:
        entry = self.manifest["files"][key]
        path = self.export_dir / entry["file"]
        try:
            data = path.read_bytes()
        except OSError as err:
            raise CheckpointError(f"{path}: cannot read ({err.strerror or err})") from err
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise CheckpointError(f"{path}: checksum does not match {MANIFEST} (damaged or from another export)")
        return data

    def check_images(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, 3, S, S) or one (3, S, S) -> uint8 (N, 3, S, S), or a clear error."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        size = self.image_size
        if images.dtype != np.uint8 or images.shape[1:] != (3, size, size) or len(images) == 0:
            raise ConfigError(f"images must be uint8 (N, 3, {size}, {size}) or (3, {size}, {size}), got "
                              f"{images.dtype} {tuple(images.shape)}")
        return np.ascontiguousarray(images)

    def symbols(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """uint8 images (N, 3, S, S) -> latent symbols (N, C, h, w) int64 (encoder + quantizer in ONNX)."""
        images = self.check_images(images)
        return np.concatenate([self.session.run(["symbols"], {"images": images[i:i + batch_size]})[0]
                               for i in range(0, len(images), batch_size)]).astype(np.int64)

    def encode_symbols(self, symbols: np.ndarray) -> Container:
        """Latent symbols (N, C, h, w) -> a container, one range-coded payload per image."""
        symbols = np.asarray(symbols, dtype=np.int64)
        if symbols.ndim != 4 or len(symbols) == 0 or symbols.min() < 0 or symbols.max() >= self.levels:
            raise ConfigError(f"symbols must be a non-empty (N, C, H, W) array in [0, {self.levels}), got "
                              f"{tuple(symbols.shape)}")
        payloads = encode_latents(self.context, symbols, threads=self.threads)
        return Container(self.fingerprint, self.levels, tuple(int(v) for v in symbols.shape[1:]), tuple(payloads))

    def compress(self, images: np.ndarray) -> bytes:
        """uint8 images (N, 3, S, S) or one (3, S, S) -> the bytes of one ``.jcc`` file holding them all."""
        return pack(self.encode_symbols(self.symbols(images)))


def read_inputs(inputs: list[str], image_size: int) -> np.ndarray:
    """INPUTs -> uint8 (N, 3, S, S): ``.npy`` arrays ((N,) 3, S, S or (N,) S, S, 3), ``.npz`` files with an
    ``images`` array (optionally sliced: ``test.npz[:100]``), image files (needs Pillow; exactly S x S) or
    folders of them."""
    batches = []
    for spec in inputs:
        match = NPZ_SLICE.match(spec)
        path = Path(match["path"] if match else spec)
        if path.is_dir():  # its image files in name order, as `jointcodec encode` reads a folder
            files = image_files(path)
            batches.extend(_nchw(_read_image_file(f), image_size, str(f)) for f in files)
            continue
        if not path.is_file():
            raise DataError(f"{spec}: no such file")
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                if "images" not in data.files:
                    raise DataError(f"{path}: no 'images' array (has {', '.join(data.files)})")
                start, stop = (int(match[k]) if match and match[k] else None for k in ("start", "stop"))
                batches.append(_nchw(data["images"][start:stop], image_size, spec))
        elif path.suffix == ".npy":
            batches.append(_nchw(np.load(path, allow_pickle=False), image_size, spec))
        else:
            batches.append(_nchw(_read_image_file(path), image_size, spec))
    images = np.concatenate(batches) if batches else np.zeros((0, 3, image_size, image_size), np.uint8)
    if len(images) == 0:
        raise DataError("no images to encode (an empty slice?)")
    return images


def image_files(folder: Path) -> list[Path]:
    """The files of ``folder`` that Pillow reads by their extension, in name order (``jointcodec encode`` reads a
    folder the same way)."""
    try:
        from PIL import Image
    except ImportError as err:
        raise DataError(f"{folder}: reading image files needs Pillow; give .npy or .npz arrays instead") from err
    extensions = Image.registered_extensions()
    files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in extensions)
    if not files:
        raise DataError(f"{folder}: a folder with no image files")
    return files


def _read_image_file(path: Path) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError as err:
        raise DataError(f"{path}: reading image files needs Pillow; give .npy or .npz arrays instead") from err
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except OSError as err:
        raise DataError(f"cannot read image {path}: {err}") from err


def _nchw(array: np.ndarray, size: int, spec: str) -> np.ndarray:
    """(N,) 3, S, S or (N,) S, S, 3 uint8 -> (N, 3, S, S); the edge client does not resize."""
    if array.ndim == 3:
        array = array[None]
    if array.dtype != np.uint8 or array.ndim != 4:
        raise DataError(f"{spec}: expected uint8 images, got {array.dtype} {tuple(array.shape)}")
    if array.shape[1:] == (size, size, 3):
        array = array.transpose(0, 3, 1, 2)
    if array.shape[1:] != (3, size, size):
        raise DataError(f"{spec}: images are {tuple(array.shape[1:])}, the model reads 3 x {size} x {size} "
                        "(resize them first)")
    return np.ascontiguousarray(array)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jointcodec.edge",
                                     description="Compress images into a .jcc bitstream on an edge device.")
    parser.add_argument("export_dir", help="folder written by `jointcodec export --onnx`")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help=".npy / .npz[A:B] arrays, image files, or folders of image files (in name order)")
    parser.add_argument("-o", "--output", required=True, help="the .jcc file to write")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for ONNX Runtime and the entropy coder (default: their own choice)")
    parser.add_argument("--int8", dest="precision", action="store_const", const="int8", default="fp32",
                        help="run the int8 encoder (written by `jointcodec export --onnx DIR --int8`)")
    args = parser.parse_args(argv)
    try:
        edge = EdgeEncoder(args.export_dir, threads=args.threads, precision=args.precision)
        images = read_inputs(args.inputs, edge.image_size)
        data = edge.compress(images)
        atomic_write(args.output, lambda tmp: Path(tmp).write_bytes(data))
    except JointCodecError as err:
        print(f"jointcodec.edge: error: {err}", file=sys.stderr)
        return 1
    pixels = len(images) * edge.image_size**2
    print(f"wrote {args.output}: {len(images)} images, {len(data)} bytes ({8 * len(data) / pixels:.4f} bpp file); "
          f"model {edge.fingerprint.hex()}, {edge.precision} encoder")
    return 0
