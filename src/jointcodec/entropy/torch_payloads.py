"""Latents <-> payloads for torch tensors: thin wrappers over the numpy implementation in ``payloads``.

The encode pass and the step-by-step decode loop live in ``jointcodec.entropy.payloads`` (no torch), so the
server and the torch-free edge client (``jointcodec.edge``) run the same code.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from jointcodec.entropy import payloads as _payloads
from jointcodec.entropy.integer import IntegerContext
from jointcodec.entropy.payloads import PayloadDecodeError, Progress, coding_permutation

__all__ = ["PayloadDecodeError", "coding_permutation", "decode_latents", "encode_latents",
           "encode_latents_with_bits"]


def _numpy(symbols: torch.Tensor | np.ndarray) -> np.ndarray:
    return symbols.detach().cpu().numpy() if isinstance(symbols, torch.Tensor) else np.asarray(symbols)


def encode_latents(fixed: IntegerContext, symbols: torch.Tensor, batch_size: int | None = None,
                   threads: int | None = None, progress: Progress | None = None) -> list[bytes]:
    """Symbols (N, C, H, W) in [0, L) -> one range-coded payload per image."""
    return _payloads.encode_latents(fixed, _numpy(symbols), batch_size, threads, progress)


def encode_latents_with_bits(fixed: IntegerContext, symbols: torch.Tensor, batch_size: int | None = None,
                             threads: int | None = None,
                             progress: Progress | None = None) -> tuple[list[bytes], np.ndarray]:
    """As ``encode_latents``, plus each image's ideal code length (bits) under the integer frequencies."""
    return _payloads.encode_latents_with_bits(fixed, _numpy(symbols), batch_size, threads, progress)


def decode_latents(fixed: IntegerContext, payloads: Sequence[bytes], shape: tuple[int, int, int],
                   batch_size: int | None = None, threads: int | None = None,
                   progress: Progress | None = None) -> torch.Tensor:
    """Payloads -> symbols (N, C, H, W) int64, decoding ``batch_size`` images together (default: auto) on
    ``threads`` threads (default: ``coding_threads()``); ``progress``: called per decoded chunk (image count)."""
    return torch.from_numpy(_payloads.decode_latents(fixed, payloads, shape, batch_size, threads, progress))
