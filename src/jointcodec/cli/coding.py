"""``jointcodec encode`` and ``classify`` (with top-1 against a split's labels): real bitstreams from the command
line."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from jointcodec.cli.options import add_data_options, add_progress_option
from jointcodec.errors import DataError

if TYPE_CHECKING:  # torch is imported where the images are read: the parser is built without it
    import torch
    from tqdm import tqdm

    from jointcodec.api import Codec
    from jointcodec.bitstream import Container
    from jointcodec.data import ImageSet

SPLIT_SPEC = re.compile(r"^(?P<name>.+):(?P<split>train|test)(?:\[(?P<start>\d*):(?P<stop>\d*)\])?$")


def add_encode(sub) -> None:
    p = sub.add_parser("encode")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files (PNG, JPEG, ...; resized and centre-cropped to the model's input size), "
                        "folders of them (their image files in name order), or a data-set split such as "
                        "cifar10:test or cifar10:test[:100]")
    p.add_argument("-o", "--output", required=True, help="the .jcc file to write")
    p.add_argument("--checkpoint", default="default",
                   help="run directory, .safetensors file (full or edge part), or shipped model name")
    add_data_options(p)
    add_progress_option(p, auto=True)
    p.set_defaults(run=run_encode)


def add_classify(sub) -> None:
    p = sub.add_parser("classify")
    p.add_argument("files", nargs="+", metavar="FILE.jcc")
    p.add_argument("--checkpoint", default="default",
                   help="run directory, .safetensors file (full or server part), or shipped model name")
    p.add_argument("--top-k", type=int, default=1, help="also list the K most probable classes")
    p.add_argument("--labels", default=None, metavar="SPLIT",
                   help="the data-set split the files were encoded from, e.g. cifar10:test[:100]: also report "
                        "top-1 against its labels")
    add_data_options(p)
    p.add_argument("--json", default=None, help="write the predictions as JSON to this file")
    add_progress_option(p, auto=True)
    p.set_defaults(run=run_classify)


def read_images(inputs: list[str], image_size: int, data_dir: str | None, download: bool) -> torch.Tensor:
    """INPUTs (image files or data-set splits) -> uint8 images (N, 3, S, S), in order."""
    import torch

    batches = []
    for spec in inputs:
        path = Path(spec)
        if path.is_file():
            batches.append(read_image_file(path, image_size).unsqueeze(0))
            continue
        if path.is_dir():  # its image files in name order (as the edge client reads it): classify's order
            from jointcodec.edge.client import image_files

            batches.extend(read_image_file(f, image_size).unsqueeze(0) for f in image_files(path))
            continue
        if SPLIT_SPEC.match(spec) is None:
            raise DataError(f"{spec}: no such file, and not a data-set split like cifar10:test or cifar10:test[:100]")
        images = read_split(spec, image_size, data_dir, download).images[:]  # [:] decodes a streamed split
        if images.shape[-2:] != (image_size, image_size):
            raise DataError(f"{spec}: images are {tuple(images.shape[-2:])}, the model reads {image_size}x{image_size}")
        batches.append(images)
    images = torch.cat(batches)
    if len(images) == 0:
        raise DataError("no images to encode (an empty slice?)")
    return images


def read_split(spec: str, image_size: int, data_dir: str | None, download: bool) -> ImageSet:
    """A split spec such as ``cifar10:test[:100]`` -> that slice of the split (images and labels)."""
    from jointcodec.data import load_split

    match = SPLIT_SPEC.match(spec)
    if match is None:
        raise DataError(f"{spec} is not a data-set split like cifar10:test or cifar10:test[:100]")
    data = load_split(match["name"], match["split"], data_dir, download, image_size)
    start, stop = (int(match[k]) if match[k] else None for k in ("start", "stop"))
    return data.subset(slice(start, stop))


def read_image_file(path: Path, image_size: int) -> torch.Tensor:
    """One image file -> uint8 (3, S, S); resized (shorter side) and centre-cropped, with a warning, if needed."""
    from PIL import Image, UnidentifiedImageError

    from jointcodec.data.datasets import imagefolder_transform

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"cannot read image {path}: {err}") from err
    if image.size != (image_size, image_size):
        print(f"jointcodec: warning: {path} is {image.size[0]}x{image.size[1]}; resized and centre-cropped to "
              f"{image_size}x{image_size}", file=sys.stderr)
    return imagefolder_transform(image_size)(image)


def run_encode(args) -> int:
    from jointcodec.api import Codec
    from jointcodec.utils import atomic_write, image_bar

    codec = Codec.load(args.checkpoint)
    size = codec.config["preset"]["image_size"]
    images = read_images(args.inputs, size, args.data_dir, args.download)
    with image_bar(len(images), "encode", args.progress) as bar:
        encoded = codec.encode_symbols(codec.symbols(images), progress=bar.update)
    data = encoded.to_bytes()
    atomic_write(args.output, lambda tmp: Path(tmp).write_bytes(data))
    payload = sum(map(len, encoded.container.payloads))
    pixels = len(images) * size * size
    print(f"wrote {args.output}: {len(images)} images, {len(data)} bytes ({payload} payload, "
          f"{len(data) - payload} header, lengths and CRC); {8 * payload / pixels:.4f} bpp payload, "
          f"{8 * len(data) / pixels:.4f} bpp file; model {codec.fingerprint.hex()}")
    return 0


def run_classify(args) -> int:
    from jointcodec.api import Codec, prediction_entries
    from jointcodec.errors import ConfigError
    from jointcodec.utils import atomic_write_json

    if args.top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {args.top_k}")
    codec = Codec.load(args.checkpoint)
    classes = codec.classes or []
    labels = None
    if args.labels:  # read (and counted, below) before the decoding: a wrong split fails at once
        labels = read_split(args.labels, codec.config["preset"]["image_size"], args.data_dir,
                            args.download).labels.tolist()
    predictions = []
    with decoding_bar(codec, args.files, args.progress) as (containers, bar):
        if labels is not None:
            check_label_count(len(labels), bar.total, args.labels)
        for name, container in containers:
            predictions.extend({"file": name, **entry} for entry in
                               prediction_entries(codec.predict(container, progress=bar.update), classes, args.top_k))
    report = {"model": codec.fingerprint.hex(), "predictions": predictions}
    if labels is not None:
        report.update(labels=args.labels, **top1_against(predictions, labels))
    if args.json:
        atomic_write_json(args.json, report)
        print(f"classified {len(predictions)} images from {len(args.files)} files; wrote {args.json}")
    else:
        for p in predictions:
            print(f"{p['file']}#{p['index']}\t{p['label']}\t{p['class']}\t{p['probability']:.4f}")
    if args.labels:
        print(f"top-1 {report['top1']:.2f}% ({report['correct']} of {len(predictions)}) against the labels of "
              f"{args.labels}")
    return 0


@contextmanager
def decoding_bar(codec: Codec, names: list[str],
                 show: bool | None) -> Iterator[tuple[list[tuple[str, Container]], tqdm]]:
    """Every file read and checked against the model before any is decoded (a bad file fails fast), and one
    progress bar over all their images: yields ((name, container) pairs, the bar)."""
    from jointcodec.utils import image_bar

    containers = [(name, codec.read(read_bitstream(name))) for name in names]
    with image_bar(sum(len(c.payloads) for _, c in containers), "decode", show) as bar:
        yield containers, bar


def read_bitstream(name: str) -> bytes:
    try:
        return Path(name).read_bytes()
    except OSError as err:
        hint = ""
        if SPLIT_SPEC.match(name):  # a new user's natural first try: classify the split itself
            hint = (f"; {name} is a data-set split, not a file: encode it first (jointcodec encode {name} -o x.jcc), "
                    f"then classify x.jcc --labels {name}")
        raise DataError(f"cannot read {name}: {err.strerror or err}{hint}") from err


def check_label_count(labels: int, images: int, spec: str) -> None:
    if not labels or labels != images:
        raise DataError(f"--labels {spec} has {labels} labels but the files hold {images} images; "
                        f"name the split (and slice) the files were encoded from")


def top1_against(predictions: list[dict], labels: list[int]) -> dict:
    """Predictions (in file order) against the labels of the split they were encoded from: ``top1`` (percent) and
    ``correct``. ``run_classify`` checked the counts (``check_label_count``) before decoding."""
    correct = sum(p["label"] == label for p, label in zip(predictions, labels, strict=True))
    return {"top1": 100.0 * correct / len(labels), "correct": correct}

