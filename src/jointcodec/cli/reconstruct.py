"""``jointcodec reconstruct`` and ``train-decoder``: optional images from the decoded latent, on the server."""

from __future__ import annotations

from pathlib import Path

from jointcodec.cli.options import add_addon_options, add_progress_option
from jointcodec.errors import ConfigError


def add_reconstruct(sub) -> None:
    p = sub.add_parser("reconstruct")
    p.add_argument("files", nargs="+", metavar="FILE.jcc")
    p.add_argument("-o", "--output", required=True,
                   help="OUT.png for a single image; otherwise a folder, written as 000000.png, 000001.png, ... "
                        "(images of all files, in order)")
    p.add_argument("--checkpoint", default="default",
                   help="run directory, .safetensors file (full or server part), or shipped model name")
    p.add_argument("--decoder", default=None,
                   help="decoder.safetensors (or its folder); default: the one beside the checkpoint")
    add_progress_option(p, auto=True)
    p.set_defaults(run=run_reconstruct)


def add_train_decoder(sub) -> None:
    from jointcodec.training.hyperparameters import DecoderTrainConfig

    d = DecoderTrainConfig()
    p = sub.add_parser("train-decoder")
    p.add_argument("--checkpoint", default=d.checkpoint, help="the codec model (run directory, file, shipped name)")
    p.add_argument("--out", required=True, help="folder for decoder.safetensors, its state and metrics")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=None,
                   help="default: 128 for the frozen decoder; the model's recipe batch size with --joint")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: 2e-3 with Adam for the frozen decoder; the model's recipe lr "
                        "with --joint)")
    p.add_argument("--ms-ssim-weight", type=float, default=d.ms_ssim_weight,
                   help="frozen decoder: add W * (1 - MS-SSIM) to the MSE loss")
    p.add_argument("--joint", action="store_true",
                   help="train the codec model and the decoder together (a new model; the default keeps the "
                        "model frozen, so its bitstream and accuracy cannot change)")
    p.add_argument("--mse-weight", type=float, default=d.mse_weight, help="with --joint: weight of the MSE term")
    p.add_argument("--test-limit", type=int, default=0, help="test only on the first N test images (0: all)")
    add_addon_options(p, d.seed)
    p.set_defaults(run=run_train_decoder)


def run_train_decoder(args) -> int:
    from jointcodec.training.decoder import train_decoder
    from jointcodec.training.hyperparameters import DecoderTrainConfig, pick

    train_decoder(pick(DecoderTrainConfig, vars(args)))
    return 0


def run_reconstruct(args) -> int:
    import torch
    from PIL import Image

    from jointcodec.cli.coding import decoding_bar
    from jointcodec.reconstruction import load_decoder_for, reconstruct, to_uint8
    from jointcodec.serve.codec import Codec
    from jointcodec.utils import atomic_write

    codec = Codec.load(args.checkpoint)
    decoder, _ = load_decoder_for(codec, args.checkpoint, args.decoder)
    out = Path(args.output)
    single = out.suffix.lower() == ".png"
    images = []
    with decoding_bar(codec, args.files, args.progress) as (containers, bar):
        if single and bar.total != 1:
            raise ConfigError(f"the files hold {bar.total} images but -o {out} names one PNG; give a folder instead")
        for _, container in containers:
            latent = codec.decompress(container, progress=bar.update)
            images.append(to_uint8(reconstruct(decoder, latent.values)))
    images = torch.cat(images)
    targets = [out] if single else [out / f"{i:06d}.png" for i in range(len(images))]
    for image, target in zip(images, targets, strict=True):
        picture = Image.fromarray(image.permute(1, 2, 0).numpy())
        atomic_write(target, lambda tmp, picture=picture: picture.save(tmp, format="PNG"))
    where = out if single else f"{out}/000000.png ... {targets[-1].name}"
    print(f"reconstructed {len(images)} images from {len(args.files)} files into {where}")
    return 0
