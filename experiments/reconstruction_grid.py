"""Reconstruction quality of jointcodec's decoder next to JPEG 4:2:0 and WebP at the same payload bpp.

    python experiments/reconstruction_grid.py --checkpoint runs/cifar10-v1-L2 \
        --decoder runs/decoder-default/decoder.safetensors --limit 2000 --full-test \
        --json docs/results/cifar10/reconstruction-cifar10-v1-L2.json --grid docs/reconstructions_cifar10-v1-L2.png

For each checkpoint (several may be given: one point per jointcodec rate):

1. jointcodec: the test images are encoded to real ``.jcc`` payloads (rate = mean payload bytes x 8 / pixels,
   headers excluded, as for every system in docs/baselines.md); the decoder rebuilds each image from its
   quantized latent. The latent is taken from the encoder; the range coder is lossless and bit-exact
   (``evaluate --coded`` checks it), and the images of the grid are decoded from the actual bitstream.
2. JPEG 4:2:0 and WebP (``jointcodec.codecs`` wrappers, payload cut documented there): the quality whose
   mean payload bpp on the same images is closest to jointcodec's (``find_setting``), and the two qualities
   around it, with PSNR / MS-SSIM linearly interpolated to jointcodec's exact rate.

PSNR and MS-SSIM are computed alike for all (``jointcodec.evaluation.reconstruction``: per image on uint8,
then averaged; MS-SSIM with 3 scales and a 7x7 window, because the standard form is undefined at 32x32).
The grid shows original / jointcodec / JPEG at the matched rate (/ WebP), each image upscaled 4x.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from jointcodec.api import Codec
from jointcodec.checkpoint import load_model
from jointcodec.codecs import get_codec
from jointcodec.codecs.batch import code_images
from jointcodec.codecs.rate import find_setting
from jointcodec.data import load_split
from jointcodec.reconstruction import MS_SSIM_SETTINGS, image_quality, load_decoder_for, reconstruct, to_uint8
from jointcodec.utils import atomic_write, atomic_write_json


def classic_at(codec_name: str, images: np.ndarray, target_bpp: float, workers: int, search_limit: int) -> dict:
    """The quality closest to ``target_bpp``, its neighbours, and PSNR / MS-SSIM interpolated to the target.

    The search runs on the first ``search_limit`` images (cheaper); the chosen quality and its two neighbours
    are then measured on all images, and the nearest of those three is reported."""
    codec = get_codec(codec_name)
    search = find_setting(codec, images[:search_limit], target_bpp, workers=workers)
    lo_range, hi_range = codec.setting_range
    settings = sorted({codec.check_setting(s) for s in (search.setting - 1, search.setting, search.setting + 1)
                       if lo_range <= s <= hi_range})
    reference = torch.from_numpy(images).permute(0, 3, 1, 2)
    points = []
    for setting in settings:
        coded = code_images(codec, images, setting, workers)
        quality = image_quality(reference, torch.from_numpy(coded.decoded).permute(0, 3, 1, 2))
        points.append({"setting": setting, "payload_bpp": coded.payload_bpp, "file_bpp": coded.file_bpp,
                       **quality, "decoded": coded.decoded})
    nearest = min(points, key=lambda p: abs(p["payload_bpp"] - target_bpp))
    below = [p for p in points if p["payload_bpp"] <= target_bpp]
    above = [p for p in points if p["payload_bpp"] >= target_bpp]
    interpolated = None
    if below and above:
        a, b = max(below, key=lambda p: p["payload_bpp"]), min(above, key=lambda p: p["payload_bpp"])
        t = 0.0 if b["payload_bpp"] == a["payload_bpp"] else (target_bpp - a["payload_bpp"]) / (
            b["payload_bpp"] - a["payload_bpp"])
        interpolated = {k: a[k] + t * (b[k] - a[k]) for k in ("psnr", "ms_ssim")}
    return {"codec": codec_name, "library": codec.library(), "setting_name": codec.setting_name,
            "nearest": {k: v for k, v in nearest.items() if k != "decoded"},
            "points": [{k: v for k, v in p.items() if k != "decoded"} for p in points],
            "interpolated_at_target": interpolated, "decoded_nearest": nearest["decoded"]}


def jointcodec_point(checkpoint: str, decoder_path: str | None, images: torch.Tensor) -> dict:
    model, config = load_model(checkpoint)
    codec = Codec(model, config)
    decoder, record = load_decoder_for(codec, checkpoint, decoder_path)
    symbols = codec.symbols(images)
    encoded = codec.encode_symbols(symbols)
    payload = np.array([len(p) for p in encoded.container.payloads], dtype=np.float64)
    pixels = images.shape[-1] * images.shape[-2]
    rebuilt = to_uint8(reconstruct(decoder, model.quantizer.dequantize(symbols)))
    return {"checkpoint": str(checkpoint), "fingerprint": codec.fingerprint.hex(), "levels": model.levels,
            "payload_bpp": float(8 * payload.mean() / pixels), "decoder_epoch": record.get("epoch"),
            "decoder_training": (record.get("training") or {}).get("kind"),
            **image_quality(images, rebuilt), "codec": codec, "decoder": decoder, "model": model}


def grid(rows: list[tuple[str, np.ndarray]], scale: int = 4, label_width: int = 150) -> np.ndarray:
    """Rows of images (N, H, W, 3) -> one picture, each image upscaled ``scale``x, a label left of each row."""
    from PIL import Image, ImageDraw

    count, height, width = rows[0][1].shape[:3]
    gap = 4
    cell_h, cell_w = height * scale, width * scale
    canvas = Image.new("RGB", (label_width + count * (cell_w + gap), len(rows) * (cell_h + gap)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (label, images) in enumerate(rows):
        top = r * (cell_h + gap)
        for line, text in enumerate(label.split("\n")):
            draw.text((4, top + cell_h // 2 - 12 + 12 * line), text, fill="black")
        for c, image in enumerate(images):
            tile = Image.fromarray(image).resize((cell_w, cell_h), Image.NEAREST)
            canvas.paste(tile, (label_width + c * (cell_w + gap), top))
    return np.asarray(canvas)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", nargs="+", default=["default"], help="one or more codec checkpoints")
    parser.add_argument("--decoder", nargs="*", default=None,
                        help="decoder files, one per checkpoint (default: the one beside each checkpoint)")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--limit", type=int, default=2000, help="the first N test images")
    parser.add_argument("--grid-images", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="processes for the classic codecs")
    parser.add_argument("--search-limit", type=int, default=500,
                        help="images used to search each classic codec's quality (then measured on all)")
    parser.add_argument("--full-test", action="store_true",
                        help="also give jointcodec's PSNR / MS-SSIM on the whole test split")
    parser.add_argument("--json", default=None)
    parser.add_argument("--grid", default=None, help="PNG of original / jointcodec / JPEG (/ WebP)")
    args = parser.parse_args(argv)
    if args.decoder and len(args.decoder) != len(args.checkpoint):
        parser.error("give one --decoder per --checkpoint")

    started = time.time()
    torch.manual_seed(0)
    data = load_split(args.dataset, "test")
    data = data.subset(slice(0, args.limit))
    images = data.images
    as_hwc = images.permute(0, 2, 3, 1).contiguous().numpy()
    results = []
    first_grid = None
    for i, checkpoint in enumerate(args.checkpoint):
        ours = jointcodec_point(checkpoint, args.decoder[i] if args.decoder else None, images)
        entry = {k: v for k, v in ours.items() if k not in ("codec", "decoder", "model")}
        decoded: dict[str, tuple[np.ndarray, dict]] = {}
        print(f"{checkpoint}: {ours['payload_bpp']:.4f} bpp payload, PSNR {ours['psnr']:.2f} dB, "
              f"MS-SSIM {ours['ms_ssim']:.4f}", flush=True)
        for name in ("jpeg420", "webp"):
            classic = classic_at(name, as_hwc, ours["payload_bpp"], args.workers, args.search_limit)
            near = classic["nearest"]
            interp = classic["interpolated_at_target"]
            print(f"  {name} {classic['setting_name']} {near['setting']}: {near['payload_bpp']:.4f} bpp payload, "
                  f"PSNR {near['psnr']:.2f} dB, MS-SSIM {near['ms_ssim']:.4f}"
                  + (f"; at {ours['payload_bpp']:.4f} bpp (interpolated) PSNR {interp['psnr']:.2f} dB, "
                     f"MS-SSIM {interp['ms_ssim']:.4f}" if interp else ""), flush=True)
            entry[name] = {k: v for k, v in classic.items() if k != "decoded_nearest"}
            decoded[name] = (classic["decoded_nearest"], near)
        if args.full_test:
            from jointcodec.reconstruction import evaluate_reconstruction

            full = load_split(args.dataset, "test")
            entry["full_test"] = {**evaluate_reconstruction(ours["model"], ours["decoder"], full),
                                  "n_images": len(full)}
            print(f"  whole test split ({len(full)} images): PSNR {entry['full_test']['psnr']:.2f} dB, "
                  f"MS-SSIM {entry['full_test']['ms_ssim']:.4f}", flush=True)
        if i == 0:  # the grid shows the first checkpoint
            first_grid = (ours, dict(decoded))
        results.append(entry)

    if first_grid is not None and args.grid:
        ours, decoded = first_grid
        n = args.grid_images
        # The grid's jointcodec images come from the real bitstream: encode, decode, rebuild.
        blob = ours["codec"].compress(images[:n])
        latent = ours["codec"].decompress(blob)
        rebuilt = to_uint8(reconstruct(ours["decoder"], latent.values)).permute(0, 2, 3, 1).numpy()
        rows = [("original", as_hwc[:n]),
                (f"jointcodec\n{ours['payload_bpp']:.2f} bpp (mean)", rebuilt)]
        for name, label in (("jpeg420", "JPEG 4:2:0"), ("webp", "WebP")):
            pictures, near = decoded[name]
            rows.append((f"{label} q={near['setting']}\n{near['payload_bpp']:.2f} bpp (mean)", pictures[:n]))
        picture = grid(rows)
        from PIL import Image

        atomic_write(args.grid, lambda tmp: Image.fromarray(picture).save(tmp, format="PNG"))
        print(f"wrote {args.grid}")

    record = {"dataset": args.dataset, "split": "test", "n_images": len(images),
              "command": "python experiments/reconstruction_grid.py "
                         + " ".join(sys.argv[1:] if argv is None else argv),
              "psnr": "mean over images of per-image PSNR on uint8 RGB", "ms_ssim_settings": MS_SSIM_SETTINGS,
              "rates": "payload bpp: jointcodec range-coded bytes; JPEG scan data; WebP VP8 frame data (see "
                       "jointcodec.codecs)", "points": results, "wall_s": time.time() - started}
    if args.json:
        atomic_write_json(args.json, json.loads(json.dumps(record, default=_plain)))
        print(f"wrote {args.json}")
    return 0


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")


if __name__ == "__main__":
    sys.exit(main())
