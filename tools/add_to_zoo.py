"""Add a trained run to the zoo: its weights (receiver in fp16 unless --fp32), its config, and a card whose figures
are those of its own coded evaluation on the test split.

    python tools/add_to_zoo.py cifar10-1.5 runs/cifar10-1.5 \\
        --train-command "jointcodec train --preset cifar-v1-deep --dataset cifar10 --levels 4 ..." \\
        --trained-on "2-core x86 CPU (AMD EPYC, AVX2), fp32, 2 threads"

It writes src/jointcodec/zoo/weights/NAME/, then runs `jointcodec evaluate --checkpoint NAME --coded` on the
shipped file (so an fp16 receiver is what gets measured) into docs/results/DATASET/NAME-coded.json, and copies
that file's figures into the card. Run it from the repository root with the package installed editable.

    python tools/add_to_zoo.py default --decoder runs/decoder-default

ships an image decoder (`jointcodec train-decoder`) beside the zoo model it was trained for, its weight matrices
in fp16; a decoder trained for another model is refused.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

from jointcodec import zoo
from jointcodec.checkpoint import WEIGHTS, load_model, read_config, save_weights
from jointcodec.errors import CheckpointError
from jointcodec.reconstruction.files import default_decoder_path, load_decoder_for, save_decoder

CARD_FIGURES = ("split", "n_images", "top1_coded", "bpp_payload", "bpp_estimated", "encoder_params", "encoder_macs")


# Flags whose value is a path on the training machine -> where the config records it. The card's command names
# them portably (a zoo name, runs/...); the shipped config takes those names, not this machine's paths.
PATH_FLAGS = {"--out": ("run", "out"), "--init-from": ("train", "init_from"), "--teacher": ("train", "teacher"),
              "--checkpoint": ("add_receiver", "checkpoint")}


def portable_paths(config: dict, train_command: str) -> None:
    """Record, for each path flag, the value the command's last step gives it (the step that made the weights)."""
    last_step = zoo.last_train_step(train_command)
    for i, word in enumerate(last_step[:-1]):
        if word in PATH_FLAGS:
            section, key = PATH_FLAGS[word]
            if section in config:
                config[section][key] = last_step[i + 1]


def add_decoder(name: str, decoder: Path) -> None:
    """Ship ``decoder`` beside the zoo model ``name``, with its weight matrices in fp16."""
    model, _ = load_model(name)
    module, record = load_decoder_for(model, name, decoder)  # refuses a decoder trained for another model
    target = default_decoder_path(name)
    save_decoder(target, module, record, half=True)
    print(f"wrote {target}: {target.stat().st_size:,} bytes (weight matrices in fp16)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="the zoo name (--checkpoint NAME)")
    parser.add_argument("run", type=Path, nargs="?", help="the finished run directory")
    parser.add_argument("--decoder", type=Path, help="instead of a run: a decoder (a file, or its run folder) "
                        "trained for the zoo model NAME, to ship beside it")
    parser.add_argument("--train-command", help="the exact command that trained it")
    parser.add_argument("--trained-on", help="the machine it trained on, e.g. '2-core x86 CPU'")
    parser.add_argument("--measured-on", default="2-core x86 CPU", help="the machine of the coded evaluation")
    parser.add_argument("--aliases", nargs="*", default=[], help="other names --checkpoint accepts (e.g. default)")
    parser.add_argument("--fp32", action="store_true", help="keep the receiver in fp32 (twice the bytes)")
    args = parser.parse_args()
    if args.decoder is not None:
        try:
            add_decoder(args.name, args.decoder)
        except CheckpointError as err:
            sys.exit(f"error: {err}")
        return 0
    if args.run is None or not args.train_command or not args.trained_on:
        sys.exit("error: a run needs RUN, --train-command and --trained-on (or pass --decoder)")
    if not (args.run / WEIGHTS).is_file():
        sys.exit(f"error: no {WEIGHTS} in {args.run}")
    if not args.train_command.startswith("jointcodec train "):
        sys.exit("error: --train-command must be the `jointcodec train ...` command (and what followed it, joined "
                 "by &&) that trained the run")

    config = read_config(args.run / WEIGHTS)  # the record the weights file carries (config.json is its copy)
    portable_paths(config, args.train_command)
    state = load_file(str(args.run / WEIGHTS))
    folder = zoo.WEIGHTS_DIR / args.name
    save_weights(folder, state if args.fp32 else zoo.half_receiver(state), config)
    preset = config["preset"]["name"] if isinstance(config["preset"], dict) else config["preset"]

    source = f"docs/results/{config['dataset']}/{args.name}-coded.json"
    measured_by = (f"jointcodec evaluate --checkpoint {args.name} --dataset {config['dataset']} --coded "
                   f"--no-progress --json {source}")
    card = {"name": args.name, "aliases": args.aliases, "dataset": config["dataset"], "preset": preset,
            "levels": config["levels"], "train_command": args.train_command, "trained_on": args.trained_on,
            "measured": {}, "source": source, "measured_by": measured_by, "measured_on": args.measured_on}
    # The card goes in first: the name must resolve for the evaluation (an unfinished card has no figures).
    (folder / zoo.CARD).write_text(json.dumps(card, indent=2) + "\n")
    subprocess.run(measured_by.split(), check=True)
    result = json.loads(Path(source).read_text())
    card["measured"] = {key: result[key] for key in CARD_FIGURES}
    (folder / zoo.CARD).write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card["measured"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
