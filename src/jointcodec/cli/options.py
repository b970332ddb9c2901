"""Flags that several commands share, defined once so that they read and behave alike everywhere."""

from __future__ import annotations

import argparse


def add_limit_option(parser: argparse.ArgumentParser, default: int) -> None:
    """``--limit N``: only the first N images of the split (0 = all); a negative N is refused."""
    parser.add_argument("--limit", type=non_negative_int, default=default, help="only the first N images (0 = all)")


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0, else argparse's one-line error."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1, else argparse's one-line error."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true")  # Lightning's names


def add_device_options(parser: argparse.ArgumentParser, device: str = "auto", precision: str = "auto") -> None:
    """Where a training runs (``--device``) and in what arithmetic (``--precision``), as Lightning Fabric names it."""
    parser.add_argument("--device", default=device, choices=DEVICES, help="auto (cuda if there is one), cpu or cuda")
    parser.add_argument("--precision", default=precision, choices=PRECISIONS,
                        help="auto (bf16 where the hardware is fast at it, else fp32) or a Lightning precision")


def add_data_options(parser: argparse.ArgumentParser, download: bool = True) -> None:
    """Where the data set is (``--data-dir``) and, for commands that may fetch it, ``--download``."""
    parser.add_argument("--data-dir", default=None, help="data directory (default: $JOINTCODEC_DATA)")
    if download:
        parser.add_argument("--download", action="store_true", help="download CIFAR if it is not found")


def add_progress_option(parser: argparse.ArgumentParser, auto: bool = False) -> None:
    """``--no-progress``. ``auto``: the bars are shown only on a terminal unless the flag is given (progress is
    None, see ``utils.image_bar``); otherwise always (progress is True)."""
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=None if auto else True,
                        help="no progress bars" + (" (shown only on a terminal anyway)" if auto else ""))


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """A training command's run flags: resume from the last epoch, skip the final test, no progress bars."""
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    parser.add_argument("--no-test", dest="test_at_end", action="store_false", help="skip the final test evaluation")
    add_progress_option(parser)


def add_addon_options(parser: argparse.ArgumentParser, seed: int, seed_help: str | None = None) -> None:
    """An add-on's shared flags (``AddOnSettings``): a training subset, the seed, the data and the run flags."""
    parser.add_argument("--train-subset", type=int, default=0, help="use only the first N training images")
    parser.add_argument("--seed", type=int, default=seed, help=seed_help)
    add_data_options(parser)
    add_run_options(parser)
