"""The ``jointcodec`` command line: the list of commands (COMMANDS), and train, distill-encoder, add-receiver, evaluate,
presets, recipes, zoo."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

from jointcodec import __version__
from jointcodec.cli.options import (
    add_addon_options,
    add_data_options,
    add_device_options,
    add_limit_option,
    add_progress_option,
    add_run_options,
    positive_int,
)
from jointcodec.errors import JointCodecError


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one clear line on stderr (exit 2), not a usage dump."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_train(sub) -> None:
    from jointcodec.training.hyperparameters import RECIPES, Recipe, RunSettings

    d, r = Recipe(), RunSettings()
    p = sub.add_parser("train")
    p.add_argument("--recipe", default="default", choices=list(RECIPES),
                   help="named recipe (see `jointcodec recipes`); the flags below override its fields")
    # A recipe flag that is not given stays out of the namespace, so the named recipe's value holds.
    recipe_flag = p.add_argument_group("recipe (default: the named recipe's value; shown: the default recipe's)")
    recipe_flag.argument_default = argparse.SUPPRESS
    recipe_flag.add_argument("--preset", help=f"model preset (see `jointcodec presets`); {d.preset}")
    recipe_flag.add_argument("--dataset", help=f"cifar10, cifar100, or imagefolder:PATH; {d.dataset}")
    recipe_flag.add_argument("--levels", type=int, help=f"quantizer centers L (>= 2); {d.levels}")
    recipe_flag.add_argument("--target-bpp", type=float, help=f"rate target in bits per input pixel; {d.target_bpp}")
    recipe_flag.add_argument("--beta", type=float, help=f"weight of the rate penalty; {d.beta}")
    recipe_flag.add_argument("--epochs", type=int, help=f"passes over the training images; {d.epochs}")
    recipe_flag.add_argument("--batch-size", type=int, help=f"global batch size; {d.batch_size}")
    recipe_flag.add_argument("--lr", type=float, help=f"peak learning rate; {d.lr}")
    recipe_flag.add_argument("--weight-decay", type=float, help=f"SGD weight decay; {d.weight_decay}")
    recipe_flag.add_argument("--val-size", type=int, help=f"images carved from train for validation; {d.val_size}")
    recipe_flag.add_argument("--train-subset", type=int, help="use only the first N training images; 0 = all")
    recipe_flag.add_argument("--seed", type=int, help=f"initialisation, validation split and batch order; {d.seed}")
    recipe_flag.add_argument("--init-from", metavar="CKPT",
                             help="warm start: copy the weights of CKPT (run directory, weights file or shipped "
                                  "model) whose names and shapes fit; e.g. an L=3 model from the L=2 one")
    recipe_flag.add_argument("--teacher", metavar="RECEIVER",
                             help="distil from a clean-image receiver (`jointcodec sweep clean` run directory): the "
                                  "classifier also fits its soft labels; none by default")
    recipe_flag.add_argument("--teacher-weight", type=float,
                             help=f"the teacher's share of the classification loss; {d.teacher_weight}")
    recipe_flag.add_argument("--ema-decay", type=float,
                             help="validate and save an exponential moving average of the weights with this "
                                  f"per-step decay (e.g. 0.998); {d.ema_decay} = the weights themselves")
    recipe_flag.add_argument("--val-every", type=int,
                             help="validate after every N-th epoch and after the last; 0 = after the last only; "
                                  f"{d.val_every}")
    recipe_flag.add_argument("--low-res-epochs", type=int,
                             help="the first N epochs train on images downscaled to --low-res-size (cheaper steps); "
                                  f"{d.low_res_epochs}")
    recipe_flag.add_argument("--low-res-size", type=int, help=f"pixels a side in those epochs; {d.low_res_size}")
    recipe_flag.add_argument("--translate", type=int,
                             help=f"pixels of random translation in training (with a random flip); {d.translate}")
    recipe_flag.add_argument("--cutout", type=int,
                             help=f"side in pixels of a random square zeroed in each training image; {d.cutout}")
    recipe_flag.add_argument("--whiten-stem", action=argparse.BooleanOptionalAction,
                             help="start the encoder's first conv as the principal directions of the training "
                                  f"images' patches (airbench's whitening), not at random; {d.whiten_stem}")
    add_device_options(p, r.device, r.precision)
    p.add_argument("--devices", type=int, default=r.devices, help="data-parallel processes (DDP via Fabric)")
    add_data_options(p)
    p.add_argument("--out", default=r.out, help="run directory for checkpoints and logs")
    add_run_options(p)
    p.set_defaults(run=run_train)


def add_distill(sub) -> None:
    from jointcodec.training.hyperparameters import DistillConfig

    d = DistillConfig()
    p = sub.add_parser("distill-encoder")
    p.add_argument("--teacher", default=d.teacher, help="the trained model (run directory, file, shipped name)")
    p.add_argument("--preset", default=d.preset, help="the new encoder's preset (same latent and receiver)")
    p.add_argument("--out", default=d.out, help="run directory for checkpoints and logs")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    p.add_argument("--beta", type=float, default=d.beta, help="weight of the rate penalty")
    p.add_argument("--target-bpp", type=float, default=None, help="rate target (default: the teacher's)")
    p.add_argument("--imitation-weight", type=float, default=d.imitation_weight,
                   help="weight of the cross-entropy against the teacher's symbols")
    add_addon_options(p, d.seed)
    p.set_defaults(run=run_distill)


def run_distill(args) -> int:
    from jointcodec.training.distill import distill_encoder
    from jointcodec.training.hyperparameters import DistillConfig, pick

    distill_encoder(pick(DistillConfig, vars(args)))
    return 0


def add_add_receiver(sub) -> None:
    from jointcodec.training.hyperparameters import AddReceiverConfig

    d = AddReceiverConfig()
    p = sub.add_parser("add-receiver")
    p.add_argument("--checkpoint", default=d.checkpoint,
                   help="the trained model (run directory, weights file or shipped name); its codec stays frozen")
    p.add_argument("--out", default=d.out, help="run directory for checkpoints and logs")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"passes over the training images; {d.epochs}")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate; {d.lr}")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--teacher", metavar="RECEIVER", default=None,
                   help="distil from a clean-image receiver (`jointcodec sweep clean` run directory)")
    p.add_argument("--teacher-weight", type=float, default=d.teacher_weight,
                   help=f"the teacher's share of the classification loss; {d.teacher_weight}")
    add_addon_options(p, d.seed, f"the new receiver's initialisation and batch order; {d.seed}")
    p.set_defaults(run=run_add_receiver)


def run_add_receiver(args) -> int:
    from jointcodec.training.ensemble import add_receiver
    from jointcodec.training.hyperparameters import AddReceiverConfig, pick

    add_receiver(pick(AddReceiverConfig, vars(args)))
    return 0


def run_train(args) -> int:
    from jointcodec.training.hyperparameters import RunSettings, pick
    from jointcodec.training.recipe import train

    # The flags are the recipe (the numbers) and the run settings (where and how it runs).
    train(recipe_from_flags(args), pick(RunSettings, vars(args)))
    return 0


def recipe_from_flags(args):
    """The named recipe (``--recipe``) with the recipe flags that were given."""
    from jointcodec.training.hyperparameters import Recipe, named_recipe

    given = {f: v for f, v in vars(args).items() if f in Recipe.__dataclass_fields__}
    return named_recipe(args.recipe, **given)


def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate")
    p.add_argument("--checkpoint", default="default",
                   help="run directory, .safetensors file, or shipped model name (default: %(default)s)")
    p.add_argument("--dataset", default=None, help="data set (default: the one the model was trained on)")
    p.add_argument("--split", default="test", choices=["train", "test"])
    add_limit_option(p, default=0)
    p.add_argument("--batch-size", type=positive_int, default=500, help="images per batch (memory only)")
    add_data_options(p)
    p.add_argument("--json", default=None, help="write the results as JSON to this file")
    p.add_argument("--coded", action="store_true",
                   help="also run the full path through real bitstreams: actual bpp, decoded accuracy, timings")
    p.add_argument("--reconstruct", action="store_true",
                   help="also rebuild the images with a decoder: psnr and ms_ssim (see docs)")
    p.add_argument("--decoder", default=None, help="decoder.safetensors for --reconstruct (default: beside the model)")
    add_progress_option(p)
    p.set_defaults(run=run_evaluate)


def run_evaluate(args) -> int:
    from jointcodec.checkpoint import load_model
    from jointcodec.data import load_split
    from jointcodec.errors import ConfigError
    from jointcodec.evaluation import evaluate_model
    from jointcodec.utils import atomic_write_json

    model, config = load_model(args.checkpoint)
    dataset = args.dataset or config["dataset"]
    data = load_split(dataset, args.split, args.data_dir, args.download, config["preset"]["image_size"])
    if len(data.classes) != config["num_classes"]:
        raise ConfigError(f"the model predicts {config['num_classes']} classes but {dataset} has "
                          f"{len(data.classes)}; evaluate it on the data set it was trained for "
                          f"({config['dataset']})")
    if args.limit:
        data = data.subset(slice(0, args.limit))
    result = evaluate_model(model, data, args.batch_size, progress=args.progress)
    result.update(checkpoint=str(args.checkpoint), preset=config["preset"]["name"])
    print(format_summary(result))
    if args.coded:
        from jointcodec.evaluation.coded import evaluate_coded, format_coded

        result.update(evaluate_coded(model, data, args.batch_size, result["bpp_estimated"], args.progress))
        print(format_coded(result))
    if args.reconstruct:
        from jointcodec.reconstruction import evaluate_reconstruction, format_reconstruction, load_decoder_for

        decoder, _ = load_decoder_for(model, args.checkpoint, args.decoder)
        result.update(evaluate_reconstruction(model, decoder, data, args.batch_size))
        print(format_reconstruction(result))
    if args.json:
        atomic_write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0


def format_summary(r: dict) -> str:
    shape = "x".join(map(str, r["latent_shape"]))
    return "\n".join([
        f"{r['preset']} (L={r['levels']}) on {r['dataset']}:{r['split']}, {r['n_images']} images",
        f"  top-1 {r['top1']:.2f}%   top-5 {r['top5']:.2f}%",
        f"  rate  {r['bpp_estimated']:.4f} bpp estimated by the context model "
        f"({r['bits_per_image_estimated']:.1f} bits per image)",
        f"  latent {shape} symbols, L={r['levels']}",
        f"  encoder    {r['encoder_params']:,} parameters, {r['encoder_macs']:,} MACs per image",
        f"  classifier {r['classifier_params']:,} parameters, {r['classifier_macs']:,} MACs per image",
    ])


def add_presets(sub) -> None:
    sub.add_parser("presets").set_defaults(run=run_presets)


def run_presets(args) -> int:
    from jointcodec.models import PRESETS

    return print_named({name: json.dumps(preset.to_dict()) for name, preset in PRESETS.items()})


def add_recipes(sub) -> None:
    sub.add_parser("recipes").set_defaults(run=run_recipes)


def run_recipes(args) -> int:
    from jointcodec.training.hyperparameters import RECIPES

    return print_named({name: f"{json.dumps(r['changes'])}  {r['about']}" for name, r in RECIPES.items()})


def print_named(lines: dict[str, str]) -> int:
    """One line per named entry (a preset, a recipe), the names aligned."""
    width = max(map(len, lines))
    for name, text in lines.items():
        print(f"{name:{width}s}  {text}")
    return 0


def add_zoo(sub) -> None:
    p = sub.add_parser("zoo")
    p.add_argument("--json", action="store_true", help="print the cards as JSON instead of a table")
    p.set_defaults(run=run_zoo)


ZOO_COLUMNS = ("name (--checkpoint)", "data set", "L", "payload bpp", "top-1 (.jcc)", "encoder params",
               "encoder MACs", "trained by")


def run_zoo(args) -> int:
    from jointcodec import zoo

    cards = zoo.cards()
    if args.json:
        print(json.dumps([card.to_dict() for card in cards], indent=2))
        return 0
    rows = [ZOO_COLUMNS, *map(zoo_row, cards)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(ZOO_COLUMNS) - 1)]
    for row in rows:  # the command, last, is left unpadded
        print("  ".join([cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)] + [row[-1]]))
    print("measured on the test split through real .jcc files; each figure's source: `jointcodec zoo --json`")
    return 0


def zoo_row(card) -> tuple[str, ...]:
    m = card.measured
    return (" = ".join((*card.aliases, card.name)), card.dataset, str(card.levels), f"{m['bpp_payload']:.4f}",
            f"{m['top1_coded']:.2f} %", f"{m['encoder_params']:,}", f"{m['encoder_macs'] / 1e6:.1f} M",
            card.train_command)


# Every command: the function that adds its flags ("module:function") and its one-line summary (what
# `jointcodec --help` lists). Only the chosen command's flags are built: many take their defaults from modules
# that import torch, and `jointcodec --help` and `--version` should answer at once.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("jointcodec.cli.main:add_train",
              "train a joint codec + classifier at a target rate"),
    "distill-encoder": ("jointcodec.cli.main:add_distill",
                        "train a cheaper edge encoder for a trained model's receiver (same bitstream, same server)"),
    "add-receiver": ("jointcodec.cli.main:add_add_receiver",
                     "train one more server-side receiver for a trained model: its receivers vote; the encoder, "
                     "the bits and every .jcc file stay as they are"),
    "evaluate": ("jointcodec.cli.main:add_evaluate",
                 "accuracy and rate of a trained model on a data split"),
    "presets": ("jointcodec.cli.main:add_presets",
                "list the model presets"),
    "recipes": ("jointcodec.cli.main:add_recipes",
                "list the named training recipes (train --recipe NAME) and what each changes"),
    "zoo": ("jointcodec.cli.main:add_zoo",
            "list the shipped models (--checkpoint NAME): measured top-1, payload bpp, encoder size, training command"),
    "encode": ("jointcodec.cli.coding:add_encode",
               "compress images into a .jcc bitstream (the edge side)"),
    "classify": ("jointcodec.cli.coding:add_classify",
                 "decode .jcc bitstreams and classify them (the server side)"),
    "export-edge": ("jointcodec.cli.deploy:add_export_edge", "old name of `export --split` (still works)"),
    "reconstruct": ("jointcodec.cli.reconstruct:add_reconstruct",
                    "decode .jcc bitstreams and rebuild their images with a decoder"),
    "train-decoder": ("jointcodec.cli.reconstruct:add_train_decoder",
                      "train a reconstruction decoder for a codec model"),
    "bench": ("jointcodec.cli.bench:add_bench",
              "edge efficiency: encoder size, MACs, memory, latency, throughput, energy against JPEG, WebP, "
              "CompressAI and on-device classifiers"),
    "export": ("jointcodec.cli.deploy:add_export",
               "export a model for deployment: ONNX edge files (--onnx) or edge and server weight files (--split)"),
    "serve": ("jointcodec.cli.deploy:add_serve",
              "run the receiver service: POST .jcc bitstreams, get predictions (HTTP)"),
    "baseline": ("jointcodec.cli.baselines:add_baseline",
                 "train and test the receiver on images decoded by a classic codec"),
    "compare": ("jointcodec.cli.baselines:add_compare",
                "rate-accuracy table, plot and BD-style summary of every system"),
    "ladder": ("jointcodec.cli.baselines:add_ladder",
               "payload/file bpp and PSNR of each codec's settings on a data split"),
    "sweep": ("jointcodec.cli.sweep:add_sweep",
              "baselines, protocol v2: a strong receiver trained once on every codec, tested on each setting, "
              "fine-tuned at the headline rates"),
}


class _ChosenCommand:
    """What a command's ``add_*`` function gets as ``sub``: ``add_parser(name)`` hands back the parser already made
    for that command, with its summary from COMMANDS (the one place a summary lives)."""

    def __init__(self, subparsers) -> None:
        self._subparsers = subparsers

    def add_parser(self, name: str) -> argparse.ArgumentParser:
        if name not in self._subparsers.choices:
            raise KeyError(f"command {name!r} is not in jointcodec.cli.main.COMMANDS")
        return self._subparsers.choices[name]


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser: every command listed, and the flags of the command that ``argv`` names (if any) built."""
    parser = OneLineParser(prog="jointcodec", description="Compress images for machines.")
    parser.add_argument("--version", action="version", version=f"jointcodec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser, metavar="COMMAND")
    for name, (_, summary) in COMMANDS.items():
        sub.add_parser(name, help=summary, description=summary)
    # The top level has no option that takes a value, so the first word that is not an option is the command.
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    if chosen in COMMANDS:
        module, _, function = COMMANDS[chosen][0].partition(":")
        getattr(importlib.import_module(module), function)(_ChosenCommand(sub))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return args.run(args)
    except JointCodecError as err:
        print(f"jointcodec: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("jointcodec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
